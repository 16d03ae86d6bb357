"""Fixtures of the messagecenter demo's tests: its URLs and a local ntfy endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.demo.ntfy_server import NtfyServer

# How fast test workers look for new tasks: tests wait less, and never depend on it.
FAST_WORKER = ("--delay-min", "10", "--delay-max", "100")


@pytest.fixture(autouse=True)
def demo_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "messagecenter.urls"


@pytest.fixture(autouse=True)
def show_worker_logs(tmp_path: Path) -> Iterator[None]:
    """Print the logs of the worker processes a test started; pytest shows them on failure."""
    yield
    for log in sorted(tmp_path.glob("worker-*.log")):
        print(f"--- {log}\n{log.read_text(errors='replace')}")


@pytest.fixture
def ntfy_server() -> Iterator[NtfyServer]:
    server = NtfyServer()
    yield server
    server.close()


@pytest.fixture
def ntfy_url(ntfy_server: NtfyServer, settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Send notifications to the local server: from this process (settings) and from worker
    processes started later (the environment they inherit)."""
    monkeypatch.setenv("NTFY_URL", ntfy_server.url)
    settings.NTFY_URL = ntfy_server.url
    return ntfy_server.url
