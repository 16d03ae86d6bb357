"""Create the scripts' database if it is missing, and bring it up to date."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.db import connection


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
