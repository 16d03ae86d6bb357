"""Set Django up on the operations scripts' settings; create the scripts' database if it is
missing, and bring it up to date."""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.core.management import call_command
from django.db import connection


def set_up(name: str | None = None) -> None:
    """Point DJANGO_SETTINGS_MODULE at scripts.operations_settings (unless set), default
    CONVEYOR_OPERATIONS_DATABASE_NAME to `name` (a file /tmp/{name}.sqlite3 when
    CONVEYOR_OPERATIONS_DATABASE=sqlite; with no name, the settings' own default), then call
    django.setup(). A script calls it before it imports models."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scripts.operations_settings")
    if name is not None:
        sqlite = os.environ.get("CONVEYOR_OPERATIONS_DATABASE") == "sqlite"
        os.environ.setdefault(
            "CONVEYOR_OPERATIONS_DATABASE_NAME", f"/tmp/{name}.sqlite3" if sqlite else name
        )
    django.setup()


def prepare() -> None:
    """Create the database (PostgreSQL and MariaDB) if needed, then migrate."""
    name = settings.DATABASES["default"]["NAME"]
    if connection.vendor == "postgresql":
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    elif connection.vendor == "mysql":
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    call_command("migrate", verbosity=0)
