"""Look up a conveyor backend by alias, for the commands."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError

from conveyor.backend import DatabaseBackend
from conveyor.backends import NotAConveyorBackend, conveyor_backend, conveyor_backends


def database_backend(alias: str) -> DatabaseBackend:
    """The DatabaseBackend configured as TASKS[alias]; CommandError if there is none, or
    if its OPTIONS are wrong (the one-line message naming the key, without a traceback)."""
    try:
        return conveyor_backend(alias)
    except (NotAConveyorBackend, ImproperlyConfigured) as exc:
        raise CommandError(str(exc)) from None


def database_backends(alias: str | None) -> list[DatabaseBackend]:
    """TASKS[alias], or every conveyor backend; CommandError if there is none."""
    if alias is not None:
        return [database_backend(alias)]
    found = list(conveyor_backends().values())
    if not found:
        raise CommandError("No conveyor.backend.DatabaseBackend in TASKS")
    return found
