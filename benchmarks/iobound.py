"""I/O-bound drains (conveyor only): tasks that wait 50 ms, as a network call would.

One worker process drains `--io-tasks` tasks of one kind from a fresh database, timed like
every drain (benchmarks.measurements: from starting the worker until every task has
finished, and from the tasks' first start to their last finish):

- async: `await asyncio.sleep(0.05)` on the worker's event loop, at `--concurrency 1`, at
  the threaded drains' `--concurrency` and at the largest of `--io-concurrency`; the async
  slots (`--async-concurrency`, 1000 by default) allow 20,000 tasks/s, so what bounds the
  rate is the worker's own cost per task and the claim size.
- sync: `time.sleep(0.05)` on threads, at each of `--io-concurrency`; the ideal rate is
  slots / 0.05 s, and the table says how close each comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.environment import say
from benchmarks.measurements import Harness
from benchmarks.processes import run_driver
from benchmarks.systems import CONVEYOR, SYSTEMS, System

if TYPE_CHECKING:
    from benchmarks.plan import Run

ASYNC, SYNC = "async_wait", "sync_wait"
# What each of those tasks waits (benchmarks.tasks.IO_WAIT_SECONDS, which the harness cannot
# import: defining a task needs Django set up).
IO_WAIT_SECONDS = 0.05
# conveyor_worker's default --async-concurrency (conveyor.worker.pool.ASYNC_CONCURRENCY).
ASYNC_SLOTS = 1000


@dataclass(frozen=True)
class IoCase:
    """One I/O-bound drain: which task, at which --concurrency."""

    task: str
    concurrency: int

    @property
    def key(self) -> str:
        return f"io_{self.task}_{self.concurrency}"

    @property
    def ideal(self) -> float:
        """Tasks/s if every slot waited all the time and the worker cost nothing."""
        slots = ASYNC_SLOTS if self.task == ASYNC else self.concurrency
        return slots / IO_WAIT_SECONDS

    def tasks(self, io_tasks: int) -> int:
        """How many tasks this drain runs: with one thread slot each claim takes one async
        task, about a hundred a second here, so a tenth of `io_tasks` measures it."""
        if self.task == ASYNC and self.concurrency == 1:
            return max(1, io_tasks // 10)
        return io_tasks

    def label(self, count: int) -> str:
        kind = "async, await" if self.task == ASYNC else "sync, time.sleep"
        wait = f"{IO_WAIT_SECONDS * 1000:.0f} ms"
        return f"io drain, {count:,} {kind} {wait}, 1 process, --concurrency {self.concurrency}"


def cases(concurrency: int, sync_concurrencies: list[int]) -> list[IoCase]:
    # A claim takes at most as many tasks as there are free thread slots (any of them could
    # be sync), so the async drain depends on --concurrency too: measured at 1, at the
    # threaded drains' size and at the largest sync size.
    sizes = sorted({1, concurrency, max(sync_concurrencies)})
    return [IoCase(ASYNC, n) for n in sizes] + [IoCase(SYNC, n) for n in sync_concurrencies]


def drain(harness: Harness, system: System, case: IoCase, count: int) -> dict[str, Any]:
    """Bulk-enqueue `count` tasks of the case into a fresh database, then time one worker
    process draining them."""
    target = harness.fresh(system)
    bulk = run_driver(system, target, "enqueue", "--bulk", "--count", str(count),
                      "--task", case.task)  # fmt: skip
    harness.server.analyze(target, [system.table])
    argvs = [system.worker_argv(concurrency=case.concurrency)]
    found = harness.run_workers(system, target, argvs, count, case.key)
    return {**found, "bulk": bulk, "ideal": case.ideal}


def measure(run: Run, vendor: str, harness: Harness) -> None:
    """Every io case, each repeat in turn, into the run's table."""
    options = run.options
    system = SYSTEMS[CONVEYOR]
    for repeat in range(options.repeats):
        for case in cases(options.concurrency, options.io_concurrency):
            count = case.tasks(options.io_tasks)
            found = run.attempt(f"{vendor} {case.key}", drain, harness, system, case, count)
            note = f"ideal {case.ideal:,.0f}/s"
            for suffix, label, value in (
                ("", "", rate(found)),
                ("_busy", ", first start to last finish", busy_rate(found)),
            ):
                entry = run.entry(vendor, case.key + suffix, case.label(count) + label,
                                  "tasks/s", higher_is_better=True, note=note)  # fmt: skip
                entry.add(CONVEYOR, value, found if not suffix else None)
            say(
                f"{vendor} {case.key} #{repeat + 1}: {text(rate(found))}, "
                f"busy {text(busy_rate(found))} ({note})"
            )


def rate(found: dict[str, Any] | None) -> float | None:
    if not found or not found.get("seconds"):
        return None
    return float(found["count"]) / float(found["seconds"])


def busy_rate(found: dict[str, Any] | None) -> float | None:
    if not found or not found.get("busy_seconds"):
        return None
    return (float(found["count"]) - 1) / float(found["busy_seconds"])


def text(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f} tasks/s"
