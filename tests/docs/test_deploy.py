"""The deployment examples in docs/deploy/: read as their tools read them, and their
commands run in the quickstart's project."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.management.commands.conveyor_worker import Command as WorkerCommand
from tests.docs.formats import (
    CONTAINER_INSTRUCTIONS,
    container_instructions,
    exec_form,
    procfile,
    systemd_unit,
    yaml_subset,
)
from tests.docs.pages import DOCS
from tests.docs.project import Project
from tests.docs.replay import start_worker_and_stop

pytestmark = [pytest.mark.any_database, pytest.mark.process]

DEPLOY = DOCS / "deploy"
# Where the systemd units expect the project and its virtualenv.
SERVER_PROJECT = "/srv/mysite"
SERVER_PYTHON = "/srv/mysite/.venv/bin/python"


def shutdown_timeout(command: list[str]) -> timedelta:
    """The --shutdown-timeout a conveyor_worker command line gives (or the default)."""
    parser = WorkerCommand().create_parser("manage.py", "conveyor_worker")
    arguments = command[command.index("conveyor_worker") + 1 :]
    value: timedelta = parser.parse_args(arguments).shutdown_timeout
    return value


def local(command: str) -> str:
    """A unit's command with the server's paths replaced by the test project's."""
    return command.replace(SERVER_PYTHON, "python").replace(SERVER_PROJECT + "/", "")


