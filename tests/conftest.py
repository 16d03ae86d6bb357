"""Fixtures shared by the whole suite: worker processes, option overrides, factories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from conveyor.backend import DatabaseBackend
from conveyor.compat import task_backends

ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header() -> str:
    return f"conveyor tests on database: {os.environ.get('CONVEYOR_TEST_DATABASE', 'sqlite')}"


@pytest.fixture
def backend() -> DatabaseBackend:
    found = task_backends["default"]
    assert isinstance(found, DatabaseBackend)
    return found


@pytest.fixture
def task_options(settings: Any) -> Callable[..., DatabaseBackend]:
    """Replace OPTIONS of the default backend for this test; return the new backend."""

    def replace(**options: Any) -> DatabaseBackend:
        tasks = json.loads(json.dumps(settings.TASKS))
        tasks["default"]["OPTIONS"] = options
        settings.TASKS = tasks
        found = task_backends["default"]
        assert isinstance(found, DatabaseBackend)
        return found

    return replace


class WorkerProcess:
    """A `manage.py conveyor_worker` process started by a test, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "django", "conveyor_worker", "--settings=tests.settings", *args],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as under a terminal or systemd
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """Signal the whole process group, as a terminal's Ctrl-C does."""
        os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit in {timeout}s; log:\n{self.log()}") from None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a stopped process cannot die
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_env() -> Callable[..., dict[str, str]]:
    """The environment of a worker process that uses this test's database."""

    def make(**options: Any) -> dict[str, str]:
        env = dict(os.environ)
        env["CONVEYOR_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
        env["CONVEYOR_TASKS_OPTIONS"] = json.dumps(options)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "demo")])
        return env

    return make


# The workers a test started, so that its report can show their logs when it fails.
STARTED_WORKERS = pytest.StashKey[list["WorkerProcess"]]()
LOG_TAIL = 6000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when == "call":
        workers: list[WorkerProcess] = item.stash.get(STARTED_WORKERS, [])
        for number, process in enumerate(workers, start=1):
            report.sections.append(
                (f"worker {number} log (pid {process.pid})", process.log()[-LOG_TAIL:])
            )
    return report


@pytest.fixture
def start_worker(
    transactional_db: None,
    worker_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes on this test's database; every one is killed at teardown."""
    started: list[WorkerProcess] = []
    request.node.stash[STARTED_WORKERS] = started

    def start(
        *args: str, options: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        environment = {**worker_env(**(options or {})), **(env or {})}
        process = WorkerProcess(list(args), environment, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def wait_until(
    condition: Callable[[], Any], *, timeout: float = 30, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until condition() is truthy; return its value or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


# How many tests this pass left to the SQLite pass; reported in one line at the end.
SQLITE_PASS_ONLY = pytest.StashKey[int]()
# Where tests leave files for people to look at (the browser test's screenshots).
ARTIFACTS = ROOT / "artifacts"
SESSION_STARTED = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_STARTED] = time.time()


def runs_in_sqlite_pass_only(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("any_database")) or "/tests/unit/" in str(item.path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need no database, or behave the same on any, run in the SQLite pass only.

    The other passes deselect them rather than skip them: one line at the end says so,
    where skipping listed each of them under -ra and buried the skips that matter.
    """
    vendor = os.environ.get("CONVEYOR_TEST_DATABASE", "sqlite")
    if vendor == "sqlite":
        return
    elsewhere = [item for item in items if runs_in_sqlite_pass_only(item)]
    if not elsewhere:
        return
    config.hook.pytest_deselected(items=elsewhere)
    items[:] = [item for item in items if not runs_in_sqlite_pass_only(item)]
    config.stash[SQLITE_PASS_ONLY] = len(elsewhere)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    left = config.stash.get(SQLITE_PASS_ONLY, 0)
    if left:
        terminalreporter.write_line(
            f"{left} tests independent of the database ran in the SQLite pass, not in this one"
        )
    started = config.stash.get(SESSION_STARTED, time.time())
    for path in sorted(ARTIFACTS.glob("*")) if ARTIFACTS.is_dir() else []:
        if path.stat().st_mtime >= started:
            terminalreporter.write_line(f"saved: {path.relative_to(ROOT)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Every selected test belonged to the SQLite pass (./dev test tests/unit): none failed.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and session.config.stash.get(
        SQLITE_PASS_ONLY, 0
    ):
        session.exitstatus = pytest.ExitCode.OK
