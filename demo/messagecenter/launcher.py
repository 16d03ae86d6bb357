"""Run the demo's web server and worker together until Ctrl-C, SIGTERM or one of them exits."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from messagecenter import superuser
from messagecenter.ntfy import Subscription
from messagecenter.processes import Child, Children

logger = logging.getLogger(__name__)

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"
CHECK_INTERVAL_SECONDS = 0.2
# Long enough for a notification in flight to reach ntfy (the task's own timeout is 10 s).
STOP_TIMEOUT_SECONDS = 15.0
WORKER_SHUTDOWN_TIMEOUT_SECONDS = 10
_ADDRESS = re.compile(r"(?:(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):)?(?P<port>\d+)")


@dataclass(frozen=True, slots=True)
class Address:
    """Where the web server listens."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.reachable_host}:{self.port}/"

    @property
    def reachable_host(self) -> str:
        """A host to connect to: a wildcard address is reached on loopback."""
        return {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(self.host, self.host)


def address(value: str) -> Address:
    """argparse type: PORT or HOST:PORT ([IPv6]:PORT for IPv6)."""
    match = _ADDRESS.fullmatch(value.strip())
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected PORT or HOST:PORT with a port from 1 to 65535, like 127.0.0.1:8000; "
            f"got {value!r}"
        )
    return Address(host=match["host"] or "127.0.0.1", port=port)


def listening(where: Address) -> bool:
    """Whether something accepts connections at the address."""
    try:
        with socket.create_connection((where.reachable_host.strip("[]"), where.port), timeout=1):
            return True
    except OSError:
        return False


class Launcher:
    """Start the web server and a worker; stop both when told to or when either exits."""

    def __init__(
        self,
        where: Address,
        *,
        reload: bool,
        ntfy_url: str,
        admin_path: str,
        write: Callable[[str], None],
    ) -> None:
        self.where = where
        self.reload = reload
        self.ntfy_url = ntfy_url
        self.admin_path = admin_path
        self.write = write
        self.children = Children()
        self.stopping = threading.Event()

    def run(self) -> Child | None:
        """Run until a signal (return None) or until a child exits (return it)."""
        with self.signals_stop():
            try:
                self.start()
                return self.wait()
            finally:
                self.children.stop(timeout=STOP_TIMEOUT_SECONDS)

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        web = ["runserver", str(self.where), *([] if self.reload else ["--noreload"])]
        worker = ["conveyor_worker", "--shutdown-timeout", str(WORKER_SHUTDOWN_TIMEOUT_SECONDS)]
        self.children.start("web server", manage(web), env=env)
        self.children.start("worker", manage(worker), env=env)

    def wait(self) -> Child | None:
        announced = False
        while not self.stopping.wait(CHECK_INTERVAL_SECONDS):
            exited = self.children.first_exited()
            if exited is not None:
                return exited
            if not announced and listening(self.where):
                self.announce()
                announced = True
        return None

    def announce(self) -> None:
        lines = [
            "",
            f"Message center: {self.where.url}",
            superuser.login_line(self.where.url, self.admin_path),
            "Subscribe to the notifications it sends:",
            *(f"  {line}" for line in Subscription.of(self.ntfy_url).instructions()),
            "Stop with Ctrl-C.",
            "",
        ]
        self.write("\n".join(lines))

    @contextmanager
    def signals_stop(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the children; a second one kills them."""

        def handle(signum: int, frame: FrameType | None) -> None:
            if self.stopping.is_set():
                self.children.kill()
                sys.exit(128 + signum)
            self.write("Stopping the web server and the worker...")
            self.stopping.set()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def manage(args: list[str]) -> list[str]:
    return [sys.executable, str(MANAGE_PY), *args]