def run_in(project: Project, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=project.cwd,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return systemd_unit((DEPLOY / name).read_text())


def one(section: dict[str, list[str]], key: str) -> str:
    (value,) = section[key]
    return value


class TestSystemd:
    def test_the_worker_unit_stops_the_supervisor_only_and_waits_long_enough(self) -> None:
        service = unit("conveyor-worker.service")["Service"]
        assert one(service, "KillMode") == "mixed"
        assert one(service, "KillSignal") == "SIGTERM"
        assert one(service, "WorkingDirectory") == SERVER_PROJECT
        command = shlex.split(one(service, "ExecStart"))
        assert command[0] == SERVER_PYTHON
        stop = timedelta(seconds=int(one(service, "TimeoutStopSec")))
        assert stop > shutdown_timeout(command)
        assert one(service, "Restart") == "on-failure"

    def test_the_worker_unit_starts_a_worker_that_stops_cleanly_on_its_kill_signal(
        self, reader_project: Callable[[], Project]
    ) -> None:
        service = unit("conveyor-worker.service")["Service"]
        project = reader_project()
        # KillMode=mixed: the signal goes to the main process (the supervisor) alone.
        start_worker_and_stop(project, local(one(service, "ExecStart")), where="ExecStart")

    def test_the_check_unit_runs_a_passing_check(
        self, reader_project: Callable[[], Project]
    ) -> None:
        service = unit("conveyor-check.service")["Service"]
        assert one(service, "Type") == "oneshot"
        done = run_in(reader_project(), shlex.split(local(one(service, "ExecStart"))))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("OK: backend=default")

    def test_the_timer_starts_the_check_unit(self) -> None:
        timer = unit("conveyor-check.timer")
        assert "OnUnitActiveSec" in timer["Timer"]
        # A timer starts the service of the same name unless it says Unit=.
        assert "Unit" not in timer["Timer"]
        assert (DEPLOY / "conveyor-check.service").exists()
        assert one(timer["Install"], "WantedBy") == "timers.target"

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
    @pytest.mark.parametrize(
        "name", ["conveyor-worker.service", "conveyor-check.service", "conveyor-check.timer"]
    )
    def test_systemd_analyze_accepts_the_unit(self, tmp_path: Path, name: str) -> None:
        # Verify a copy whose paths exist here; the units themselves name /srv/mysite.
        text = (DEPLOY / name).read_text().replace(SERVER_PYTHON, shutil.which("python3") or "")
        text = text.replace(SERVER_PROJECT, str(tmp_path)).replace("mysite\n", "root\n")
        for other in DEPLOY.glob("conveyor-*"):
            (tmp_path / other.name).write_text(
                other.read_text().replace(SERVER_PYTHON, "/bin/true")
            )
        (tmp_path / name).write_text(text)
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        complaints = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
        assert not complaints, done.stderr


class TestProcfile:
    def test_release_migrates_and_worker_runs(self, reader_project: Callable[[], Project]) -> None:
        processes = procfile((DEPLOY / "Procfile").read_text())
        assert set(processes) == {"release", "worker"}
        project = reader_project()
        release = project.run(processes["release"])
        assert release.status == 0, release.describe()
        start_worker_and_stop(project, processes["worker"], where="Procfile worker")


class TestContainerfile:
    def instructions(self) -> dict[str, str]:
        found = container_instructions((DEPLOY / "Containerfile").read_text())
        unknown = {name for name, _ in found} - CONTAINER_INSTRUCTIONS
        assert not unknown, f"not Containerfile instructions: {unknown}"
        return dict(found)

    def test_the_worker_is_the_main_process_and_stops_on_sigterm(
        self, reader_project: Callable[[], Project]
    ) -> None:
        instructions = self.instructions()
        assert instructions["STOPSIGNAL"] == "SIGTERM"
        command = exec_form(instructions["CMD"])
        start_worker_and_stop(reader_project(), shlex.join(command), where="CMD")

    def test_the_healthcheck_passes_on_a_healthy_backend(
        self, reader_project: Callable[[], Project]
    ) -> None:
        check = exec_form(self.instructions()["HEALTHCHECK"])
        done = run_in(reader_project(), check)
        assert done.returncode == 0, done.stderr


class TestKubernetes:
    def container(self) -> dict[str, Any]:
        manifest = yaml_subset((DEPLOY / "kubernetes.yaml").read_text())
        assert manifest["kind"] == "Deployment"
        spec = manifest["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        grace = timedelta(seconds=spec["terminationGracePeriodSeconds"])
        assert grace > shutdown_timeout(container["command"])
        assert (
            manifest["spec"]["selector"]["matchLabels"]
            == (manifest["spec"]["template"]["metadata"]["labels"])
        )
        return container  # type: ignore[no-any-return]

    def test_the_container_runs_a_worker_that_stops_on_sigterm(
        self, reader_project: Callable[[], Project]
    ) -> None:
        command = self.container()["command"]
        assert isinstance(command, list)
        start_worker_and_stop(reader_project(), shlex.join(command), where="command")

    def test_the_probes_pass_when_healthy_and_fail_when_tasks_wait_for_no_worker(
        self, reader_project: Callable[[], Project]
    ) -> None:
        container = self.container()
        project = reader_project()
        probes = [
            container[probe]["exec"]["command"] for probe in ("readinessProbe", "livenessProbe")
        ]
        for command in probes:
            done = run_in(project, command)
            assert done.returncode == 0, done.stderr
        ran = project.run(
            "python manage.py shell --no-imports -c "
            "'from emails.tasks import send_welcome_email as t; t.enqueue(\"x@example.com\")'"
        )
        assert ran.status == 0, ran.describe()
        failed = run_in(project, probes[0])
        assert failed.returncode == 1
        assert failed.stderr.startswith("UNHEALTHY: backend=default queue=default: 1 due task(s)")


class TestMonitoring:
    def test_the_scrape_config_scrapes_the_worker_port_and_the_documented_view(self) -> None:
        config = yaml_subset((DEPLOY / "prometheus.yml").read_text())
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        workers, web = jobs["conveyor-workers"], jobs["conveyor-web"]
        parser = WorkerCommand().create_parser("manage.py", "conveyor_worker")
        for target in workers["static_configs"][0]["targets"]:
            port = target.rsplit(":", 1)[1]
            assert parser.parse_args(["--metrics-port", port]).metrics_port == int(port)
        operations = (DOCS / "operations.md").read_text()
        assert f'path("{web["metrics_path"].strip("/")}/", metrics.view)' in operations

    @pytest.mark.django_db
    def test_the_grafana_dashboard_queries_only_series_conveyor_exports(self) -> None:
        import json
        import re

        from conveyor import metrics

        dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
        expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        used = {name for e in expressions for name in re.findall(r"conveyor_\w+", e)}
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        exported = {
            family.name + suffix
            for collector in (
                metrics.ENQUEUED,
                metrics.STARTED,
                metrics.FINISHED,
                metrics.WAIT,
                metrics.RUN,
            )
            for family in collector.describe()
            for suffix in suffixes[family.type]
        }
        exported |= {family.name for family in metrics.DatabaseCollector().collect()}
        assert used
        assert used <= exported, used - exported
        titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
        for wanted in ("finished", "due", "wait", "failing", "workers"):
            assert wanted in titles
