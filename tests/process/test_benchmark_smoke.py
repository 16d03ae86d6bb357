"""The benchmark harness, conveyor only, on the suite's database: no peers, no bench venv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from benchmarks import report, sqlcount
from benchmarks.measurements import wait_drained
from benchmarks.processes import Workers
from conveyor import enqueue_many
from conveyor.models import TaskRecord
from tests.tasksapp.tasks import noop

pytestmark = pytest.mark.process


def test_drain_is_timed_until_every_task_has_finished(
    transactional_db: None, worker_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    enqueue_many(noop, [((), {})] * 50)
    env = {**worker_env(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    log = tmp_path / "workers.log"
    connection.ensure_connection()
    with Workers([["conveyor_worker", "--verbosity", "0", "-c", "4"]], env, log) as workers:
        polls = wait_drained(connection.connection, "conveyor_task", workers, log)
    assert polls >= 2
    assert TaskRecord.objects.finished().count() == 50, log.read_text()


def test_statement_kinds_are_first_keywords() -> None:
    assert sqlcount.statement_kind("  WITH picked AS (SELECT 1) UPDATE t") == "WITH"
    assert sqlcount.statement_kind("(select 1)") == "SELECT"


def test_ratios_pair_repeats_run_side_by_side() -> None:
    assert report.pair_ratio([10.0, 30.0, 20.0], [5.0, 10.0, 10.0]) == 2.0
    assert report.pair_ratio([10.0, 20.0], [5.0]) == 3.0  # each repeat meets the only one
    assert report.pair_ratio([], [5.0]) is None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert report.percentile(values, 0.5) == 50.0
    assert report.percentile(values, 0.95) == 95.0
    assert report.percentile(values, 1.0) == 100.0


def test_celery_runs_at_its_best_pool_for_each_size() -> None:
    from benchmarks.celerybench import worker_argvs
    from benchmarks.measurements import variants

    by_key = {v.key: worker_argvs(v) for v in variants(64)}
    pools = {
        key: [argv[argv.index("--pool") + 1 :] for argv in argvs] for key, argvs in by_key.items()
    }
    assert pools["drain_1"] == [["solo"]]
    assert pools["drain_2"] == [["prefork", "--concurrency", "2"]]
    assert pools["drain_1_threads"] == [["threads", "--concurrency", "64"]]
    assert pools["drain_supervised_threads"] == [["threads", "--concurrency", "64"]] * 2


def test_conveyor_drains_name_their_sizes_and_one_uses_the_worker_s_defaults() -> None:
    from benchmarks.measurements import variants
    from benchmarks.systems import CONVEYOR, SYSTEMS, TASKS_DB

    by_key = {v.key: v for v in variants(64)}
    conveyor = SYSTEMS[CONVEYOR]
    base = ["conveyor_worker", "--verbosity", "0"]
    assert by_key["drain_1"].argvs(conveyor) == [[*base, "--concurrency", "1", "--processes", "1"]]
    assert (
        by_key["drain_2"].argvs(conveyor) == [[*base, "--concurrency", "1", "--processes", "1"]] * 2
    )
    assert by_key["drain_defaults"].argvs(conveyor) == [base]
    assert not by_key["drain_defaults"].applies_to(SYSTEMS[TASKS_DB])
    peer = ["db_worker", "--verbosity", "0", "--no-startup-delay"]
    assert by_key["drain_1"].argvs(SYSTEMS[TASKS_DB]) == [peer]


def test_the_scale_curve_reports_rates_per_process_and_cpu_per_task() -> None:
    from benchmarks import scale

    found = {
        **{"count": 1001, "seconds": 2.0, "busy_seconds": 1.0, "processes": 4},
        **{"concurrency": 16, "peak_connections": 28, "load_average": 3.0},
        **{"worker_cpu_seconds": 0.5, "backend_cpu_seconds": 0.25, "machine_busy_cores": 1.9},
    }
    figures = scale.summary(found)
    assert (figures["busy_rate"], figures["per_process"]) == (1000.0, 250.0)
    assert round(figures["worker_us"] or 0) == 500
    assert round(figures["backend_us"] or 0) == 250
    table = scale.markdown({"4 x 16": [found]})
    assert "| 4 x 16 | 500 | 1,000 | 250 | 28 | 500 | 250 | 1.90 | 3.00 |" in table
    assert all(cpu >= 0 for _, _, cpu in scale.process_cpu())


def test_an_unreachable_broker_is_named_with_the_reason() -> None:
    from benchmarks.celerybench import unreachable

    reason = unreachable("amqp://guest:guest@127.0.0.1:1//")
    assert reason.startswith("amqp at 127.0.0.1:1 not reachable (")


def test_a_peer_measured_at_the_same_size_is_compared_on_its_own_row() -> None:
    results = {
        "databases": {
            "postgresql": {
                "one": {"label": "one", "unit": "tasks/s", "higher_is_better": True,
                        "samples": {"conveyor": [100.0], "celery-redis": [50.0]}},
                "threads": {"label": "threads", "unit": "tasks/s", "higher_is_better": True,
                            "samples": {"conveyor": [400.0], "celery-redis": [100.0]}},
            }
        }
    }  # fmt: skip
    systems = ["conveyor", "celery-redis"]
    table = report.markdown(report.rows(results, systems), systems, {"threads": "one"})
    assert "| threads | tasks/s ↑ | 400 | 100 | 4.00x |" in table


def test_io_cases_measure_async_at_each_claim_size_and_sync_at_each_thread_count() -> None:
    from benchmarks.iobound import ASYNC, SYNC, cases

    found = [(case.task, case.concurrency, case.ideal) for case in cases(64, [16, 512])]
    assert found == [
        (ASYNC, 1, 20_000.0),  # 1,000 async slots, each waiting 50 ms
        (ASYNC, 64, 20_000.0),
        (ASYNC, 512, 20_000.0),
        (SYNC, 16, 320.0),  # 16 threads, each waiting 50 ms
        (SYNC, 512, 10_240.0),
    ]
    assert [case.tasks(10_000) for case in cases(64, [16])] == [1_000] + [10_000] * 3
