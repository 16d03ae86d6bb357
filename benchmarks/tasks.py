"""The tasks every system runs: a no-op, and one that stamps when it started."""

from __future__ import annotations

import os
import time

from conveyor.compat import task

STAMP_FILE_VARIABLE = "BENCH_STAMP_FILE"


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
