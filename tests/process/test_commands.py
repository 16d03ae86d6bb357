"""The management commands as a user runs them: help, bad arguments, output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from tests.conftest import ROOT
from tests.factories import ago, enqueue
from tests.tasksapp.tasks import add, low

pytestmark = pytest.mark.process


@pytest.fixture
def manage(transactional_db: None, worker_env: Callable[..., dict[str, str]]) -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args, "--settings=tests.settings"],
            env=worker_env(),
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        (
            "conveyor_worker",
            [
                "--queue",
                "--excluding",
                "--oneshot",
                "--concurrency",
                "--async-concurrency",
                "SIGTERM",
            ],
        ),
        ("conveyor_purge", ["finished", "unfinished", "--before", "--limit", "--dry-run"]),
    ],
)
@pytest.mark.any_database
def test_help_explains_the_command(manage: Any, command: str, phrases: list[str]) -> None:
    done = manage(command, "--help")
    assert done.returncode == 0
    for phrase in phrases:
        assert phrase in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["conveyor_worker", "--concurrency", "0"],
            "argument --concurrency/-c: must be at least 1",
        ),
        (
            ["conveyor_worker", "--async-concurrency", "0"],
            "argument --async-concurrency: must be at least 1, got 0",
        ),
        (
            ["conveyor_worker", "--async-concurrency", "many"],
            "argument --async-concurrency: expected a whole number, got 'many'",
        ),
        (["conveyor_worker", "--delay-min", "soon"], "expected milliseconds, got 'soon'"),
        (["conveyor_worker", "--queue", "nowhere"], "Queue 'nowhere' is not in TASKS['default']"),
        (["conveyor_worker", "--backend", "other"], "No task backend 'other' in TASKS"),
        (
            ["conveyor_worker", "--delay-min", "500", "--delay-max", "100"],
            "--delay-min must not be greater than --delay-max",
        ),
        (
            ["conveyor_worker", "--excluding", "default", "low_priority", "other"],
            "--excluding leaves no queue to run",
        ),
        (["conveyor_worker", "--oneshot", "--processes", "2"], "--oneshot runs in one process"),
        (["conveyor_worker", "--id", ""], "--id must not be empty"),
        (["conveyor_worker", "--id", "x" * 129], "--id is 129 characters long; at most 128 fit"),
        (["conveyor_purge", "old"], "argument which: invalid choice: 'old'"),
        (
            ["conveyor_purge", "finished", "--before", "ages"],
            "cannot read 'ages' as a duration (use seconds, '10 days', '3 hours' or 'P10D')",
        ),
        (["conveyor_purge", "finished", "--limit", "-3"], "must be at least 1, got -3"),
    ],
)
@pytest.mark.any_database
def test_bad_arguments_get_a_one_line_error(manage: Any, args: list[str], message: str) -> None:
    done = manage(*args)
    assert done.returncode != 0
    error_lines = [line for line in done.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, done.stderr
    assert message in error_lines[0]
    assert "Traceback" not in done.stderr


def test_worker_queue_selection(manage: Any) -> None:
    default, other = add.enqueue(1, 1), low.enqueue(2)
    assert manage("conveyor_worker", "--oneshot", "--excluding", "default").returncode == 0
    statuses = dict(TaskRecord.objects.values_list("pk", "status"))
    assert statuses[int(other.id)] == TaskResultStatus.SUCCESSFUL
    assert statuses[int(default.id)] == TaskResultStatus.READY
    assert manage("conveyor_worker", "-o", "-q", "default").returncode == 0
    assert TaskRecord.objects.get(pk=default.id).status == TaskResultStatus.SUCCESSFUL


def test_purge_prints_what_it_deleted(manage: Any) -> None:
    for _ in range(3):
        enqueue(status=TaskResultStatus.SUCCESSFUL, finished_at=ago(days=11))
    enqueue(status=TaskResultStatus.FAILED, finished_at=ago(days=2))
    stale = enqueue(enqueued_at=ago(days=21), available_after=ago(days=21))

    dry = manage("conveyor_purge", "finished", "--dry-run")
    assert dry.stdout.strip() == "Would delete 3 finished task(s) older than 10 days."
    assert TaskRecord.objects.count() == 5

    done = manage("conveyor_purge", "finished", "--limit", "2")
    assert done.stdout.strip() == "Deleted 2 finished task(s) older than 10 days."
    done = manage("conveyor_purge", "finished", "--before", "1 day")
    assert done.stdout.strip() == "Deleted 2 finished task(s) older than 1 day."
    done = manage("conveyor_purge", "unfinished")
    assert done.stdout.strip() == "Deleted 1 unfinished task(s) older than 20 days."
    assert not TaskRecord.objects.filter(pk=stale.pk).exists()
    assert not TaskRecord.objects.exists()


@pytest.mark.any_database
def test_purge_without_a_cut_off_says_how_to_give_one(manage: Any, worker_env: Any) -> None:
    env = worker_env(purge={})
    done = subprocess.run(
        [sys.executable, "-m", "django", "conveyor_purge", "finished", "--settings=tests.settings"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "No cut-off: pass --before or set TASKS['default']['OPTIONS']['purge']" in done.stderr
