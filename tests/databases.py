"""The databases the suite runs on, picked by CONVEYOR_TEST_DATABASE."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

VENDORS = ("sqlite", "postgresql", "mariadb")


def selected() -> str:
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    if vendor not in VENDORS:
        raise SystemExit(f"CONVEYOR_TEST_DATABASE must be one of {', '.join(VENDORS)}: {vendor!r}")
    return vendor


# Each test run gets its own test database, so runs in parallel never share one.
RUN_SUFFIX = os.environ.get("CONVEYOR_TEST_RUN", str(os.getpid()))


def database_settings(vendor: str, *, sqlite_path: Path | None = None) -> dict[str, Any]:
    """Settings of the default database for a vendor; servers come from the environment."""
    env = os.environ.get
    if vendor == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env("CONVEYOR_PG_NAME", "conveyor"),
            "USER": env("CONVEYOR_PG_USER", "postgres"),
            "PASSWORD": env("CONVEYOR_PG_PASSWORD", ""),
            "HOST": env("CONVEYOR_PG_HOST", "127.0.0.1"),
            "PORT": env("CONVEYOR_PG_PORT", "5432"),
            "TEST": {"NAME": env("CONVEYOR_PG_TEST_NAME", f"test_conveyor_{RUN_SUFFIX}")},
        }
    if vendor == "mariadb":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": env("CONVEYOR_MYSQL_NAME", "conveyor"),
            "USER": env("CONVEYOR_MYSQL_USER", "root"),
            "PASSWORD": env("CONVEYOR_MYSQL_PASSWORD", ""),
            "HOST": env("CONVEYOR_MYSQL_HOST", "127.0.0.1"),
            "PORT": env("CONVEYOR_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": env("CONVEYOR_MYSQL_TEST_NAME", f"test_conveyor_{RUN_SUFFIX}"),
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
        }
    default_path = Path(tempfile.gettempdir()) / f"conveyor-{RUN_SUFFIX}.sqlite3"
    path = sqlite_path or Path(env("CONVEYOR_SQLITE_PATH", str(default_path)))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 5,
        },
        # A file, not memory: worker processes started by the tests share it.
        "TEST": {"NAME": str(path.with_name("test_" + path.name))},
    }
