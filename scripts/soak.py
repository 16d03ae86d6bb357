"""Soak: one worker runs 100,000 tiny tasks while its memory and connections are sampled.

    .venv/bin/python -m scripts.soak --database postgresql [--tasks 100000] [--concurrency 1]

On a fresh database of its own (`soak`; a temporary file for SQLite) the script enqueues
no-op tasks in bulk, a --chunk at a time whenever fewer than half a chunk are waiting, and
runs them with one worker process (heartbeat every second, so its upkeep runs often too).
Every --every finished tasks it samples the worker's resident memory (VmRSS), threads and
open file descriptors from /proc; on PostgreSQL the sessions opened on the database since
the previous sample (pg_stat_database.sessions) and the connections open now
(pg_stat_activity), the script's own connection left out; on MariaDB the connections open
now and the new connection ids seen (the process list, read twice a second).

It prints a table and a verdict: memory is flat if the worker's RSS never exceeds its value
at the end of the warm-up (--warmup tasks, and at least WARMUP_SECONDS of the worker's life)
by more than --rss-tolerance MB; connections are flat if no session was opened after the
warm-up and as many are open at the end as then.
Exits 1 if either is not flat, or a task did not succeed.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scripts import reliability

WORKER_OPTIONS = {"heartbeat_interval": 1, "worker_timeout": 10}
# A worker's maintenance thread first looks for lost workers once it has been up for
# worker_timeout (then every heartbeat, jittered), and opens its connection then: the
# warm-up lasts at least that long, whatever the task count.
WARMUP_SECONDS = WORKER_OPTIONS["worker_timeout"] + 2 * WORKER_OPTIONS["heartbeat_interval"]
POLL_SECONDS = 0.5
TRANSIENT_FDS = 2


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=reliability.VENDORS, default="postgresql")
    parser.add_argument("--tasks", type=int, default=100_000, help="default: 100000")
    parser.add_argument("--concurrency", type=int, default=1, help="the worker's; default: 1")
    parser.add_argument("--chunk", type=int, default=10_000, help="tasks per enqueue; 10000")
    parser.add_argument("--every", type=int, default=5_000, help="tasks per sample; 5000")
    parser.add_argument("--warmup", type=int, default=10_000, help="tasks; default: 10000")
    parser.add_argument("--rss-tolerance", type=float, default=5.0, help="MB; default: 5")
    parser.add_argument("--name", default="soak", help="database name; default: soak")
    parser.add_argument("--json", type=Path, default=None, help="also write the samples here")
    return parser.parse_args()


# -- what a sample holds ---------------------------------------------------------------------


@dataclass
class Sample:
    tasks: int
    seconds: float
    rss_kb: int
    threads: int
    fds: int
    sessions_opened: int | None  # since the previous sample; None: not measurable
    connections_open: int | None


@dataclass
class Connections:
    """The worker's connections as the database server sees them."""

    vendor: str
    seen_ids: set[int] = field(default_factory=set)
    new_since_sample: int = 0
    sessions_before: int = 0

    def start(self) -> None:
        if self.vendor == "postgresql":
            self.sessions_before = self._pg_sessions()
        elif self.vendor == "mysql":
            self.seen_ids = set(self._mysql_ids())

    def poll(self) -> None:
        """Between samples: MariaDB counts no sessions, so new connection ids are watched."""
        if self.vendor == "mysql":
            ids = set(self._mysql_ids())
            self.new_since_sample += len(ids - self.seen_ids)
            self.seen_ids |= ids

    def sample(self) -> tuple[int | None, int | None]:
        """(sessions opened since the previous sample, connections open now)."""
        if self.vendor == "postgresql":
            sessions = self._pg_sessions()
            opened, self.sessions_before = sessions - self.sessions_before, sessions
            return opened, self._query(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        if self.vendor == "mysql":
            self.poll()
            opened, self.new_since_sample = self.new_since_sample, 0
            return opened, len(self._mysql_ids())
        return None, None

    def _pg_sessions(self) -> int:
        # Statistics are cached per transaction; clear the cache to read the current counter.
        self._query("SELECT pg_stat_clear_snapshot()")
        return int(
            self._query("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        )

    def _mysql_ids(self) -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
            return [row[0] for row in cursor.fetchall()]

    def _query(self, sql: str) -> Any:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]


# -- the run ---------------------------------------------------------------------------------


def succeeded() -> int:
    from conveyor.models import TaskRecord

    return TaskRecord.objects.filter(status="SUCCESSFUL").count()


def top_up(options: argparse.Namespace, enqueued: int, done: int) -> int:
    """Enqueue a chunk if fewer than half a chunk wait; return how many are enqueued now."""
    from conveyor import enqueue_many
    from tests.tasksapp.tasks import noop

    waiting = enqueued - done
    if enqueued >= options.tasks or waiting >= options.chunk // 2:
        return enqueued
    count = int(min(options.chunk, options.tasks - enqueued))
    enqueue_many(noop, [((), {})] * count)
    return enqueued + count


def wait_for_registration(worker: reliability.WorkerProcess) -> None:
    """Wait until the worker has started (imported, connected and registered)."""
    from conveyor.models import WorkerRecord

    deadline = time.monotonic() + 60
    while not WorkerRecord.objects.exists():
        if not worker.alive() or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {worker.log_path}")
        time.sleep(0.1)


def take(
    worker: reliability.WorkerProcess, connections: Connections, tasks: int, started: float
) -> Sample:
    figures = reliability.process_figures(worker.pid)
    opened, open_now = connections.sample()
    return Sample(
        tasks=tasks,
        seconds=time.monotonic() - started,
        rss_kb=figures["VmRSS"],
        threads=figures["Threads"],
        fds=figures["fds"],
        sessions_opened=opened,
        connections_open=open_now,
    )


def soak(
    options: argparse.Namespace, worker: reliability.WorkerProcess, connections: Connections
) -> list[Sample]:
    enqueued = top_up(options, 0, 0)
    started = time.monotonic()
    wait_for_registration(worker)
    samples = [take(worker, connections, succeeded(), started)]
    print_row(samples[0], None)
    next_mark = options.every
    while samples[-1].tasks < options.tasks:
        if not worker.alive():
            status = worker.popen.returncode
            raise SystemExit(f"the worker exited with {status}; see {worker.log_path}")
        time.sleep(POLL_SECONDS)
        connections.poll()
        done = succeeded()
        enqueued = top_up(options, enqueued, done)
        if done >= min(next_mark, options.tasks):
            samples.append(take(worker, connections, done, started))
            print_row(samples[-1], samples[-2])
            next_mark = (done // options.every + 1) * options.every
    return samples


def print_header() -> None:
    print(
        f"{'tasks':>7} {'seconds':>8} {'tasks/s':>8} {'RSS MB':>7} {'threads':>7} {'fds':>4} "
        f"{'sessions+':>9} {'open':>4}"
    )


def print_row(sample: Sample, previous: Sample | None) -> None:
    rate = ""
    if previous is not None and sample.seconds > previous.seconds:
        rate = f"{(sample.tasks - previous.tasks) / (sample.seconds - previous.seconds):.0f}"
    print(
        f"{sample.tasks:>7} {sample.seconds:>8.1f} {rate:>8} {sample.rss_kb / 1024:>7.1f} "
        f"{sample.threads:>7} {sample.fds:>4} {none_or(sample.sessions_opened):>9} "
        f"{none_or(sample.connections_open):>4}",
        flush=True,
    )


def none_or(value: int | None) -> str:
    return "-" if value is None else str(value)


def verdict(options: argparse.Namespace, samples: list[Sample]) -> bool:
    """Print whether memory and connections stayed flat after the warm-up; return whether."""
    steady = [s for s in samples if s.tasks >= options.warmup and s.seconds >= WARMUP_SECONDS]
    base = steady[0]
    growth_mb = (max(s.rss_kb for s in steady) - base.rss_kb) / 1024
    final_mb = (steady[-1].rss_kb - base.rss_kb) / 1024
    slope = statistics.linear_regression(
        [s.tasks for s in steady], [s.rss_kb / 1024 for s in steady]
    ).slope
    memory_flat = growth_mb <= options.rss_tolerance
    print(
        f"\nmemory: {'FLAT' if memory_flat else 'GROWS'} - RSS {base.rss_kb / 1024:.1f} MB at "
        f"{base.tasks} tasks, at most +{growth_mb:.1f} MB after (end {final_mb:+.1f} MB; "
        f"trend {slope * 10_000:+.2f} MB per 10,000 tasks; tolerance {options.rss_tolerance:g} MB)"
    )
    # A descriptor may be open for a moment (SQLite opens temporary files and closes them);
    # a leak is one that stays: compare the end with the warm-up, and bound the peaks.
    threads_flat = (
        len({s.threads for s in steady}) == 1
        and steady[-1].fds == base.fds
        and max(s.fds for s in steady) - base.fds <= TRANSIENT_FDS
    )
    print(
        f"threads and descriptors: {'FLAT' if threads_flat else 'CHANGE'} - threads "
        f"{sorted({s.threads for s in steady})}, fds {sorted({s.fds for s in steady})}"
    )
    if base.sessions_opened is None:
        print("connections: not measurable on SQLite (a file; see fds)")
        return memory_flat and threads_flat
    opened = sum(s.sessions_opened or 0 for s in steady[1:])
    open_counts = sorted({s.connections_open for s in steady if s.connections_open is not None})
    connections_flat = opened == 0 and steady[-1].connections_open == base.connections_open
    total = sum(s.sessions_opened or 0 for s in samples)
    print(
        f"connections: {'FLAT' if connections_flat else 'LEAK?'} - {opened} sessions opened "
        f"after the warm-up ({total} in all, from the first sample); open {open_counts}"
    )
    return memory_flat and threads_flat and connections_flat


def main() -> int:
    options = parse_arguments()
    reliability.setup(options.database, options.name, WORKER_OPTIONS)
    from django.db import connection

    reliability.recreate_database()
    reliability.exit_on_sigterm()
    print(f"soak on {reliability.describe_machine()}; load {reliability.load_average()}")
    print(
        f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {reliability.revision()}; "
        f"{options.tasks} no-op tasks, one "
        f"worker --concurrency {options.concurrency}, enqueued {options.chunk} at a time; "
        f"OPTIONS {WORKER_OPTIONS}",
        flush=True,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="conveyor-soak-"))
    connections = Connections(connection.vendor)
    connections.start()  # before the worker connects, so its first sessions are counted
    worker = reliability.WorkerProcess(
        ["--concurrency", str(options.concurrency)], log_path=log_dir / "worker.log", env={}
    )
    try:
        print_header()
        samples = soak(options, worker, connections)
        worker.signal(signal.SIGTERM)
        status = worker.wait(60)
    finally:
        worker.kill()
    return finish(options, samples, status, worker.log_path)


def finish(
    options: argparse.Namespace, samples: list[Sample], status: int | None, log_path: Path
) -> int:
    from conveyor.models import TaskRecord

    not_successful = TaskRecord.objects.exclude(status="SUCCESSFUL").count()
    flat = verdict(options, samples)
    log = log_path.read_text(errors="replace")
    print(
        f"tasks not SUCCESSFUL: {not_successful}; worker exit status {status}; "
        f"{log.count('Traceback')} tracebacks in {log_path}; load {reliability.load_average()}"
    )
    if options.json:
        options.json.write_text(json.dumps([vars(s) for s in samples], indent=1))
    ok = flat and not_successful == 0 and status == 0 and "Traceback" not in log
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
