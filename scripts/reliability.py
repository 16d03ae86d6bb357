"""What the reliability scripts share: their own fresh database, worker processes, and a
description of the machine the figures come from."""

from __future__ import annotations

import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "scripts.reliability_settings"
VENDORS = ("postgresql", "mariadb", "sqlite")
# The port variables of tests.databases; a worker started with one of them set connects there.
PORT_VARIABLES = {"postgresql": "CONVEYOR_PG_PORT", "mariadb": "CONVEYOR_MYSQL_PORT"}


def setup(vendor: str, name: str, options: dict[str, Any]) -> None:
    """Point this process, and the workers it starts, at database `name` of `vendor` (a file
    in the temporary directory for SQLite); then set Django up."""
    if vendor == "sqlite":
        name = str(Path(tempfile.gettempdir()) / f"conveyor-{name}.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["CONVEYOR_RELIABILITY_DATABASE"] = vendor
    os.environ["CONVEYOR_RELIABILITY_DATABASE_NAME"] = name
    os.environ["CONVEYOR_RELIABILITY_OPTIONS"] = json.dumps(options)
    import django

    django.setup()


def recreate_database() -> None:
    """Drop the configured database if it exists, create it empty, and migrate it."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    name = settings.DATABASES["default"]["NAME"]
    connection.close()
    if connection.vendor == "postgresql":
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    elif connection.vendor == "mysql":
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)


class WorkerProcess:
    """A `manage.py conveyor_worker` process on the scripts' settings, logging to a file.

    It runs in a session of its own, so a Ctrl-C meant for the script does not reach it.
    """

    def __init__(self, args: list[str], *, log_path: Path, env: dict[str, str]) -> None:
        self.args = args
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "django",
            "conveyor_worker",
            f"--settings={SETTINGS_MODULE}",
        ]
        self.popen = subprocess.Popen(
            [*command, *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the exit status; None: it did not exit (killed)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)  # a stopped process cannot die
            self.popen.kill()
        self.popen.wait(10)
        self._log.close()


def process_figures(pid: int) -> dict[str, int]:
    """Resident memory (kB), threads and open file descriptors of a live process."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            figures[key] = int(value.split()[0])
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


def describe_machine() -> str:
    """CPU, memory, kernel, Python, Django and database server, in one line."""
    import django
    from django.db import connection

    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {memory_kb / 1024**2:.0f} GB RAM, "
        f"Linux {platform.release()}; Python {platform.python_version()}, "
        f"Django {django.get_version()}; {database_server(connection)}"
    )


def exit_on_sigterm() -> None:
    """Let SIGTERM end the script like Ctrl-C, through its cleanup (which stops its workers)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def revision() -> str:
    """The commit the code under test comes from, and whether src/ differs from it."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changed = subprocess.run(
        [*git, "status", "--porcelain", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"commit {commit or '?'}{' with uncommitted changes in src/' if changed else ''}"


def load_average() -> str:
    """The machine's load over the last 1, 5 and 15 minutes (other work shares it)."""
    return " ".join(f"{load:.1f}" for load in os.getloadavg())


def database_server(connection: Any) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return f"MariaDB {cursor.fetchone()[0].split('-')[0]}"
    return f"SQLite {sqlite3.sqlite_version}"
