"""manage.py rundemo as a user runs it: a real process with a web server and a worker."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from messagecenter import superuser
from messagecenter.launcher import Address, address
from tests.conftest import ROOT, wait_until
from tests.demo.ntfy_server import NtfyServer

MANAGE_PY = ROOT / "demo" / "manage.py"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds child processes through Linux's /proc"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every living process below pid, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces; the parent pid follows it.
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Demo:
    """A `manage.py rundemo` process with the demo's own settings on a fresh SQLite file."""

    def __init__(self, tmp_path: Path, *args: str, ntfy_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env |= {
            "MESSAGECENTER_SQLITE_PATH": str(tmp_path / "demo.sqlite3"),
            "NTFY_URL": ntfy_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.database = tmp_path / "demo.sqlite3"
        self.log_path = tmp_path / "rundemo.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "rundemo", *args],
            env=env,
            cwd=tmp_path,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_url(self) -> str:
        def announced() -> str | None:
            assert self.popen.poll() is None, f"rundemo exited early:\n{self.log()}"
            match = re.search(r"Message center: (http://\S+)", self.log())
            return match[1] if match else None

        url: str = wait_until(announced, timeout=60, what="rundemo to announce its URL")
        return url

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"rundemo did not exit in {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        for pid in descendants(self.popen.pid):
            os.kill(pid, signal.SIGKILL)
        self.popen.kill()
        self.popen.wait()
        self._log.close()


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    started: list[Demo] = []

    def start(*args: str, ntfy_url: str) -> Demo:
        demo = Demo(tmp_path, *args, ntfy_url=ntfy_url)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.kill()
        # pytest shows this only when the test failed.
        print(f"--- {demo.log_path}\n{demo.log()}")


def send_with_htmx(client: httpx.Client, message: str) -> httpx.Response:
    page = client.get("/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/messages/",
        data={"csrfmiddlewaretoken": token[1], "message": message},
        headers={"HX-Request": "true"},
    )


def log_in(client: httpx.Client, admin_url: str, *, username: str, password: str) -> httpx.Response:
    """Log in on the admin's login page as a person would; return the page it leads to."""
    form = client.get(admin_url, follow_redirects=True)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post(
        str(form.url),
        data={"csrfmiddlewaretoken": token[1], "username": username, "password": password},
        follow_redirects=True,
    )


def test_rundemo_serves_the_page_runs_the_task_and_stops_both_on_ctrl_c(
    run_demo, ntfy_server: NtfyServer, ntfy_url: str
):
    # No reloader: files that change elsewhere in the tree must not restart this server.
    demo = run_demo(f"127.0.0.1:{free_port()}", "--noreload", ntfy_url=ntfy_url)
    url = demo.wait_for_url()
    assert f"terminal: curl -s {ntfy_url}/json" in demo.log()

    with httpx.Client(base_url=url, timeout=10) as client:
        created = send_with_htmx(client, "Hello from rundemo")
        assert created.status_code == 201, created.text
        poll = re.search(r'hx-get="([^"]+)"', created.text)
        assert poll
        finished = wait_until(
            lambda: (answer := client.get(poll[1])).status_code == 286 and answer,
            what="the worker to send the notification",
        )
        admin = re.search(r"Admin: (http://\S+) user (\S+) / password (\S+)", demo.log())
        assert admin, demo.log()
        logged_in = log_in(client, admin[1], username=admin[2], password=admin[3])
        tasks = client.get(f"{admin[1]}conveyor/taskrecord/")
    assert "Successful" in finished.text
    assert [r.body for r in ntfy_server.received] == ["Hello from rundemo"], demo.log()
    assert (admin[1], admin[2], admin[3]) == (f"{url}admin/", "demo", "demo")
    assert "Created the admin's superuser demo." in demo.log()
    assert logged_in.url == admin[1], logged_in.text
    assert tasks.status_code == 200
    assert "messagecenter.tasks.send_notification" in tasks.text

    children = descendants(demo.popen.pid)
    assert len(children) == 2, demo.log()  # the web server and the worker
    demo.popen.send_signal(signal.SIGINT)
    assert demo.wait() == 0, demo.log()
    assert "Stopped." in demo.log()
    assert not [pid for pid in children if alive(pid)], demo.log()


@pytest.mark.django_db
def test_the_superuser_is_made_once_and_then_left_as_it_is():
    assert superuser.ensure_superuser()
    user = get_user_model()._default_manager.get(username="demo")
    assert user.is_superuser
    assert user.check_password("demo")
    user.set_password("changed")
    user.save()

    assert not superuser.ensure_superuser()
    assert get_user_model()._default_manager.get(username="demo").check_password("changed")


def test_sigterm_stops_the_reloading_web_server_and_the_worker(run_demo, ntfy_url: str):
    demo = run_demo(f"127.0.0.1:{free_port()}", ntfy_url=ntfy_url)
    demo.wait_for_url()
    children = descendants(demo.popen.pid)
    # The worker, Django's reloader, and the web server the reloader runs.
    assert len(children) == 3, demo.log()

    demo.popen.send_signal(signal.SIGTERM)

    assert demo.wait() == 0, demo.log()
    assert not [pid for pid in children if alive(pid)]


def test_when_the_web_server_cannot_start_the_worker_is_stopped_too(run_demo, ntfy_url: str):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = run_demo(f"127.0.0.1:{port}", "--noreload", ntfy_url=ntfy_url)

        status = demo.wait()

    assert status == 1
    assert "The web server exited with status 1; stopped the demo." in demo.log()
    assert not descendants(demo.popen.pid)


def test_a_bad_address_is_refused_before_anything_happens():
    with pytest.raises(CommandError) as caught:
        call_command("rundemo", "localhost:70000")

    assert str(caught.value) == (
        "Error: argument [HOST:]PORT: expected PORT or HOST:PORT with a port from 1 to 65535, "
        "like 127.0.0.1:8000; got 'localhost:70000'"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8001", Address("127.0.0.1", 8001)),
        ("0.0.0.0:80", Address("0.0.0.0", 80)),
        ("localhost:8000", Address("localhost", 8000)),
        ("[::1]:8000", Address("[::1]", 8000)),
    ],
)
def test_addresses_rundemo_accepts(value: str, expected: Address):
    assert address(value) == expected


@pytest.mark.parametrize(
    "value", ["0", "65536", "localhost:", "host:port", "my_host:80", "[::1:80"]
)
def test_addresses_rundemo_refuses(value: str):
    with pytest.raises(
        argparse.ArgumentTypeError, match=f"expected PORT or HOST:PORT.*{re.escape(repr(value))}"
    ):
        address(value)
