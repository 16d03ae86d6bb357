"""Worker CPU per task of conveyor drains, for two source trees in turn (an A/B of the hot
path in one session), measured by the benchmark's own harness and CPU reading.

    .venv/bin/python -m scripts.drain_cpu [--tasks 20000] [--concurrency 64] [--repeats 3] \\
        [--database postgresql|sqlite] SRC [SRC ...]

Each SRC is a conveyor source tree (a worktree's src/), put first on the workers' path; the
drains alternate between them, so that the machine's drift touches each alike. Metrics and
tracing are off, as in the benchmark's environment where neither extra is installed. Prints
one JSON line per drain and per SRC the medians. Databases are named with cpu_ab_<n>_conveyor.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks import measurements, processes
from benchmarks.databases import PostgreSQL, Server, SQLite, Target
from benchmarks.systems import SYSTEMS, System

SETTINGS = "scripts.drain_cpu_settings"
BENCHMARK_ENVIRONMENT = processes.environment


SERVERS: dict[str, type[PostgreSQL | SQLite]] = {"postgresql": PostgreSQL, "sqlite": SQLite}


def server(vendor: str, tag: str) -> Server:
    """The vendor's server with database names of their own, beside a benchmark run's."""

    base = SERVERS[vendor]

    class Tagged(base):  # type: ignore[misc,valid-type]
        # Both vendors name a working copy apart from its template (MariaDB does not).
        def template(self, slug: str) -> Target:
            return base.template(self, f"{tag}_{slug}")

        def working(self, slug: str) -> Target:
            return base.working(self, f"{tag}_{slug}")

    tagged: Server = Tagged()
    return tagged


def harness(src: str, index: int, vendor: str) -> measurements.Harness:
    """The benchmark's harness, its workers running conveyor from `src`."""
    base = BENCHMARK_ENVIRONMENT

    def environment(system: System, target: Target, **extra: str) -> dict[str, str]:
        env = base(system, target, **extra)
        env["PYTHONPATH"] = f"{src}:{env['PYTHONPATH']}"
        env["DJANGO_SETTINGS_MODULE"] = SETTINGS
        return env

    # The harness and the helpers it calls (migrate, the driver) look it up there.
    setattr(measurements, "environment", environment)  # noqa: B010
    setattr(processes, "environment", environment)  # noqa: B010
    logs = Path(processes.ROOT) / ".cache" / "drain-cpu"
    logs.mkdir(parents=True, exist_ok=True)
    return measurements.Harness(server(vendor, f"cpu_ab_{index}"), logs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database", choices=sorted(SERVERS), default="postgresql")
    options = parser.parse_args()
    system = SYSTEMS["conveyor"]
    variant = measurements.Variant("drain_cpu", "drain", concurrency=options.concurrency)
    found: dict[str, list[dict[str, float]]] = {src: [] for src in options.sources}
    for index, src in enumerate(options.sources):
        harness(src, index, options.database).prepare(system)
    for _ in range(options.repeats):
        for index, src in enumerate(options.sources):
            drained = harness(src, index, options.database).drain(system, variant, options.tasks)
            sample = {
                "cpu_us_per_task": drained["cpu_us_per_task"],
                "tasks_per_second": options.tasks / drained["seconds"],
                "load_average": drained["load_average"],
            }
            found[src].append(sample)
            print(json.dumps({"src": src, **sample}), flush=True)
    for src, samples in found.items():
        medians = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
        print(json.dumps({"src": src, "median": medians}))


if __name__ == "__main__":
    main()
