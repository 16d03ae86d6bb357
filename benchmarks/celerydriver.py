"""The measuring side for Celery: `python -m benchmarks.celerydriver COMMAND`, one JSON line.

reset     purge the benchmark queue and clear the tally
enqueue   time N delay() calls, one by one (Celery has no bulk enqueue)
latency   send one stamp task at a time to an idle worker; report start latencies
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from benchmarks.driver import MONOTONIC, StampReader


def reset() -> dict[str, Any]:
    from benchmarks.celeryapp import DONE_KEY, FIRST_KEY, LAST_KEY, app, tally

    purged = app.control.purge()
    tally().delete(DONE_KEY, FIRST_KEY, LAST_KEY)
    return {"purged": purged}


def enqueue(count: int, *, warmup: int) -> dict[str, Any]:
    from benchmarks.celeryapp import noop

    for _ in range(warmup):  # connects to the broker; the timed loop starts steady
        noop.delay()
    started = time.perf_counter()
    for _ in range(count):
        noop.delay()
    return {"count": count, "seconds": time.perf_counter() - started}


def latency(count: int, *, pause_min: float, pause_max: float, stamp_file: str) -> dict[str, Any]:
    """As benchmarks.driver.latency, with Celery's delay()."""
    from benchmarks.celeryapp import stamp

    reader = StampReader(stamp_file)
    try:
        stamp.delay(-1)
        if reader.wait_for(-1, timeout=120) is None:
            raise SystemExit("the worker never ran the warm-up task")
        latencies, missed = [], 0
        for label in range(count):
            time.sleep(random.uniform(pause_min, pause_max))
            before = time.clock_gettime(MONOTONIC)
            stamp.delay(label)
            started = reader.wait_for(label, 10.0)
            if started is None:
                missed += 1
                continue
            latencies.append(started - before)
    finally:
        reader.close()
    return {"count": count, "latencies": latencies, "missed": missed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.celerydriver")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reset")
    one = commands.add_parser("enqueue")
    one.add_argument("--count", type=int, required=True)
    one.add_argument("--warmup", type=int, default=20)
    lat = commands.add_parser("latency")
    lat.add_argument("--count", type=int, required=True)
    lat.add_argument("--pause-min", type=float, default=0.05)
    lat.add_argument("--pause-max", type=float, default=1.05)
    lat.add_argument("--stamp-file", required=True)
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.command == "reset":
        result = reset()
    elif options.command == "enqueue":
        result = enqueue(options.count, warmup=options.warmup)
    else:
        result = latency(
            options.count,
            pause_min=options.pause_min,
            pause_max=options.pause_max,
            stamp_file=options.stamp_file,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
