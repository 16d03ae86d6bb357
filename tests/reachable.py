"""Exit 0 if the database CONVEYOR_TEST_DATABASE names can be reached, else print why."""

from __future__ import annotations

import sys


def main() -> int:
    import django
    from django.conf import settings
    from django.db import connection

    try:
        import tests.settings
    except SystemExit as exc:
        print(exc)
        return 1
    settings.configure(
        DATABASES=tests.settings.DATABASES, INSTALLED_APPS=[], USE_TZ=True, SECRET_KEY="x"
    )
    django.setup()
    try:
        if connection.vendor != "sqlite":  # SQLite needs no server
            # Without the database name: the suite creates its own test database.
            with connection._nodb_cursor() as cursor:
                cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable; say why
        print(f"cannot connect: {str(exc).strip().splitlines()[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
