"""A database task backend and worker for django.tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.bulk import enqueue_many

__all__ = ["enqueue_many"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the package loads before Django's app registry is ready.
    if name == "enqueue_many":
        from conveyor.bulk import enqueue_many

        return enqueue_many
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
