"""./dev bench: compare conveyor with django-tasks-db and django-ox on this machine.

Runs itself again inside .cache/bench-venv/ (see benchmarks.environment), measures every
system on every database in one run, saves the raw results as JSON under .cache/bench/ and
prints one Markdown table. docs/performance.md describes the method.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import environment
from benchmarks.databases import VENDORS

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / ".cache" / "bench"

QUICK = {
    "tasks": 300,
    "peer_tasks": 300,
    "repeats": 1,
    "peer_repeats": 1,
    "history_rows": 10_000,
    "history_deferred": 1_000,
    "history_tasks": 200,
    "latency_samples": 5,
    "enqueue_count": 100,
    "statement_tasks": 100,
    "io_tasks": 1_000,
}
FULL = {
    "tasks": 20_000,
    "peer_tasks": 3_000,
    "repeats": 3,
    "peer_repeats": 1,
    "history_rows": 1_000_000,
    "history_deferred": 100_000,
    "history_tasks": 2_000,
    "latency_samples": 50,
    "enqueue_count": 2_000,
    "statement_tasks": 1_000,
    "io_tasks": 10_000,
}


def names(value: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    for name in chosen:
        if name not in allowed:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(allowed)}")
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one")
    return chosen


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def positives(value: str) -> list[int]:
    chosen = [positive(part) for part in value.split(",") if part.strip()]
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one")
    return chosen


def parser() -> argparse.ArgumentParser:
    from benchmarks.systems import SYSTEMS

    systems = tuple(SYSTEMS)
    p = argparse.ArgumentParser(
        prog="./dev bench",
        description="Compare conveyor with django-tasks-db and django-ox on this machine "
        "(see docs/performance.md).",
    )
    p.add_argument("--quick", action="store_true", help="small N: a smoke run of a few minutes")
    p.add_argument(
        "--databases",
        type=lambda v: names(v, VENDORS),
        default=list(VENDORS),
        help="comma-separated: sqlite,postgresql,mariadb (default: all)",
    )
    p.add_argument(
        "--systems",
        type=lambda v: names(v, systems),
        default=list(systems),
        help=f"comma-separated: {','.join(systems)} (default: all)",
    )
    p.add_argument("--tasks", type=positive, help="tasks per conveyor drain (default 20000)")
    p.add_argument(
        "--peer-tasks",
        type=positive,
        help="tasks per peer drain (default 3000: the peers drain about 200 tasks/s here, "
        "and rates, not times, are compared)",
    )
    p.add_argument("--repeats", type=positive, help="repeats of each measurement (default 3)")
    p.add_argument(
        "--peer-repeats",
        type=positive,
        help="repeats of the peers' drains, capped by --repeats (default 1: they drain a "
        "few hundred tasks per second, and each of their drains takes half a minute)",
    )
    p.add_argument("--history-rows", type=positive, help="finished rows (default 1000000)")
    p.add_argument(
        "--history-deferred",
        type=positive,
        help="deferred tasks of every priority beside the history (default 100000)",
    )
    p.add_argument("--history-tasks", type=positive, help="tasks drained on the history")
    p.add_argument("--latency-samples", type=positive, help="tasks of the latency run (50)")
    p.add_argument("--enqueue-count", type=positive, help="tasks enqueued one by one (2000)")
    p.add_argument("--statement-tasks", type=positive, help="tasks of the counting drain")
    p.add_argument(
        "--concurrency",
        type=positive,
        default=64,
        help="conveyor --concurrency in the threaded drains (default: %(default)s)",
    )
    p.add_argument("--io-tasks", type=positive, help="tasks per io drain (default 10000)")
    p.add_argument(
        "--io-concurrency",
        type=positives,
        default=[16, 64, 256, 512],
        help="comma-separated conveyor --concurrency values of the sync io drains "
        "(default: 16,64,256,512)",
    )
    p.add_argument(
        "--scale-processes",
        type=positives,
        default=[1, 2, 4, 8, 16],
        help="worker processes of each step of the scale curve (default: 1,2,4,8,16)",
    )
    p.add_argument(
        "--scale-concurrency",
        type=positives,
        default=[16],
        help="--concurrency of every worker process in the scale curve; several values "
        "make a curve each (default: 16)",
    )
    p.add_argument(
        "--only",
        type=lambda v: names(v, MEASUREMENTS),
        help=f"comma-separated subset of: {','.join(MEASUREMENTS)} (default: all; "
        "--quick leaves out profile and scale)",
    )
    p.add_argument(
        "--upgrade-peers",
        action="store_true",
        help="install the peers' latest releases into the benchmark environment",
    )
    p.add_argument("--output", type=Path, help="where to write the raw JSON")
    return p


MEASUREMENTS = ("statements", "enqueue", "drain", "latency", "history", "io", "profile", "scale")
# Left out of --quick runs unless named: they need sizes a smoke run does not have.
NOT_QUICK = ("profile", "scale")


def settle(options: argparse.Namespace) -> argparse.Namespace:
    """Fill the sizes --quick or the full run implies, unless given."""
    preset = QUICK if options.quick else FULL
    for key, value in preset.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    options.peer_repeats = min(options.peer_repeats, options.repeats)
    if options.only is None:
        options.only = [m for m in MEASUREMENTS if not (options.quick and m in NOT_QUICK)]
    return options


def conveyor_source() -> str:
    """The commit conveyor was built from, with -dirty for uncommitted changes."""
    completed = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    options = settle(parser().parse_args(args))
    if not environment.inside():
        environment.prepare(upgrade_peers=options.upgrade_peers)
        environment.reexec(args)
    from benchmarks.plan import Run

    started = datetime.now(UTC)
    run = Run(options)
    results: dict[str, Any] = {
        "command": " ".join(["./dev bench", *args]),
        "started": started.isoformat(timespec="seconds"),
        "machine": environment.describe_machine(),
        "versions": environment.versions(),
        "conveyor_source": conveyor_source(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
    }
    clock = time.perf_counter()
    try:
        run.all()
    finally:
        results.update(run.results())
        results["minutes"] = round((time.perf_counter() - clock) / 60, 1)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = options.output or OUTPUT / f"results-{started:%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps(results, indent=2))
        (OUTPUT / "latest.json").write_text(json.dumps(results, indent=2))
        environment.say(f"raw results: {path}")
    print(run.table())


if __name__ == "__main__":
    main()
