"""Celery on Redis and on RabbitMQ, measured the way the harness measures the others.

Celery keeps no table, so its harness differs from benchmarks.measurements.Harness in how
it knows a drain is over (the tally in Redis, see benchmarks.celeryapp) but times the same
spans: workers' start to the last finish, first start to last finish, enqueue one by one,
enqueue->start latency with the same stamp task and pauses.

Each Celery size runs at Celery's best pool for it: solo for one process and one thread,
prefork for several processes, threads for one process with many threads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.cpu import CpuTrace
from benchmarks.measurements import DRAIN_TIMEOUT_SECONDS, POLL_READY_SECONDS, Variant
from benchmarks.processes import ROOT, BenchError, Workers
from benchmarks.systems import System

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS_URL = os.environ.get("BENCH_CELERY_RESULTS_URL", "redis://127.0.0.1:6379/1")
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY = [sys.executable, "-m", "celery", "-A", "benchmarks.celeryapp"]
WORKER_ARGS = ("worker", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
               "--without-heartbeat")  # fmt: skip


def broker_url(system: System) -> str:
    return RABBITMQ_URL if system.broker == "rabbitmq" else REDIS_URL


def unreachable(url: str) -> str:
    """Why nothing answers at the URL's host and port, or "" when something does."""
    parts = urlsplit(url)
    port = parts.port or (5672 if parts.scheme == "amqp" else 6379)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1.0).close()
    except OSError as exc:
        return f"{parts.scheme} at {parts.hostname}:{port} not reachable ({exc})"
    return ""


def pool_args(variant: Variant) -> list[str]:
    """Celery's best pool for the variant's processes and threads per process."""
    if variant.concurrency > 1:
        return ["--pool", "threads", "--concurrency", str(variant.concurrency)]
    if variant.supervised > 1:
        return ["--pool", "prefork", "--concurrency", str(variant.supervised)]
    return ["--pool", "solo"]


def worker_argvs(variant: Variant) -> list[list[str]]:
    """Separate commands as the variant has processes; with threads, one per process."""
    commands = variant.processes * (variant.supervised if variant.concurrency > 1 else 1)
    if variant.processes > 1 and variant.concurrency == 1:
        # Two processes: one prefork command with two children beats two solo commands.
        variant = Variant(variant.key, variant.label, supervised=variant.processes)
        commands = 1
    return [[*CELERY, *WORKER_ARGS, *pool_args(variant)]] * commands


class CeleryHarness:
    """Runs the Celery measurements of one broker; logs go to `logs`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs

    def log(self, system: System, what: str) -> Path:
        return self.logs / f"{system.slug}-{what}.log"

    def env(self, system: System, *, results: bool, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_CELERY")}
        env.update(
            PYTHONPATH=str(ROOT),
            BENCH_CELERY_BROKER=broker_url(system),
            BENCH_CELERY_TALLY=REDIS_URL,
            BENCH_CELERY_RESULTS=RESULTS_URL if results else "",
            **extra,
        )
        return env

    def prepare(self, system: System) -> bool:
        """Check that the broker and the tally's Redis answer; BenchError says why not."""
        for url in dict.fromkeys([broker_url(system), REDIS_URL]):
            reason = unreachable(url)
            if reason:
                raise BenchError(f"{system.name} skipped: {reason}")
        self.driver(system, "reset")
        return True

    def driver(self, system: System, *args: str, results: bool = True, **extra: str) -> Any:
        from benchmarks.processes import answer

        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.celerydriver", *args],
            env=self.env(system, results=results, **extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return answer(completed, f"celerydriver {' '.join(args)} for {system.name}")

    def enqueue(self, system: System, count: int) -> dict[str, Any]:
        self.driver(system, "reset")
        found = self.driver(system, "enqueue", "--count", str(count))
        self.driver(system, "reset")
        return dict(found)

    def drain(
        self, system: System, variant: Variant, count: int, *, results: bool = True
    ) -> dict[str, Any]:
        """Send `count` no-op tasks (timed as the bulk sample), then time the workers."""
        self.driver(system, "reset")
        bulk = self.driver(system, "enqueue", "--count", str(count), "--warmup", "0",
                           results=results)  # fmt: skip
        log = self.log(system, variant.key)
        tally = self.tally()
        since = time.time()
        with Workers(worker_argvs(variant), self.env(system, results=results), log,
                     prefix=[]) as workers:  # fmt: skip
            started = time.perf_counter()
            cpu = CpuTrace(workers.pids)
            polls = self.wait_done(tally, count, workers, log, cpu)
            seconds = time.perf_counter() - started
            cpu.sample(force=True)
        first = tally.zrange("conveyor-bench:first", 0, 0, withscores=True)
        last = float(tally.get("conveyor-bench:last") or 0)
        self.driver(system, "reset")
        result: dict[str, Any] = {
            "count": count,
            "seconds": seconds,
            "polls": polls,
            "load_average": os.getloadavg()[0],
            "bulk": bulk,
            "results_kept": results,
        }
        if first and last:
            result["startup_seconds"] = first[0][1] - since
            result["busy_seconds"] = last - first[0][1]
        started_at = datetime.fromtimestamp(first[0][1], UTC) if first else None
        return {**result, **cpu.result(started_at, count)}

    def tally(self) -> Any:
        import redis  # type: ignore[import-not-found,unused-ignore]

        return redis.Redis.from_url(REDIS_URL)

    def wait_done(self, tally: Any, count: int, workers: Workers, log: Path, cpu: CpuTrace) -> int:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        polls = 0
        while int(tally.get("conveyor-bench:done") or 0) < count:
            polls += 1
            cpu.sample()
            if not workers.alive():
                raise BenchError(f"every worker exited before the drain ended; see {log}")
            if time.monotonic() > deadline:
                raise BenchError(f"drain did not end in {DRAIN_TIMEOUT_SECONDS:.0f}s; see {log}")
            time.sleep(POLL_READY_SECONDS / 10)
        return polls + 1

    def latency(self, system: System, samples: int) -> dict[str, Any]:
        """Start latencies into one idle solo worker (the default single process)."""
        self.driver(system, "reset")
        stamps = self.logs / f"{system.slug}-stamps.txt"
        stamps.unlink(missing_ok=True)
        env = self.env(system, results=True, BENCH_STAMP_FILE=str(stamps))
        argv = [*CELERY, *WORKER_ARGS, "--pool", "solo"]
        with Workers([argv], env, self.log(system, "latency"), prefix=[]):
            found = self.driver(
                system, "latency", "--count", str(samples), "--stamp-file", str(stamps)
            )
        self.driver(system, "reset")
        return dict(found)
