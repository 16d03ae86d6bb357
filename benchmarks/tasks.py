"""The tasks every system runs: a no-op, and one that stamps when it started; and the
I/O-bound pair of conveyor's io drains, which wait 50 ms, awaiting or sleeping."""

from __future__ import annotations

import asyncio
import os
import time

from conveyor.compat import task

STAMP_FILE_VARIABLE = "BENCH_STAMP_FILE"
# How long each task of the io drains waits, as a network call would (benchmarks.iobound
# says the same to the harness).
IO_WAIT_SECONDS = 0.05


@task
def noop() -> None:
    return None


@task
def stamp(label: int) -> None:
    """Append "label monotonic-time" to the stamp file, first thing when the task starts."""
    # CLOCK_MONOTONIC is one system-wide clock on Linux, so the enqueueing process can
    # compare this reading with its own.
    started = time.clock_gettime(time.CLOCK_MONOTONIC)
    with open(os.environ[STAMP_FILE_VARIABLE], "a", encoding="ascii") as out:
        out.write(f"{label} {started:.6f}\n")


@task
async def async_wait() -> None:
    await asyncio.sleep(IO_WAIT_SECONDS)


@task
def sync_wait() -> None:
    time.sleep(IO_WAIT_SECONDS)
