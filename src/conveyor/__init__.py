"""A database task backend and worker for django.tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.bulk import enqueue_many
    from conveyor.meta import ametadata, enqueue, metadata, update_metadata

__all__ = ["ametadata", "enqueue", "enqueue_many", "metadata", "update_metadata"]

_LAZY = {
    "enqueue_many": "conveyor.bulk",
    "enqueue": "conveyor.meta",
    "metadata": "conveyor.meta",
    "ametadata": "conveyor.meta",
    "update_metadata": "conveyor.meta",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the package loads before Django's app registry is ready.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
