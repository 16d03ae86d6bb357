"""Benchmark subprocesses: the driver (one JSON answer) and groups of worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.databases import Target
from benchmarks.systems import System

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "benchmarks" / "manage.py"
STOP_TIMEOUT_SECONDS = 20.0


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and where its log is."""


def environment(system: System, target: Target, **extra: str) -> dict[str, str]:
    """The environment of every process that works on one system's database."""
    env = {key: value for key, value in os.environ.items() if key != "BENCH_SQL_COUNT_DIR"}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        PYTHONPATH=str(ROOT),
        BENCH_SYSTEM=system.name,
        **target.environment(),
        **extra,
    )
    return env


def run_driver(
    system: System, target: Target, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `python -m benchmarks.driver ARGS` for one system; return its JSON answer."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.driver", *args],
        env=env or environment(system, target),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return answer(completed, f"driver {' '.join(args)} for {system.name} on {target.vendor}")


def answer(completed: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The JSON line a driver printed last; BenchError with its stderr if it failed."""
    if completed.returncode != 0:
        raise BenchError(f"{what} failed:\n{completed.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found


def manage(system: System, target: Target, *args: str, log: Path) -> None:
    """Run a management command to completion (migrate, a batch worker)."""
    with log.open("ab") as out:
        completed = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=environment(system, target),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed for {system.name}; see {log}")


class Workers:
    """Worker processes of one system, each in its own session so that all its children
    can be stopped together; every one is stopped (and if need be killed) on exit."""

    def __init__(
        self,
        argvs: list[list[str]],
        env: dict[str, str],
        log: Path,
        *,
        prefix: list[str] | None = None,
    ) -> None:
        # Management commands by default; prefix=[] runs each argv as a whole command line.
        self.prefix = [sys.executable, str(MANAGE)] if prefix is None else prefix
        self.argvs = argvs
        self.env = env
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        out = self.log.open("ab")
        try:
            for argv in self.argvs:
                self.processes.append(
                    subprocess.Popen(
                        [*self.prefix, *argv],
                        env=self.env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        finally:
            out.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def alive(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        """SIGTERM (a graceful stop for every system), then SIGKILL whatever is left."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Not yet reaped, so the id is still ours; the session holds a
                # supervisor's children too.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []
