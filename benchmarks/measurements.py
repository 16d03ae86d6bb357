"""Each measurement, on one system and one database: what it sets up and what it times."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import sqlcount
from benchmarks.cpu import CpuTrace
from benchmarks.databases import Server, Target
from benchmarks.processes import BenchError, Workers, environment, manage, run_driver
from benchmarks.profiling import Profiler
from benchmarks.systems import CONVEYOR, System

# Completion polling: cheap while READY rows remain, fine-grained for the last running ones.
POLL_READY_SECONDS = 0.05
POLL_RUNNING_SECONDS = 0.005
DRAIN_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class Variant:
    """One way of running workers for a drain."""

    key: str
    label: str
    processes: int = 1  # separate worker commands
    concurrency: int = 1  # conveyor --concurrency
    supervised: int = 1  # conveyor --processes
    conveyor_only: bool = False
    compare_with: str = ""  # the peers' variant with the same number of processes
    no_flags: bool = False  # conveyor_worker with its own default sizes

    def argvs(self, system: System) -> list[list[str]]:
        if self.no_flags:
            argv = system.worker_argv(concurrency=None, processes=None)
        else:
            argv = system.worker_argv(concurrency=self.concurrency, processes=self.supervised)
        return [argv] * self.processes

    def applies_to(self, system: System) -> bool:
        if self.no_flags:
            return system.name == CONVEYOR
        # Celery runs every size, threads too (its own threads pool).
        return system.name == CONVEYOR or system.is_celery or not self.conveyor_only


def variants(concurrency: int) -> list[Variant]:
    return [
        # Compared with the peers' own default command: what a user gets without flags.
        Variant(
            "drain_defaults",
            "drain, conveyor_worker with no flags",
            no_flags=True,
            conveyor_only=True,
            compare_with="drain_1",
        ),
        Variant("drain_1", "drain, 1 worker process"),
        Variant("drain_2", "drain, 2 worker processes", processes=2),
        Variant(
            "drain_1_threads",
            f"drain, 1 process, conveyor --concurrency {concurrency}",
            concurrency=concurrency,
            conveyor_only=True,
            compare_with="drain_1",
        ),
        Variant(
            "drain_supervised_threads",
            f"drain, conveyor --processes 2 --concurrency {concurrency}",
            supervised=2,
            concurrency=concurrency,
            conveyor_only=True,
            compare_with="drain_2",
        ),
    ]


class Harness:
    """Runs measurements for one database server; logs go to `logs`."""

    def __init__(self, server: Server, logs: Path) -> None:
        self.server = server
        self.logs = logs

    def log(self, system: System, what: str) -> Path:
        return self.logs / f"{self.server.vendor}-{system.slug}-{what}.log"

    # -- databases ------------------------------------------------------------------------

    def migrate(self, system: System, target: Target) -> None:
        self.server.create_empty(target)
        manage(system, target, "migrate", "--verbosity", "0", log=self.log(system, "migrate"))

    def prepare(self, system: System) -> Target:
        """Migrate the template database every fresh database of this system copies."""
        template = self.server.template(system.slug)
        self.migrate(system, template)
        return template

    def fresh(self, system: System) -> Target:
        return self.server.fresh(system.slug)

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(self, system: System, count: int) -> dict[str, Any]:
        """Enqueue `count` no-op tasks one by one, each in its own transaction."""
        target = self.fresh(system)
        return run_driver(system, target, "enqueue", "--count", str(count))

    def bulk(self, system: System, target: Target, count: int) -> dict[str, Any]:
        """Enqueue `count` no-op tasks with the system's bulk API, in one call."""
        result = run_driver(system, target, "enqueue", "--bulk", "--count", str(count))
        self.server.analyze(target, [system.table])
        return result

    # -- drain ----------------------------------------------------------------------------

    def drain(self, system: System, variant: Variant, count: int) -> dict[str, Any]:
        """Bulk-enqueue `count` tasks into a fresh database (timed as a bulk sample), then
        time from starting the workers until every task has finished."""
        target = self.fresh(system)
        bulk = self.bulk(system, target, count)
        result = self.run_workers(system, target, variant.argvs(system), count, variant.key)
        return {**result, "bulk": bulk}

    def run_workers(
        self,
        system: System,
        target: Target,
        argvs: list[list[str]],
        count: int,
        what: str,
        *,
        on_start: Callable[[Workers], Any] | None = None,
        **env: str,
    ) -> dict[str, Any]:
        since = datetime.now(UTC)
        log = self.log(system, what)
        with (
            self.server.connect(target) as connection,
            Workers(argvs, environment(system, target, **env), log) as workers,
        ):
            started = time.perf_counter()
            watcher = on_start(workers) if on_start else None
            cpu = CpuTrace(workers.pids)
            try:
                polls = wait_drained(connection, system.table, workers, log, cpu)
            finally:
                seconds = time.perf_counter() - started
                cpu.sample(force=True)
                if watcher is not None:
                    watcher.stop()
            first, last, ran = self.server.span(connection, system.table, since)
        if ran != count:
            raise BenchError(
                f"{system.name} on {self.server.vendor}: {ran} of {count} tasks ran; see {log}"
            )
        result = {
            "count": count,
            "seconds": seconds,
            "polls": polls + 1,
            # Other work on the machine shows here: a benchmark wants it near zero.
            "load_average": os.getloadavg()[0],
        }
        if first and last:
            result["startup_seconds"] = (first - since).total_seconds()
            result["busy_seconds"] = (last - first).total_seconds()
        return {**result, **cpu.result(first, count)}

    def profiled_drain(
        self, system: System, variant: Variant, count: int, raw: Path
    ) -> dict[str, Any]:
        """A drain with py-spy sampling the (single) worker process from its start."""
        target = self.fresh(system)
        self.bulk(system, target, count)
        raw.unlink(missing_ok=True)
        return self.run_workers(
            system,
            target,
            variant.argvs(system),
            count,
            f"profile-{variant.key}",
            on_start=lambda workers: Profiler(workers.pids[0], raw),
        )

    # -- latency --------------------------------------------------------------------------

    def latency(self, system: System, samples: int) -> dict[str, Any]:
        """Start latencies of `samples` tasks enqueued one at a time into an idle worker."""
        target = self.fresh(system)
        stamps = self.logs / f"{self.server.vendor}-{system.slug}-stamps.txt"
        stamps.unlink(missing_ok=True)
        env = environment(system, target, BENCH_STAMP_FILE=str(stamps))
        with Workers([system.worker_argv()], env, self.log(system, "latency")):
            return run_driver(
                system,
                target,
                "latency",
                "--count",
                str(samples),
                "--stamp-file",
                str(stamps),
                env=env,
            )

    # -- history --------------------------------------------------------------------------

    def prepare_history(self, system: System, rows: int, deferred: int = 0) -> dict[str, Any]:
        """A database holding `rows` finished tasks (one task is run for real, then copied)
        and `deferred` tasks due in a day."""
        target = self.server.history(system.slug)
        self.migrate(system, target)
        run_driver(system, target, "enqueue", "--count", "1", "--warmup", "0")
        manage(system, target, *system.worker_argv(), *system.batch_args,
               log=self.log(system, "history"))  # fmt: skip
        result = run_driver(
            system, target, "history", "--rows", str(rows), "--deferred", str(deferred)
        )
        self.server.analyze(target, self.tables(system, target))
        return result

    def history_drain(self, system: System, count: int) -> dict[str, Any]:
        """Drain `count` tasks with one worker process, on top of the history (which keeps
        the tasks drained by earlier repeats)."""
        target = self.server.history(system.slug)
        bulk = self.bulk(system, target, count)
        self.server.analyze(target, self.tables(system, target))
        argvs = [system.worker_argv()]
        return {**self.run_workers(system, target, argvs, count, "history"), "bulk": bulk}

    def drop_history(self, system: System) -> None:
        self.server.drop(self.server.history(system.slug))

    def tables(self, system: System, target: Target) -> list[str]:
        """The system's tables (its task table and those beside it, such as attempts)."""
        prefix = f"{system.label}_"
        with self.server.connect(target) as connection:
            cursor = connection.cursor()
            if self.server.vendor == "postgresql":
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            elif self.server.vendor == "mariadb":
                cursor.execute("SHOW TABLES")
            else:
                cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return sorted(row[0] for row in cursor.fetchall() if row[0].startswith(prefix))

    # -- statements -----------------------------------------------------------------------

    def statements(self, system: System, count: int, concurrency: int) -> dict[str, Any]:
        """SQL statements per enqueue, per bulk-enqueued task and per drained task."""
        target = self.fresh(system)
        single = run_driver(system, target, "enqueue", "--count", "100", "--count-sql")
        target = self.fresh(system)
        bulk = run_driver(system, target, "enqueue", "--bulk", "--count", str(count),
                          "--count-sql", "--warmup", "0")  # fmt: skip
        result: dict[str, Any] = {
            "enqueue": per_task(single["statements"], 100),
            "bulk": per_task(bulk["statements"], count),
        }
        result["drain"] = self.counted_drain(system, target, [system.worker_argv()], count)
        if system.name == CONVEYOR and concurrency > 1:
            target = self.fresh(system)
            self.bulk(system, target, count)
            argvs = [system.worker_argv(concurrency=concurrency)]
            result["drain_threads"] = self.counted_drain(system, target, argvs, count)
        return result

    def counted_drain(
        self, system: System, target: Target, argvs: list[list[str]], count: int
    ) -> dict[str, Any]:
        transactions_before = self.transactions(target)
        with tempfile.TemporaryDirectory() as directory:
            drained = self.run_workers(
                system, target, argvs, count, "statements", BENCH_SQL_COUNT_DIR=directory
            )
            counts = sqlcount.read(Path(directory))
        result = per_task(counts, count)
        if transactions_before is not None:
            time.sleep(1.0)  # exited backends flush their statistics as they go
            after = self.transactions(target)
            assert after is not None
            # Each completion poll is one autocommit transaction of our own.
            result["transactions"] = (after - transactions_before - drained["polls"]) / count
        return result

    def transactions(self, target: Target) -> int | None:
        """Transactions committed or rolled back in a PostgreSQL database so far."""
        if self.server.vendor != "postgresql":
            return None
        with self.server.connect(Target(target.vendor, "postgres")) as connection:
            row = connection.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                [target.name],
            ).fetchone()
        return int(row[0])


