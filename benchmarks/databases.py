"""The databases a benchmark runs on: Django settings, fresh copies, raw connections.

Every measurement gets a fresh, migrated database of its own. Migrating once per system and
copying is much faster than migrating every time, and gives the same state:
PostgreSQL copies a template database, SQLite copies a file, MariaDB (which has no
templates) truncates every table of a database migrated once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VENDORS = ("sqlite", "postgresql", "mariadb")

ROOT = Path(__file__).resolve().parent.parent
SQLITE_DIR = ROOT / ".cache" / "bench" / "sqlite"
# The names of every database a run creates on a server start with this; runs from two
# working trees against one server need different prefixes, as each drops its databases.
PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")
# Workers wait this long for SQLite's write lock before "database is locked".
SQLITE_TIMEOUT_SECONDS = 20


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def django_settings(vendor: str, name: str) -> dict[str, Any]:
    """The DATABASES["default"] entry of one benchmark database (a name, or a path for SQLite)."""
    # Persistent connections for every system: with Django's default CONN_MAX_AGE=0, a
    # worker that calls close_old_connections() between tasks would reconnect for each one.
    common: dict[str, Any] = {"CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": False}
    if vendor == "postgresql":
        return {
            **common,
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": env("BENCH_PG_USER", "postgres"),
            "PASSWORD": env("BENCH_PG_PASSWORD", ""),
            "HOST": env("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": env("BENCH_PG_PORT", "5432"),
        }
    if vendor == "mariadb":
        return {
            **common,
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": env("BENCH_MYSQL_USER", "root"),
            "PASSWORD": env("BENCH_MYSQL_PASSWORD", ""),
            "HOST": env("BENCH_MYSQL_HOST", "127.0.0.1"),
            "PORT": env("BENCH_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
        }
    if vendor == "sqlite":
        return {
            **common,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": SQLITE_TIMEOUT_SECONDS,
            },
        }
    raise ValueError(f"unknown database {vendor!r} (expected one of {', '.join(VENDORS)})")


@dataclass(frozen=True)
class Target:
    """One database of one system: what the settings module and the raw connections need."""

    vendor: str
    name: str  # database name, or file path for SQLite

    def environment(self) -> dict[str, str]:
        return {"BENCH_VENDOR": self.vendor, "BENCH_DB": self.name}


class Server:
    """Creates, copies and drops benchmark databases on one vendor's server."""

    vendor = ""

    def template(self, slug: str) -> Target:
        """Where the migrated template of one system lives (it may not exist yet)."""
        raise NotImplementedError

    def create_empty(self, target: Target) -> None:
        raise NotImplementedError

    def history(self, slug: str) -> Target:
        """The database of one system's history case, kept across repeats of one run."""
        raise NotImplementedError

    def working(self, slug: str) -> Target:
        """Where fresh() puts the database of one measurement."""
        raise NotImplementedError

    def fresh(self, slug: str) -> Target:
        """A fresh copy of the migrated template of one system."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def drop(self, target: Target) -> None:
        raise NotImplementedError

    def analyze(self, target: Target, tables: list[str]) -> None:
        """Refresh planner statistics, as autovacuum or InnoDB would soon after a bulk insert."""

    def connect(self, target: Target) -> AbstractContextManager[Any]:
        """A raw DB-API connection in autocommit mode."""
        raise NotImplementedError

    def span(self, connection: Any, table: str, since: datetime) -> tuple[Any, ...]:
        """(first started_at, last finished_at, count) of the tasks started since `since`,
        as aware datetimes; every system has these two columns."""
        cursor = connection.cursor()
        cursor.execute(
            f"SELECT MIN(started_at), MAX(finished_at), COUNT(*) FROM {table} "
            f"WHERE started_at >= {self.placeholder}",
            [self.stored_time(since)],
        )
        first, last, count = cursor.fetchone()
        return self.read_time(first), self.read_time(last), int(count)

    placeholder = "%s"

    def stored_time(self, moment: datetime) -> Any:
        """How Django stores an aware datetime here: naive UTC, except on PostgreSQL."""
        return moment.astimezone(UTC).replace(tzinfo=None)

    def read_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PostgreSQL(Server):
    vendor = "postgresql"

    def stored_time(self, moment: datetime) -> Any:
        return moment

    def template(self, slug: str) -> Target:
        return Target(self.vendor, f"{PREFIX}_{slug}_template")

    @contextmanager
    def connect(self, target: Target) -> Iterator[Any]:
        import psycopg

        settings = django_settings(self.vendor, target.name)
        connection = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"],
            host=settings["HOST"],
            port=settings["PORT"],
            autocommit=True,
        )
        try:
            yield connection
        finally:
            connection.close()

    def admin(self, sql: str) -> None:
        with self.connect(Target(self.vendor, "postgres")) as connection:
            connection.execute(sql)

    def create_empty(self, target: Target) -> None:
        self.drop(target)
        self.admin(f'CREATE DATABASE "{target.name}"')

    def history(self, slug: str) -> Target:
        return Target(self.vendor, f"{PREFIX}_{slug}_history")

    def working(self, slug: str) -> Target:
        return Target(self.vendor, f"{PREFIX}_{slug}")

    def version(self) -> str:
        with self.connect(Target(self.vendor, "postgres")) as connection:
            return "PostgreSQL " + str(connection.execute("SHOW server_version").fetchone()[0])

    def fresh(self, slug: str) -> Target:
        target = self.working(slug)
        self.drop(target)
        self.admin(f'CREATE DATABASE "{target.name}" TEMPLATE "{self.template(slug).name}"')
        return target

    def drop(self, target: Target) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{target.name}" WITH (FORCE)')

    def analyze(self, target: Target, tables: list[str]) -> None:
        with self.connect(target) as connection:
            for table in tables:
                connection.execute(f'VACUUM ANALYZE "{table}"')


class MariaDB(Server):
    vendor = "mariadb"

    def template(self, slug: str) -> Target:
        return Target(self.vendor, f"{PREFIX}_{slug}")

    @contextmanager
    def connect(self, target: Target) -> Iterator[Any]:
        import MySQLdb  # type: ignore[import-untyped,unused-ignore]

        settings = django_settings(self.vendor, target.name)
        connection = MySQLdb.connect(
            database=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"],
            host=settings["HOST"],
            port=int(settings["PORT"]),
            charset="utf8mb4",
            autocommit=True,
        )
        try:
            yield connection
        finally:
            connection.close()

    def admin(self, *statements: str, database: str = "mysql") -> None:
        with self.connect(Target(self.vendor, database)) as connection:
            cursor = connection.cursor()
            for sql in statements:
                cursor.execute(sql)

    def create_empty(self, target: Target) -> None:
        self.drop(target)
        self.admin(
            f"CREATE DATABASE `{target.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )

    def history(self, slug: str) -> Target:
        return Target(self.vendor, f"{PREFIX}_{slug}_history")

    def working(self, slug: str) -> Target:
        return self.template(slug)

    def version(self) -> str:
        with self.connect(Target(self.vendor, "mysql")) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT VERSION()")
            return "MariaDB " + str(cursor.fetchone()[0])

    def fresh(self, slug: str) -> Target:
        target = self.working(slug)
        with self.connect(target) as connection:
            cursor = connection.cursor()
            cursor.execute("SHOW TABLES")
            tables = [row[0] for row in cursor.fetchall() if row[0] != "django_migrations"]
            # TRUNCATE drops and recreates each InnoDB table: as fresh as a new database.
            cursor.execute("SET SESSION foreign_key_checks = 0")
            for table in tables:
                cursor.execute(f"TRUNCATE TABLE `{table}`")
        return target

    def drop(self, target: Target) -> None:
        self.admin(f"DROP DATABASE IF EXISTS `{target.name}`")

    def analyze(self, target: Target, tables: list[str]) -> None:
        with self.connect(target) as connection:
            cursor = connection.cursor()
            for table in tables:
                cursor.execute(f"ANALYZE TABLE `{table}`")
                cursor.fetchall()


class SQLite(Server):
    vendor = "sqlite"
    placeholder = "?"

    def stored_time(self, moment: datetime) -> Any:
        # Text that compares like the stored values ("YYYY-MM-DD HH:MM:SS.ffffff").
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")

    def template(self, slug: str) -> Target:
        return Target(self.vendor, str(SQLITE_DIR / f"{slug}.template.sqlite3"))

    @contextmanager
    def connect(self, target: Target) -> Iterator[Any]:
        import sqlite3

        connection = sqlite3.connect(
            target.name, timeout=SQLITE_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            yield connection
        finally:
            connection.close()

    def create_empty(self, target: Target) -> None:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        self.drop(target)

    def history(self, slug: str) -> Target:
        return Target(self.vendor, str(SQLITE_DIR / f"{slug}.history.sqlite3"))

    def working(self, slug: str) -> Target:
        return Target(self.vendor, str(SQLITE_DIR / f"{slug}.sqlite3"))

    def version(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"

    def fresh(self, slug: str) -> Target:
        template = self.template(slug)
        target = self.working(slug)
        self.drop(target)
        with self.connect(template) as connection:
            # Fold the WAL into the main file so that one copy holds everything.
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(template.name, target.name)
        return target

    def drop(self, target: Target) -> None:
        for extension in ("", "-wal", "-shm", "-journal"):
            Path(target.name + extension).unlink(missing_ok=True)


SERVERS: dict[str, type[Server]] = {cls.vendor: cls for cls in (PostgreSQL, MariaDB, SQLite)}


def server(vendor: str) -> Server:
    return SERVERS[vendor]()
