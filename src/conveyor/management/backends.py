"""Look up a conveyor backend by alias, for the commands."""

from __future__ import annotations

from django.core.management import CommandError
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTaskBackend

from conveyor.backend import DatabaseBackend


def database_backend(alias: str) -> DatabaseBackend:
    """The DatabaseBackend configured as TASKS[alias]; CommandError if there is none."""
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        known = ", ".join(sorted(task_backends.settings)) or "none"
        raise CommandError(f"No task backend {alias!r} in TASKS (configured: {known})") from None
    if not isinstance(backend, DatabaseBackend):
        raise CommandError(
            f"TASKS[{alias!r}] is {type(backend).__module__}.{type(backend).__name__}, "
            "not conveyor.backend.DatabaseBackend"
        )
    return backend