def per_task(counts: dict[str, int], count: int) -> dict[str, Any]:
    return {
        "total": sum(counts.values()) / count,
        "by_kind": {kind: n / count for kind, n in sorted(counts.items())},
    }


def exists(connection: Any, table: str, status: str) -> bool:
    cursor = connection.cursor()
    # Constants only; every system's status column holds these words. Deferred tasks of the
    # history case (due in a day) are not part of any drain.
    cursor.execute(
        f"SELECT 1 FROM {table} WHERE status = '{status}' AND queue_name <> 'deferred' LIMIT 1"
    )
    found = cursor.fetchone() is not None
    cursor.close()
    return found


def wait_drained(
    connection: Any, table: str, workers: Workers, log: Path, cpu: CpuTrace | None = None
) -> int:
    """Poll until no task is READY or RUNNING, sampling the workers' CPU at each poll;
    return the number of polls.

    Both questions are asked separately so that each can use an index on status (every
    system has one that serves READY; the RUNNING question is asked only at the end).
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    polls = 0
    for status, interval in (("READY", POLL_READY_SECONDS), ("RUNNING", POLL_RUNNING_SECONDS)):
        while True:
            polls += 1
            if cpu is not None:
                cpu.sample()
            if not exists(connection, table, status):
                break
            if not workers.alive():
                raise BenchError(f"every worker exited before the drain ended; see {log}")
            if time.monotonic() > deadline:
                raise BenchError(f"drain did not end in {DRAIN_TIMEOUT_SECONDS:.0f}s; see {log}")
            time.sleep(interval)
    # A task another worker held could have been handed back; ask once more.
    polls += 1
    if exists(connection, table, "READY"):
        return polls + wait_drained(connection, table, workers, log, cpu)
    return polls
