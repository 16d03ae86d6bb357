"""Child processes that run together and stop together."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)


class Child:
    """A process in a session of its own, so that a signal reaches everything it started."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str]) -> None:
        self.name = name
        # Its own session: Ctrl-C reaches only the parent, which then stops children in order.
        self.popen = subprocess.Popen(list(args), env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_status(self) -> int | None:
        return self.popen.poll()

    def signal_group(self, signum: int) -> None:
        """Send a signal to the child and every process it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float) -> bool:
        """Wait for the child to exit; return whether it did."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class Children:
    """Processes started together; stop() ends all of them."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(self, name: str, args: Sequence[str], *, env: dict[str, str]) -> Child:
        child = Child(name, args, env=env)
        self.started.append(child)
        logger.debug("Started name=%s pid=%s", name, child.pid)
        return child

    def first_exited(self) -> Child | None:
        return next((c for c in self.started if c.exit_status() is not None), None)

    def stop(self, *, timeout: float) -> None:
        """SIGTERM every child; SIGKILL what is left after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for child in self.started:
            child.signal_group(signal.SIGTERM)
        for child in self.started:
            if not child.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("Killing name=%s pid=%s after %ss", child.name, child.pid, timeout)
            # Linux keeps a process group's id while any member lives: this reaches only
            # what the child started and left behind.
            child.signal_group(signal.SIGKILL)
            child.popen.wait()

    def kill(self) -> None:
        """SIGKILL every child at once."""
        for child in self.started:
            child.signal_group(signal.SIGKILL)
        for child in self.started:
            child.popen.wait()
