"""The Celery application of the benchmark: its no-op and stamp tasks, and the tally.

Configured from the environment the harness sets (BENCH_CELERY_BROKER, BENCH_CELERY_RESULTS,
BENCH_CELERY_TALLY). Celery has no table to ask when a drain is over, so every worker keeps
a tally in Redis after each task: the number finished, and the first start and last finish
on the wall clock (one machine, one clock). The tally is one pipelined round trip per task.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery, signals  # type: ignore[import-not-found,unused-ignore]

QUEUE = "conveyor-bench"
DONE_KEY = "conveyor-bench:done"
FIRST_KEY = "conveyor-bench:first"
LAST_KEY = "conveyor-bench:last"

app = Celery("conveyor_bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://"))
app.conf.update(
    task_default_queue=QUEUE,
    # Results kept as conveyor keeps them (every outcome stored), or not at all.
    result_backend=os.environ.get("BENCH_CELERY_RESULTS") or None,
    task_ignore_result=not os.environ.get("BENCH_CELERY_RESULTS"),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

# Per process (prefork children each have their own): the Redis client, and whether this
# process has started a task yet.
_process: dict[str, Any] = {}
# One client per process, made once: the threads pool would otherwise race to make it.
_making = threading.Lock()


def tally() -> Any:
    if _process.get("pid") != os.getpid():
        with _making:
            if _process.get("pid") != os.getpid():
                import redis  # type: ignore[import-not-found,unused-ignore]

                url = os.environ.get("BENCH_CELERY_TALLY", "redis://")
                _process["tally"] = redis.Redis.from_url(url)
                _process["pid"] = os.getpid()
    return _process["tally"]


@signals.task_prerun.connect  # type: ignore[untyped-decorator,unused-ignore]
def first_start(**_: Any) -> None:
    if _process.get("started") != os.getpid():
        _process["started"] = os.getpid()
        tally().zadd(FIRST_KEY, {str(os.getpid()): time.time()})


@signals.task_postrun.connect  # type: ignore[untyped-decorator,unused-ignore]
def finished(**_: Any) -> None:
    pipe = tally().pipeline(transaction=False)
    pipe.incr(DONE_KEY)
    pipe.set(LAST_KEY, repr(time.time()))
    pipe.execute()


@app.task(name="bench.noop")  # type: ignore[untyped-decorator,unused-ignore]
def noop() -> None:
    return None


@app.task(name="bench.stamp")  # type: ignore[untyped-decorator,unused-ignore]
def stamp(label: int) -> None:
    """Append "label monotonic-time" to the stamp file, first thing when the task starts."""
    started = time.clock_gettime(time.CLOCK_MONOTONIC)
    with open(os.environ["BENCH_STAMP_FILE"], "a", encoding="ascii") as out:
        out.write(f"{label} {started:.6f}\n")
