"""manage.py conveyor_status on every database: the table, --json, and --check."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord, WorkerRecord
from tests.conftest import ROOT, wait_until
from tests.factories import ago, enqueue, later
from tests.tasksapp.tasks import add, sleep

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def register(
    worker_id: str,
    *,
    seconds_ago: float = 0,
    queues: list[str] | None = None,
    excluded: list[str] | None = None,
) -> None:
    WorkerRecord.objects.create(
        worker_id=worker_id,
        backend_name="default",
        host="host-a",
        pid=99,
        queues=queues or [],
        excluded_queues=excluded or [],
        last_heartbeat_at=Now() - timedelta(seconds=seconds_ago),
    )


def status(*args: str) -> tuple[int, str, str]:
    """Run the command in this process; return (exit status, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("conveyor_status", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def status_json(*args: str) -> dict[str, Any]:
    _, out, _ = status("--json", *args)
    document: dict[str, Any] = json.loads(out)
    return document


def queues_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (backend,) = document["backends"]
    return {queue["queue"]: queue for queue in backend["queues"]}


@pytest.fixture
def history(db: None) -> None:
    """Tasks in every state on two queues, one live worker for 'default' and one dead one."""
    enqueue(available_after=ago(minutes=5))
    enqueue(available_after=ago(seconds=5))
    enqueue(available_after=later(hours=1))
    enqueue(status=RUNNING, worker_id="live")
    enqueue(status=SUCCESSFUL, finished_at=ago(seconds=20))
    enqueue(status=FAILED, finished_at=ago(minutes=10))
    enqueue(status=SUCCESSFUL, finished_at=ago(hours=2))
    enqueue(status=FAILED, finished_at=ago(seconds=20), queue_name="low_priority")
    register("live", queues=["default"])
    register("dead", seconds_ago=3600)


@pytest.mark.django_db
class TestReport:
    def test_json_counts_ages_recent_results_and_workers_per_queue(self, history: None) -> None:
        document = status_json()
        assert (document["healthy"], document["problems"]) == (True, [])
        queues = queues_of(document)
        assert sorted(queues) == ["default", "low_priority", "other"]
        default = queues["default"]
        counts = {k: default[k] for k in ("ready", "running", "successful", "failed", "due")}
        assert counts == {"ready": 3, "running": 1, "successful": 2, "failed": 1, "due": 2}
        assert 300 <= default["oldest_due_age_seconds"] < 360
        recent = [
            default[k]
            for k in (
                "finished_last_minute",
                "failed_last_minute",
                "finished_last_hour",
                "failed_last_hour",
            )
        ]
        assert recent == [1, 0, 2, 1]
        assert (default["live_workers"], default["dead_workers"]) == (1, 1)
        low = queues["low_priority"]
        assert (low["failed"], low["failed_last_minute"], low["due"]) == (1, 1, 0)
        assert low["oldest_due_age_seconds"] is None
        assert (low["live_workers"], low["dead_workers"]) == (0, 1)
        assert queues["other"]["ready"] == 0
        (backend,) = document["backends"]
        workers = {w["worker_id"]: w["alive"] for w in backend["workers"]}
        assert workers == {"live": True, "dead": False}
        assert (backend["live_workers"], backend["dead_workers"]) == (1, 1)

    def test_the_table_shows_queues_and_workers(self, history: None) -> None:
        code, out, _ = status()
        assert code == 0
        lines = out.splitlines()
        assert lines[0].startswith("Backend 'default'")
        header = next(line for line in lines if line.startswith("QUEUE"))
        assert "OLDEST DUE" in header
        default = next(line for line in lines if line.startswith("default "))
        assert default.split()[:3] == ["default", "3", "2"]
        assert any(
            line.startswith("live ") and line.split()[-2:] == ["live", "0"] for line in lines
        )
        assert any(
            line.startswith("dead ") and line.split()[-2:] == ["dead", "0"] for line in lines
        )

    def test_a_queue_outside_settings_is_reported_too(self, db: None) -> None:
        enqueue(queue_name="retired")
        assert queues_of(status_json())["retired"]["due"] == 1

    def test_an_unknown_backend_is_a_one_line_error(self, db: None) -> None:
        with pytest.raises(CommandError, match="No task backend 'nope' in TASKS"):
            call_command("conveyor_status", "--backend", "nope")


@pytest.mark.django_db
class TestCheck:
    def test_healthy_when_every_queue_with_due_tasks_has_a_live_worker(self, history: None) -> None:
        code, out, err = status("--check")
        assert (code, err) == (0, "")
        assert out.strip() == "OK: backend=default due=2 live_workers=1"

    def test_due_tasks_without_a_live_worker_are_unhealthy(self, history: None) -> None:
        enqueue(queue_name="low_priority", available_after=ago(seconds=1))
        code, out, err = status("--check")
        assert code == 1
        assert out == ""
        assert err.strip() == (
            "UNHEALTHY: backend=default queue=low_priority: 1 due task(s) and no live worker "
            "serves the queue"
        )

    def test_a_worker_does_not_count_for_the_queues_it_excludes(self, db: None) -> None:
        enqueue(queue_name="low_priority")
        enqueue()
        register("all-but-low", excluded=["low_priority"])
        code, _, err = status("--check")
        assert code == 1
        assert "queue=low_priority: 1 due task(s) and no live worker" in err
        assert "queue=default" not in err
        (worker,) = status_json()["backends"][0]["workers"]
        assert (worker["queues"], worker["excluded_queues"]) == ([], ["low_priority"])
        _, table, _ = status()
        assert "* except low_priority" in table

    def test_a_dead_worker_does_not_count(self, db: None) -> None:
        enqueue()
        register("dead", seconds_ago=3600)
        code, _, err = status("--check")
        assert code == 1
        assert "queue=default: 1 due task(s) and no live worker" in err

    def test_an_old_due_task_is_unhealthy_with_max_age(self, history: None) -> None:
        code, _, err = status("--check", "--max-age", "1 minute")
        assert code == 1
        assert err.count("\n") == 1
        assert "queue=default: oldest due task has waited 5m" in err
        assert "(more than 1m 0s)" in err
        assert status("--check", "--max-age", "10 minutes")[0] == 0

    def test_deferred_tasks_never_make_a_queue_unhealthy(self, db: None) -> None:
        enqueue(available_after=later(minutes=5))
        assert status("--check", "--max-age", "0")[0] == 0

    def test_json_with_check_prints_the_document_and_sets_the_exit_status(self, db: None) -> None:
        enqueue()
        code, out, err = status("--check", "--json")
        assert code == 1
        assert err == ""
        document = json.loads(out)
        assert document["healthy"] is False
        assert len(document["problems"]) == 1

    def test_check_reads_no_history(self, history: None) -> None:
        with CaptureQueriesContext(connection) as captured:
            status("--check")
        task_queries = [q["sql"] for q in captured if "conveyor_task" in q["sql"]]
        assert len(task_queries) == 1
        assert "READY" in task_queries[0]


def run_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", "conveyor_status", "--settings=tests.settings", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.process
def test_check_against_a_real_worker(start_worker: Any, worker_env: Any) -> None:
    options = {"heartbeat_interval": 1, "worker_timeout": 20}
    # One slot: while the sleeping task holds it, the next task stays due.
    worker = start_worker("--queue", "other", "--concurrency", "1", options=options)
    busy = sleep.using(queue_name="other").enqueue(30)
    wait_until(
        lambda: TaskRecord.objects.filter(pk=busy.id, status=RUNNING).exists(),
        what="the worker to run the sleeping task",
    )
    waiting = add.using(queue_name="other").enqueue(1, 2)
    env = worker_env(**options)
    healthy = run_command(env, "--check")
    assert (healthy.returncode, healthy.stderr) == (0, ""), worker.log()
    assert healthy.stdout.startswith("OK: backend=default due=1 live_workers=1")
    document = json.loads(run_command(env, "--json").stdout)
    other = queues_of(document)["other"]
    assert (other["running"], other["due"], other["live_workers"]) == (1, 1, 1)
    assert queues_of(document)["default"]["live_workers"] == 0
    add.enqueue(2, 3)
    unhealthy = run_command(env, "--check")
    assert unhealthy.returncode == 1
    assert unhealthy.stdout == ""
    assert unhealthy.stderr == (
        "UNHEALTHY: backend=default queue=default: 1 due task(s) and no live worker "
        "serves the queue\n"
    )
    assert TaskRecord.objects.get(pk=waiting.id).status == READY


@pytest.mark.process
def test_check_reports_an_unreachable_database(worker_env: Any, transactional_db: None) -> None:
    env = {**worker_env(), "CONVEYOR_TEST_DATABASE": "postgresql", "CONVEYOR_PG_PORT": "1"}
    env.pop("CONVEYOR_DATABASE_NAME")
    result = run_command(env, "--check")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("UNHEALTHY: database unreachable: ")


def test_a_bad_max_age_is_refused_before_anything_is_read(worker_env: Any) -> None:
    result = run_command(worker_env(), "--check", "--max-age", "soon")
    assert result.returncode == 2
    assert "--max-age: cannot read 'soon' as a duration" in result.stderr


@pytest.mark.django_db
def test_status_lists_schedules_and_the_ones_gone_from_settings(task_options: Any) -> None:
    backend = task_options(periodic={"sync": {"task": "tests.tasksapp.tasks.noop", "every": 60}})
    now = backend.store.database_now().replace(microsecond=0)
    task = backend.new_task(add, (1, 2), {})
    for name in ("sync", "retired"):
        backend.store.enqueue_tick(task, schedule_name=name, tick=now, window=timedelta(hours=1))
    (state,) = status_json()["backends"]
    schedules = {s["schedule"]: s for s in state["schedules"]}
    sync, retired = schedules["sync"], schedules["retired"]
    assert (sync["task"], sync["when"], sync["gone"]) == (
        "tests.tasksapp.tasks.noop",
        "every 1 minute",
        False,
    )
    assert (sync["last_tick"], sync["last_status"]) == (now.isoformat(), READY)
    assert sync["next_tick"] > now.isoformat()
    assert (retired["gone"], retired["next_tick"], retired["last_status"]) == (True, None, READY)
    _, out, _ = status()
    assert any(
        line.startswith("retired") and "gone from settings" in line for line in out.splitlines()
    )


@pytest.mark.django_db
def test_status_shows_paused_queues(backend: Any) -> None:
    backend.store.pause_queue("other")
    assert queues_of(status_json())["other"]["paused"] is True
    assert queues_of(status_json())["default"]["paused"] is False
    _, out, _ = status()
    assert "Paused: other (since " in out


@pytest.mark.django_db
def test_check_fails_when_a_live_worker_has_more_stuck_threads_than_allowed() -> None:
    register("w-stuck")
    WorkerRecord.objects.filter(worker_id="w-stuck").update(stuck_threads=2)
    assert status("--check", "--max-stuck", "2")[0] == 0
    code, _, err = status("--check", "--max-stuck", "1")
    assert code == 1
    assert "worker=w-stuck: 2 thread(s) stuck in tasks past their timeout (more than 1)" in err
    (worker,) = status_json()["backends"][0]["workers"]
    assert worker["stuck_threads"] == 2


@pytest.mark.django_db
def test_status_lists_concurrency_and_rate_limits(backend: Any) -> None:
    from tests.factories import claim_all
    from tests.tasksapp.tasks import call_partner, rate_limited

    for _ in range(3):
        call_partner.enqueue(4)
    for _ in range(4):
        rate_limited.enqueue()
    claim_all(backend.store, "w")
    (state,) = status_json()["backends"]
    (slots,) = state["concurrency_limits"]
    assert (slots["key"], slots["limit"], slots["holding"], slots["waiting"]) == (
        "tests.tasksapp.tasks.call_partner:4",
        2,
        2,
        1,
    )
    assert len(slots["running_holders"]) == 2
    (rate,) = state["rate_limits"]
    assert (rate["key"], rate["limit"], rate["starts"], rate["waiting"]) == (
        "tests.tasksapp.tasks.rate_limited",
        3,
        3,
        1,
    )
    assert rate["period_seconds"] == 1
    _, out, _ = status()
    assert "CONCURRENCY KEY" in out
    assert "RATE KEY" in out
