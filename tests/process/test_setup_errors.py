"""The first mistakes of a new project get one clear line, no traceback, and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT

pytestmark = pytest.mark.process

# A project that left 'conveyor' out of INSTALLED_APPS; its app's tasks are imported as the
# app registry loads, as a models module that uses them would.
BARE_SETTINGS = """
SECRET_KEY = "not-secret"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
TASKS = {"default": {"BACKEND": "conveyor.backend.DatabaseBackend"}}
USE_TZ = True
"""


def django(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.any_database
def test_conveyor_missing_from_installed_apps_is_one_check_error(tmp_path: Path) -> None:
    (tmp_path / "bare_settings.py").write_text(BARE_SETTINGS)
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "__init__.py").write_text("")
    (shop / "models.py").write_text("from shop.tasks import hello  # noqa: F401\n")
    (shop / "tasks.py").write_text(
        "from conveyor.compat import task\n\n\n@task\ndef hello(): ...\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])}
    done = django("check", "--settings=bare_settings", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "?: (conveyor.E001) TASKS['default'] uses conveyor.backend.DatabaseBackend, but "
        "'conveyor' is not in INSTALLED_APPS." in done.stderr
    )
    assert "HINT: Add 'conveyor' to INSTALLED_APPS and run migrate." in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def empty_database(
    transactional_db: None, tmp_path: Path, worker_env: Callable[..., dict[str, str]]
) -> Iterator[dict[str, str]]:
    """The environment of a process whose database has no tables at all."""
    env = worker_env()
    if connection.vendor == "sqlite":
        env["CONVEYOR_DATABASE_NAME"] = str(tmp_path / "empty.sqlite3")
        yield env
        return
    name = f"conveyor_empty_{os.getpid()}"
    quoted = connection.ops.quote_name(name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        cursor.execute(f"CREATE DATABASE {quoted}")
    env["CONVEYOR_DATABASE_NAME"] = name
    yield env
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")


def test_a_worker_before_migrate_says_to_run_migrate(empty_database: dict[str, str]) -> None:
    done = django("conveyor_worker", "--oneshot", "--settings=tests.settings", env=empty_database)
    assert done.returncode == 1, done.stderr
    assert "conveyor's tables are missing or out of date on database 'default'" in done.stderr
    assert "0001_initial" in done.stderr
    assert done.stderr.strip().endswith("run manage.py migrate")
    assert "Traceback" not in done.stderr


def test_status_before_migrate_says_to_run_migrate(empty_database: dict[str, str]) -> None:
    done = django("conveyor_status", "--check", "--settings=tests.settings", env=empty_database)
    assert done.returncode == 1
    assert done.stderr.startswith("UNHEALTHY: conveyor's tables are missing or out of date")
    assert done.stderr.strip().endswith("run manage.py migrate")
    table = django("conveyor_status", "--settings=tests.settings", env=empty_database)
    assert table.returncode == 1
    assert "CommandError: Cannot read the database: conveyor's tables are missing" in table.stderr
