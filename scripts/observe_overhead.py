"""The per-task cost of metrics and of tracing: drains of no-op tasks by a real worker with
neither, with metrics (prometheus_client) and with tracing (OpenTelemetry's SDK, recording
every span and batching it to an exporter that discards it), interleaved.

    CONVEYOR_OPERATIONS_DATABASE_NAME=conveyor_observe \\
        .venv/bin/python -m scripts.observe_overhead --tasks 5000 --repeats 3
    CONVEYOR_OPERATIONS_DATABASE_NAME=conveyor_observe CONVEYOR_OBSERVE=tracing \\
        .venv/bin/python -m scripts.observe_overhead --hooks 20000 --repeats 5

Prints every drain, then per mode the median of its rates and the median over repeats of
its cost against the drain with neither of the same repeat (the machine's load changes
between repeats more than within one): 1 - rate / rate with neither; and the same for the
worker's CPU time per task (read from /proc at its first claim and as the drain ends), which
shows a cost that a drain waiting on the database would hide. With --hooks, times the hooks
alone in this process instead, in CPU time (the span processor's thread included), the modes
interleaved, and prints the median over repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ["DJANGO_SETTINGS_MODULE"] = "scripts.observe_settings"
os.environ.setdefault("CONVEYOR_OBSERVE", "neither")

import django

django.setup()

from django.db import connection  # noqa: E402

from benchmarks.measurements import wait_drained  # noqa: E402
from benchmarks.processes import Workers  # noqa: E402
from conveyor.backend import DatabaseBackend  # noqa: E402
from conveyor.models import TaskRecord  # noqa: E402
from scripts import observe_settings  # noqa: E402
from scripts.operations_database import prepare  # noqa: E402
from scripts.operations_tasks import noop  # noqa: E402

MODES = ("neither", "metrics", "tracing", "tracing-sampled")
# tracing-sampled: one task in this many comes from a sampled trace (the others' trace
# context says "not sampled", as a head sampler at 10% would have left it).
SAMPLED_ONE_IN = 10
FIRST_CLAIM_POLL_SECONDS = 0.01
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# The SDK's provider, which scripts.observe_settings sets up under CONVEYOR_OBSERVE=tracing.
MODE_TRACING_PROVIDER = getattr(observe_settings, "provider", None)


def drain(mode: str, tasks: int, concurrency: int, log: Path) -> tuple[float, float]:
    """Enqueue `tasks` no-op tasks (as the mode would), drain them; return tasks/s (the
    worker's start-up included), and the worker's CPU time per task in microseconds from its
    first claim on (its start-up, a second or more of CPU, left out)."""
    os.environ["CONVEYOR_OBSERVE"] = mode
    fresh_table()
    backend = noop.get_backend()
    assert isinstance(backend, DatabaseBackend)
    # Inserted with their trace context, as traced requests would have enqueued them (an
    # UPDATE afterwards would leave dead rows for the claims to step over).
    backend.store.insert(
        [backend.new_task(noop, (), {}, metadata=trace_context(mode, n)) for n in range(tasks)]
    )
    path = [str(Path.cwd()), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    argv = ["conveyor_worker", "--verbosity", "0", "-c", str(concurrency)]
    connection.ensure_connection()
    started = time.monotonic()
    with Workers([argv], env, log) as workers:
        left, cpu_started = first_claim(tasks, workers.pids[0])
        wait_drained(connection.connection, "conveyor_task", workers, log)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(workers.pids[0]) - cpu_started
    return tasks / elapsed, cpu / left * 1e6


def first_claim(tasks: int, pid: int) -> tuple[int, float]:
    """Wait for the worker's first claim; return how many tasks were still ready then, and
    the CPU time it had used."""
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM conveyor_task WHERE status = 'READY'")
            (ready,) = cursor.fetchone()
        if ready < tasks:
            return ready, cpu_seconds(pid)
        time.sleep(FIRST_CLAIM_POLL_SECONDS)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def fresh_table() -> None:
    """An empty task table without dead rows, for every drain alike."""
    TaskRecord.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE conveyor_task")


def trace_context(mode: str, n: int) -> dict[str, Any] | None:
    """The metadata a task enqueued in a traced request carries (None without tracing);
    under tracing-sampled, one in SAMPLED_ONE_IN traces was sampled."""
    if not mode.startswith("tracing"):
        return None
    sampled = mode == "tracing" or n % SAMPLED_ONE_IN == 0
    return {"trace_context": {"traceparent": TRACEPARENT[:-2] + ("01" if sampled else "00")}}


def hooks(mode: str, count: int) -> tuple[float, float]:
    """CPU microseconds per task that this process spends in conveyor's metrics and tracing
    hooks (its span processor's thread included): on enqueue (in the enqueuing process), and
    on an attempt and its written outcome (in the worker). Under tracing-sampled, both in a
    trace that was not sampled."""
    from django.conf import settings

    from conveyor import observe
    from conveyor.compat import TaskResultStatus
    from conveyor.store import Outcome, Written

    settings.CONVEYOR_METRICS = mode == "metrics"
    settings.CONVEYOR_TRACING = mode.startswith("tracing")
    observe.reset()
    result = noop.enqueue()
    record = TaskRecord.objects.get(pk=result.id)
    record.metadata = trace_context(mode, 1)  # under tracing-sampled: not sampled
    outcome = Outcome(record, TaskResultStatus.SUCCESSFUL)
    written = [Written(outcome, TaskResultStatus.SUCCESSFUL, None, None)]
    with enqueuing_in(record.metadata):
        started = time.process_time()
        for _ in range(count):
            observe.enqueued_metadata(noop, None)
            observe.enqueued(result)
        enqueued = time.process_time()
    for _ in range(count):
        with observe.attempt(record) as observed:
            observed.ended(outcome)
        observe.written(written)
    ran = time.process_time()
    return (enqueued - started) / count * 1e6, (ran - enqueued) / count * 1e6


@contextmanager
def enqueuing_in(metadata: dict[str, Any] | None) -> Iterator[None]:
    """Enqueue in the trace of this context, if it is not sampled (as a request that head
    sampling left out); otherwise outside any trace."""
    carrier = (metadata or {}).get("trace_context", {})
    if not carrier or carrier["traceparent"].endswith("-01"):
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--hooks", type=int, default=0, help="time N calls of the hooks only")
    options = parser.parse_args()
    prepare()
    if options.hooks:
        if MODE_TRACING_PROVIDER is None:
            raise SystemExit("run with CONVEYOR_OBSERVE=tracing to time the tracing hooks")
        timings: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for _ in range(options.repeats):
            for mode in MODES:
                timings[mode].append(hooks(mode, options.hooks))
        print(f"{'mode':<16} {'enqueue µs':>10} {'worker µs':>10}  (CPU, median of repeats)")
        for mode in MODES:
            enqueue = statistics.median(t[0] for t in timings[mode])
            worker = statistics.median(t[1] for t in timings[mode])
            print(f"{mode:<16} {enqueue:10.1f} {worker:10.1f}")
        return
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpus: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as logs:
        for repeat in range(options.repeats):
            for mode in MODES:
                rate, cpu = drain(mode, options.tasks, options.concurrency, Path(logs) / "w.log")
                rates[mode].append(rate)
                cpus[mode].append(cpu)
                print(
                    f"repeat {repeat + 1} {mode:<16} {rate:8.0f} tasks/s {cpu:6.0f} µs CPU/task",
                    flush=True,
                )
    print(f"{'mode':<16} {'tasks/s':>8} {'cost':>6} {'CPU µs/task':>12} {'CPU cost':>9}")
    for mode in MODES:
        costs = [1 - r / n for r, n in zip(rates[mode], rates["neither"], strict=True)]
        extra = [c / n - 1 for c, n in zip(cpus[mode], cpus["neither"], strict=True)]
        print(
            f"{mode:<16} {statistics.median(rates[mode]):8.0f} {statistics.median(costs):6.1%} "
            f"{statistics.median(cpus[mode]):12.0f} {statistics.median(extra):9.1%}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
