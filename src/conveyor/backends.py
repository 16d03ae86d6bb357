"""Find conveyor's backends among the configured TASKS."""

from __future__ import annotations

from conveyor.backend import DatabaseBackend
from conveyor.compat import InvalidTaskBackend, task_backends
from conveyor.exceptions import ConveyorError


class NotAConveyorBackend(ConveyorError):
    """The TASKS alias is not a conveyor DatabaseBackend."""


def conveyor_backends() -> dict[str, DatabaseBackend]:
    """The configured conveyor backends by alias."""
    found = {alias: task_backends[alias] for alias in task_backends.settings}
    return {alias: b for alias, b in found.items() if isinstance(b, DatabaseBackend)}


def conveyor_backend(alias: str) -> DatabaseBackend:
    """The DatabaseBackend configured as TASKS[alias]; raise NotAConveyorBackend naming what
    is there instead."""
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        known = ", ".join(sorted(task_backends.settings)) or "none"
        raise NotAConveyorBackend(
            f"No task backend {alias!r} in TASKS (configured: {known})"
        ) from None
    if not isinstance(backend, DatabaseBackend):
        raise NotAConveyorBackend(
            f"TASKS[{alias!r}] is {type(backend).__module__}.{type(backend).__name__}, "
            "not conveyor.backend.DatabaseBackend"
        )
    return backend
