"""A local stand-in for an ntfy server: records what is published, answers as a test says."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOPIC = "conveyor-test"
HOLD_LIMIT_SECONDS = 60
# How often serve_forever() looks for shutdown(); every test waits for it once.
SHUTDOWN_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server read it."""

    method: str
    path: str
    body: str
    raw_title: str | None

    @property
    def title(self) -> str | None:
        """The Title header as ntfy reads it, RFC 2047 words decoded."""
        if self.raw_title is None:
            return None
        return str(make_header(decode_header(self.raw_title)))


class NtfyServer:
    """An HTTP server on 127.0.0.1 and a free port, in a thread of the test process."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        # hold_after(): how many requests may be answered in all (None: any number).
        self._turns = threading.Condition()
        self._answered = 0
        self._answer_limit: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.ntfy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{TOPIC}"

    def hold(self) -> None:
        """Keep every answer back until release(): a request in flight stays in flight."""
        self._open.clear()

    def release(self) -> None:
        with self._turns:
            self._answer_limit = None
            self._turns.notify_all()
        self._open.set()

    def hold_after(self, count: int) -> None:
        """Answer requests until `count` have been answered in all, then hold the next ones
        until release() or a larger count: a task's steps, one at a time."""
        with self._turns:
            self._answer_limit = count
            self._turns.notify_all()

    def wait_for_turn(self) -> None:
        with self._turns:
            self._turns.wait_for(
                lambda: self._answer_limit is None or self._answered < self._answer_limit,
                HOLD_LIMIT_SECONDS,
            )
            self._answered += 1

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def wait_until_open(self) -> None:
        self._open.wait(HOLD_LIMIT_SECONDS)

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        ntfy: NtfyServer = self.server.ntfy  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        ntfy.record(Received("POST", self.path, body, self.headers.get("Title")))
        ntfy.wait_until_open()
        ntfy.wait_for_turn()
        status = ntfy.status
        payload = json.dumps({"topic": self.path.strip("/"), "message": body}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting: what a timeout test expects

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""
