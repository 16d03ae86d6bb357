"""--processes P: run P worker processes, replace any that dies, forward stop signals."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from conveyor.backoff import Backoff

logger = logging.getLogger(__name__)

# Tells a child its slot, so an explicit --id stays unique per process ("<id>-<slot>").
SLOT_ENVIRONMENT_VARIABLE = "CONVEYOR_WORKER_SLOT"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# After the n-th child in a row that died young; a child that lived long restarts at once.
RESTART_BACKOFF = Backoff((0.5, 1.0, 2.0, 5.0, 10.0))
STABLE_AFTER_SECONDS = 30.0


class Supervisor:
    """Keeps `processes` children running `command` until it receives SIGTERM or SIGINT.

    A child that exits while the supervisor runs is replaced (with back-off when children
    keep dying young). Each signal is forwarded to every child; the supervisor then waits
    for them and exits with the worst status among them.
    """

    def __init__(self, command: Sequence[str], processes: int) -> None:
        self.command = list(command)
        self.processes = processes
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started_at: dict[int, float] = {}
        self.failures = 0
        self.stopping = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._forward)
        for slot in range(self.processes):
            self._spawn(slot)
        status = 0
        while self.children:
            for slot, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self.children[slot]
                if self.stopping:
                    status = max(status, code)
                else:
                    self._replace(slot, code)
            time.sleep(0.1)
        return status

    def _spawn(self, slot: int) -> None:
        env = {**os.environ, SLOT_ENVIRONMENT_VARIABLE: str(slot)}
        # A group of its own: a Ctrl-C in the terminal reaches the supervisor only, which
        # forwards it once; the child must not see the same stop request twice.
        child = subprocess.Popen(
            self.command,
            env=env,
            process_group=0,
            preexec_fn=stop_with_parent,  # noqa: PLW1509 - the supervisor starts no threads
        )
        self.children[slot] = child
        self.started_at[slot] = time.monotonic()
        logger.info("Supervisor started worker process pid=%d slot=%d", child.pid, slot)

    def _replace(self, slot: int, code: int) -> None:
        lived = time.monotonic() - self.started_at[slot]
        self.failures = 0 if lived > STABLE_AFTER_SECONDS else self.failures + 1
        delay = restart_delay(self.failures)
        logger.warning(
            "Worker process slot=%d exited with status %d after %.1fs; replacing it in %.1fs",
            slot,
            code,
            lived,
            delay,
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.05)
        if not self.stopping:
            self._spawn(slot)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)


def restart_delay(failures: int) -> float:
    """Seconds before replacing a child, after `failures` children in a row died young."""
    return 0.0 if failures == 0 else RESTART_BACKOFF.delay(failures - 1)


def stop_with_parent() -> None:
    """In a new child (Linux): get SIGTERM when the supervisor dies, even by SIGKILL, so that
    no worker outlives it unsupervised."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_command(argv: Sequence[str]) -> list[str]:
    """The interpreter's original command line (`sys.orig_argv`), as one worker process.

    The original line keeps how the command was started: `manage.py`, `django-admin` or
    `python -m django`.
    """
    args, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "-p"):
            skip = True
            continue
        if arg.startswith("--processes=") or (arg.startswith("-p") and arg[2:].isdigit()):
            continue
        args.append(arg)
    return [sys.executable, *args, "--processes", "1"]
