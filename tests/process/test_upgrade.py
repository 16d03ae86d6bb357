"""A project that moves to a newer Django (5.2 with the django-tasks backport -> 6.0 -> 6.1)
changes its imports and nothing of conveyor's tables: the tasks it enqueued on the older
Django are run, read and purged on the newer one.

The newer Django is another environment of this checkout (`.venv/` or `.venv-djangoXY/`, as
`./dev matrix` makes them); without one, the test is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import django
import pytest

from conveyor.models import Attempt, TaskRecord
from tests.conftest import ROOT
from tests.factories import ago
from tests.tasksapp.tasks import add, fail

RUN_TIMEOUT = 120


def django_version(python: Path) -> tuple[int, int]:
    done = subprocess.run(
        [python, "-c", "import django; print(*django.VERSION[:2])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    major, minor = done.stdout.split()
    return int(major), int(minor)


def newer_djangos() -> list[Path]:
    """The Pythons of this checkout's environments whose Django is newer than this one's."""
    found = [ROOT / ".venv" / "bin" / "python", *sorted(ROOT.glob(".venv-django*/bin/python"))]
    here = Path(sys.prefix).resolve()
    return [
        python
        for python in found
        if python.exists()
        and python.parent.parent.resolve() != here
        and django_version(python) > django.VERSION[:2]
    ]


def manage(python: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [python, "-m", "django", *args, "--settings=tests.settings"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{python} {args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.parametrize("newer", newer_djangos() or [None], ids=str)
def test_tasks_enqueued_on_an_older_django_run_and_purge_on_a_newer_one(
    newer: Path | None, transactional_db: None, worker_env: Callable[..., dict[str, str]]
) -> None:
    if newer is None:
        pytest.skip("no environment of a newer Django beside this one (./dev matrix makes them)")
    env = worker_env()
    succeeded, failed = add.enqueue(2, 3), fail.enqueue("on the old Django")
    # Nothing of conveyor's to migrate; migrate, as after any upgrade, gives the foreign keys
    # Django 6.1's ON DELETE CASCADE.
    manage(newer, env, "migrate", "--check")
    manage(newer, env, "migrate")
    manage(newer, env, "conveyor_worker", "--oneshot")
    succeeded.refresh()
    failed.refresh()
    assert (succeeded.status, succeeded.return_value) == ("SUCCESSFUL", 5)
    assert failed.status == "FAILED"
    assert "on the old Django" in failed.errors[0].traceback
    TaskRecord.objects.update(finished_at=ago(days=8))
    manage(newer, env, "conveyor_purge", "finished", "--before", "7 days")
    assert not TaskRecord.objects.exists()
    assert not Attempt.objects.exists()
