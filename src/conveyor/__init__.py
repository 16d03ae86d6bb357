"""A database task backend and worker for django.tasks."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.bulk import enqueue_many
    from conveyor.cancellation import CancelAnswer, cancel
    from conveyor.control import cancel_requested, raise_if_cancelled
    from conveyor.exceptions import Snooze
    from conveyor.flow import Concurrency, RateLimit, Unique
    from conveyor.meta import ametadata, enqueue, metadata, update_metadata
    from conveyor.results import DuplicateResult

__all__ = [
    "CancelAnswer",
    "Concurrency",
    "DuplicateResult",
    "RateLimit",
    "Snooze",
    "Unique",
    "ametadata",
    "cancel",
    "cancel_requested",
    "enqueue",
    "enqueue_many",
    "metadata",
    "raise_if_cancelled",
    "update_metadata",
]

# Imported on first use: the package loads before Django's app registry is ready.
_LAZY = {
    "enqueue_many": "conveyor.bulk",
    "cancel": "conveyor.cancellation",
    "CancelAnswer": "conveyor.cancellation",
    "cancel_requested": "conveyor.control",
    "raise_if_cancelled": "conveyor.control",
    "Snooze": "conveyor.exceptions",
    "Unique": "conveyor.flow",
    "Concurrency": "conveyor.flow",
    "RateLimit": "conveyor.flow",
    "DuplicateResult": "conveyor.results",
    "enqueue": "conveyor.meta",
    "metadata": "conveyor.meta",
    "ametadata": "conveyor.meta",
    "update_metadata": "conveyor.meta",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
