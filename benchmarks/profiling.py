"""Where a conveyor worker's time goes during a drain: py-spy samples, summarised.

py-spy samples the worker process from outside (no instrumentation in the worker), idle
frames included, so time spent waiting for the database shows as the frames that wait.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).parent / "py-spy"
SAMPLE_RATE = 250  # per second

# Inclusive buckets, matched in order against each frame of a stack (innermost last);
# the first bucket any frame of a sample matches takes the sample.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up (django.setup, checks)", ("setup (django/__init__.py", "check (django/core/")),
    ("claim (store.claim)", ("claim (conveyor/store/",)),
    ("finish (store.finish)", ("finish (conveyor/store/", "_finish (conveyor/store/")),
    ("results and signals (announce)", ("announce (conveyor/worker/announce.py",)),
    ("running the task (runner)", ("run_sync (conveyor/worker/runner.py",)),
    (
        "heartbeat and maintenance threads",
        ("conveyor/worker/heartbeat.py", "conveyor/worker/maintenance.py"),
    ),
    ("idle wait (Event.wait)", ("wait (threading.py",)),
)


class Profiler:
    """py-spy record attached to one process, from start() until the process exits or
    stop() is called."""

    def __init__(self, pid: int, raw_path: Path) -> None:
        self.raw_path = raw_path
        self.process = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(SAMPLE_RATE),
                "--format",
                "raw",
                "--idle",
                "--threads",
                "--nonblocking",
                "--output",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """Collapsed stacks: ([frame, ...] outermost first, sample count)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def thread_name(frames: list[str]) -> str:
    # With --threads the first frame names the thread: "thread (1234): MainThread".
    return frames[0].partition(": ")[2] or "unnamed"


def summarise_thread(stacks: list[tuple[list[str], int]], top: int) -> dict[str, Any]:
    total = sum(n for _, n in stacks) or 1
    buckets: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in stacks:
        own[frames[-1]] += n
        for name, patterns in BUCKETS:
            if any(pattern in frame for frame in frames for pattern in patterns):
                buckets[name] += n
                break
        else:
            buckets["other"] += n
    return {
        "samples": total,
        "buckets": {name: round(100 * n / total, 1) for name, n in buckets.most_common()},
        "self_time": [
            {"frame": frame, "percent": round(100 * n / total, 1)}
            for frame, n in own.most_common(top)
        ],
    }


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Per thread (wall clock, idle included): share of samples per bucket, and the frames
    where most samples ended (self time)."""
    by_thread: dict[str, list[tuple[list[str], int]]] = {}
    for frames, n in read_raw(path):
        by_thread.setdefault(thread_name(frames), []).append((frames, n))
    return {
        "sample_rate": SAMPLE_RATE,
        "threads": {name: summarise_thread(stacks, top) for name, stacks in by_thread.items()},
    }
