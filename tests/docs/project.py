"""A throwaway Django project driven by the blocks of a page, as a reader would drive it.

Commands run with the project's virtual environment first on PATH (so `python` and
`django-admin` are this checkout's), in a shell whose working directory carries over from
block to block (`cd mysite` in one block holds for the next).
"""

from __future__ import annotations

import doctest
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.pages import Block

VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 120
READY_TIMEOUT = 60
STOP_TIMEOUT = 30
WORKER_READY = "started backend="
# The address pages give the development server; a replay serves on a free port instead,
# so that it never meets a server someone else runs on this machine.
PAGE_SERVER = "127.0.0.1:8000"

# Runs a doctest inside `manage.py shell -c`; the block's text comes in a file.
DOCTEST_RUNNER = """
import doctest, os, sys
path = os.environ["DOCS_BLOCK_PATH"]
text = open(path).read()
test = doctest.DocTestParser().get_doctest(text, {}, os.environ["DOCS_BLOCK_NAME"], path, 0)
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
runner = doctest.DocTestRunner(optionflags=flags)
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""

# Logs in to the admin with Django's test client and prints a page's status and HTML.
ADMIN_PAGE = """
import os
from django.test import Client
client = Client(HTTP_HOST="localhost")
if not client.login(username=os.environ["DOCS_USERNAME"], password=os.environ["DOCS_PASSWORD"]):
    raise SystemExit("cannot log in as " + os.environ["DOCS_USERNAME"])
response = client.get(os.environ["DOCS_PATH"])
print(response.status_code)
print(response.content.decode())
"""


def clean_environment(venv_bin: Path = VENV_BIN) -> dict[str, str]:
    """The environment of a reader's shell: no test settings, a venv (this one unless told)
    first on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CONVEYOR_", "PYTEST", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Ran:
    """A finished command: its exit status and its output (stdout, then stderr)."""

    command: str
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"$ {self.command}\n(exit {self.status})\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@dataclass
class Project:
    """One reader's session: a directory, a current directory, and the last output."""

    root: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=clean_environment)
    last: Ran | None = None
    # A development server started by a `project serve` block, and where it listens.
    server: subprocess.Popen[bytes] | None = None
    server_address: str = PAGE_SERVER

    @classmethod
    def empty(cls, venv_bin: Path = VENV_BIN) -> Project:
        root = Path(tempfile.mkdtemp(prefix="conveyor-docs-"))
        return cls(root=root, cwd=root, env=clean_environment(venv_bin))

    def copy(self) -> Project:
        """A copy of this project (files and SQLite database) in a new directory."""
        root = Path(tempfile.mkdtemp(prefix="conveyor-docs-"))
        shutil.copytree(self.root, root, dirs_exist_ok=True, symlinks=True)
        return Project(root=root, cwd=root / self.cwd.relative_to(self.root), env=dict(self.env))

    def remove(self) -> None:
        self.stop_server()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- commands -----------------------------------------------------------------------------

    def run(self, script: str, *, timeout: float = COMMAND_TIMEOUT) -> Ran:
        """Run shell lines with bash -e; remember where the script left the directory."""
        marker = self.root / ".docs-cwd"
        wrapped = f"cd {shlex.quote(str(self.cwd))}\n{script}\npwd > {shlex.quote(str(marker))}\n"
        done = subprocess.run(
            ["bash", "-e", "-c", wrapped],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode == 0 and marker.exists():
            self.cwd = Path(marker.read_text().strip())
        self.last = Ran(script.strip(), done.returncode, done.stdout, done.stderr)
        return self.last

    def start(self, command: str) -> subprocess.Popen[bytes]:
        """Start a long-running command in the project, in its own session."""
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def serve(self, command: str) -> None:
        """Start the development server on a free port; return once it accepts connections."""
        assert self.server is None, "a development server already runs"
        port = free_port()
        self.server_address = f"127.0.0.1:{port}"
        log = self.root / ".docs-server.log"
        with log.open("wb") as output:
            self.server = subprocess.Popen(
                ["bash", "-c", f"exec {command} {self.server_address} --noreload"],
                cwd=self.cwd,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.server, port, log=log)

    def stop_server(self) -> None:
        if self.server is not None:
            kill_group(self.server)
            self.server = None

    def local(self, text: str) -> str:
        """A block's text with the page's server address replaced by the one served."""
        return text.replace(PAGE_SERVER, self.server_address)

    def doctest(self, block: Block) -> Ran:
        """Run a >>> session in `python manage.py shell`."""
        path = self.root / ".docs-block.txt"
        path.write_text(block.text)
        env = {**self.env, "DOCS_BLOCK_PATH": str(path), "DOCS_BLOCK_NAME": block.where}
        done = subprocess.run(
            ["python", "manage.py", "shell", "--no-imports", "-c", DOCTEST_RUNNER],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Ran(f"manage.py shell <<< {block.where}", done.returncode, done.stdout, done.stderr)

    def admin_page(self, path: str, *, username: str, password: str) -> Ran:
        """An admin page as a logged-in user sees it: status on the first line, then HTML."""
        env = {**self.env, "DOCS_USERNAME": username, "DOCS_PASSWORD": password, "DOCS_PATH": path}
        done = subprocess.run(
            ["python", "manage.py", "shell", "--no-imports", "-c", ADMIN_PAGE],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Ran(f"admin page {path}", done.returncode, done.stdout, done.stderr)

    # -- files --------------------------------------------------------------------------------

    def path(self, relative: str) -> Path:
        return self.cwd / relative

    def write(self, relative: str, text: str) -> None:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def append(self, relative: str, text: str) -> None:
        target = self.path(relative)
        assert target.exists(), f"cannot append to {relative}: no such file in the project"
        with target.open("a") as file:
            file.write("\n" + text)


def stop_gracefully(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> str:
    """Send one signal to the process (not its group) and return what it printed after."""
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(process)
        output, _ = process.communicate()
        raise AssertionError(
            f"did not stop within {STOP_TIMEOUT}s of {signum!r}:\n{output.decode(errors='replace')}"
        ) from None
    return output.decode(errors="replace")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a process started by Project.start and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    process: subprocess.Popen[bytes], port: int, *, log: Path, timeout: float = READY_TIMEOUT
) -> None:
    """Wait until something accepts connections on the port; fail if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            kill_group(process)
            raise AssertionError(
                f"nothing listened on port {port} within {timeout}s "
                f"(exit status {process.poll()}); output:\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.1)


def wait_for_lines(
    process: subprocess.Popen[bytes], needle: str, count: int, timeout: float = READY_TIMEOUT
) -> list[str]:
    """Read the process's output until `count` lines contain `needle`; return what was read."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    received = b""
    deadline = time.monotonic() + timeout
    while received.decode(errors="replace").count(needle) < count:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([descriptor], [], [], max(remaining, 0))
        chunk = os.read(descriptor, 65536) if ready else b""
        if not chunk:  # timed out, or the process closed its output (it exited)
            kill_group(process)
            raise AssertionError(
                f"expected {count} line(s) with {needle!r} within {timeout}s "
                f"(exit status {process.poll()}); output:\n{received.decode(errors='replace')}"
            )
        received += chunk
    return received.decode(errors="replace").splitlines()


def matches(expected: str, actual: str) -> bool:
    """Whether output matches expected text, where `...` stands for anything and runs of
    whitespace compare equal."""
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    return checker.check_output(expected.strip() + "\n", actual.strip() + "\n", flags)
