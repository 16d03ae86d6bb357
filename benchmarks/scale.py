"""./dev bench --only scale: drains against one PostgreSQL with 1, 2, 4, ... worker processes.

Each step is one `conveyor_worker --processes N --concurrency C` command (the supervisor
starts N workers) draining no-op tasks from a fresh database. Beside the rate, a thread
samples what the step costs the server: the peak of connections to the database
(pg_stat_activity), and at the end the CPU time of the worker processes and of their
PostgreSQL backends (from /proc), and how busy the whole machine was (/proc/stat), so that
a curve that flattens says which side ran out.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.cpu import TICKS_PER_SECOND, processes
from benchmarks.databases import Server, Target
from benchmarks.measurements import Harness
from benchmarks.processes import Workers
from benchmarks.systems import System

SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Step:
    """One size of the curve: worker processes, each with `concurrency` threads."""

    processes: int
    concurrency: int

    @property
    def key(self) -> str:
        return f"scale_{self.processes}x{self.concurrency}"

    def argv(self, system: System) -> list[str]:
        return system.worker_argv(concurrency=self.concurrency, processes=self.processes)


class Watch:
    """Samples one database's connections while a drain runs; stop() adds up the CPU."""

    def __init__(self, server: Server, target: Target, workers: Workers) -> None:
        self.server = server
        self.target = target
        self.sessions = set(workers.pids)  # each worker command leads a session of its own
        self.backends: set[int] = set()
        self.peak_connections = 0
        self.figures: dict[str, Any] = {}
        self._machine = machine_ticks()
        self._started = time.perf_counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="scale-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        with self.server.connect(self.target) as connection:
            while not self._done.is_set():
                self._look(connection)
                self._done.wait(SAMPLE_SECONDS)
            self._look(connection)

    def _look(self, connection: Any) -> None:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.target.name],
        ).fetchall()
        self.backends.update(row[0] for row in rows)
        self.peak_connections = max(self.peak_connections, len(rows))

    def stop(self) -> None:
        """Called as the drain ends, while the workers and their backends still run."""
        self._done.set()
        self._thread.join()
        seconds = time.perf_counter() - self._started
        busy, total = (now - then for now, then in zip(machine_ticks(), self._machine, strict=True))
        processes = list(process_cpu())
        self.figures = {
            "peak_connections": self.peak_connections,
            "worker_cpu_seconds": sum(
                cpu for pid, session, cpu in processes if session in self.sessions
            ),
            "backend_cpu_seconds": sum(cpu for pid, _, cpu in processes if pid in self.backends),
            # Cores busy on average, out of os.cpu_count(), whoever used them.
            "machine_busy_cores": (os.cpu_count() or 1) * busy / total if total else None,
            "watched_seconds": seconds,
        }


def machine_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine since boot (/proc/stat)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def process_cpu() -> list[tuple[int, int, float]]:
    """(pid, session id, CPU seconds used so far) of every process that can be read."""
    return [
        (pid, session, (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND)
        for pid, session, fields in processes()
    ]


def drain(harness: Harness, system: System, step: Step, count: int) -> dict[str, Any]:
    """Bulk-enqueue `count` tasks into a fresh database, drain them with one step's
    command, and return the drain's figures with the Watch's."""
    target = harness.fresh(system)
    harness.bulk(system, target, count)
    watches: list[Watch] = []

    def watch(workers: Workers) -> Watch:
        watches.append(Watch(harness.server, target, workers))
        return watches[0]

    found = harness.run_workers(system, target, [step.argv(system)], count, step.key,
                                on_start=watch)  # fmt: skip
    found.update(watches[0].figures, processes=step.processes, concurrency=step.concurrency)
    return found


def summary(found: dict[str, Any]) -> dict[str, float | None]:
    """The figures of one drain that the curve's table shows."""
    count = found["count"]
    rate = count / found["seconds"]
    busy = found.get("busy_seconds")
    busy_rate = (count - 1) / busy if busy else None
    return {
        "rate": rate,
        "busy_rate": busy_rate,
        "per_process": busy_rate / found["processes"] if busy_rate else None,
        "connections": found["peak_connections"],
        "worker_us": 1e6 * found["worker_cpu_seconds"] / count,
        "backend_us": 1e6 * found["backend_cpu_seconds"] / count,
        "busy_cores": found["machine_busy_cores"],
        "load": found["load_average"],
    }


COLUMNS = (
    ("rate", "tasks/s (with start-up)"),
    ("busy_rate", "tasks/s (first start to last finish)"),
    ("per_process", "per process"),
    ("connections", "peak connections"),
    ("worker_us", "worker CPU µs/task"),
    ("backend_us", "PostgreSQL backends CPU µs/task"),
    ("busy_cores", "machine cores busy"),
    ("load", "load average (1 min)"),
)


def markdown(curve: dict[str, list[dict[str, Any]]]) -> str:
    """The curve as a Markdown table: one row per step, medians of its repeats."""
    from benchmarks.report import median, number

    if not curve:
        return ""
    header = ["worker processes x threads", *(title for _, title in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, drains in curve.items():
        rows = [summary(found) for found in drains]
        values = {key: median(row[key] for row in rows) for key, _ in COLUMNS}
        cells = [label] + [
            f"{values[key]:.0f}" if key == "connections" else number(values[key])
            for key, _ in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\nScaling out (PostgreSQL, conveyor):\n\n" + "\n".join(lines)
