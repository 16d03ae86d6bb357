"""The idle cost of periodic schedules: a conveyor worker's CPU time with N schedules that
do not fire during the measurement, against the same worker with none.

    .venv/bin/python -m benchmarks.schedules [--schedules 1000] [--seconds 60]

SQLite in a temporary file; the worker is `conveyor_worker` with its defaults. Prints one
JSON line: CPU seconds per minute with and without schedules, and the difference per
schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_SECONDS = 5.0


def schedules(count: int) -> dict[str, Any]:
    """`count` daily cron schedules at distinct minutes, none due within the hour ahead."""
    hour = (time.gmtime().tm_hour + 2) % 24
    return {
        f"daily-{n}": {
            "task": "benchmarks.tasks.noop",
            "cron": f"{n % 60} {(hour + n // 60) % 24} * * *",
            "catch_up": "none",
        }
        for n in range(count)
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(env: dict[str, str], count: int, seconds: float) -> float:
    """CPU seconds per minute of one idle worker with `count` schedules."""
    options = {"periodic": schedules(count)} if count else {}
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "conveyor_worker", "-v", "0"],
        env={**env, "BENCH_TASKS_OPTIONS": json.dumps(options)},
        cwd=ROOT,
    )
    try:
        time.sleep(WARM_UP_SECONDS)  # start-up (imports, checks, catch-up) is not idle cost
        before = cpu_seconds(worker.pid)
        time.sleep(seconds)
        used = cpu_seconds(worker.pid) - before
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    return used * 60 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "PYTHONPATH": str(ROOT),
            "BENCH_SYSTEM": "conveyor",
            "BENCH_VENDOR": "sqlite",
            "BENCH_DB": str(Path(folder) / "schedules.sqlite3"),
        }
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True
        )
        idle = measure(env, 0, args.seconds)
        scheduled = measure(env, args.schedules, args.seconds)
    per_schedule_ms = (scheduled - idle) / args.schedules * 1000
    print(
        json.dumps(
            {
                "schedules": args.schedules,
                "seconds": args.seconds,
                "cpu_seconds_per_minute_without": round(idle, 3),
                "cpu_seconds_per_minute_with": round(scheduled, 3),
                "cpu_ms_per_minute_per_schedule": round(per_schedule_ms, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
