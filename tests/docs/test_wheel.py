"""The package as a user gets it: the wheel and sdist that `uv build` makes, and the wheel
installed in a fresh virtual environment, where the quickstart runs as written: on Django
5.2 with the django-tasks backport, on 6.0 and on 6.1, each as the docs say to install it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs.project import Project
from tests.docs.replay import QUICKSTART, check_the_admin_lists_the_quickstart_tasks, replay

pytestmark = [pytest.mark.any_database, pytest.mark.process]

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DIST_NAME = PROJECT["name"].replace("-", "_")
WHEEL = f"{DIST_NAME}-{PROJECT['version']}-py3-none-any.whl"
SDIST = f"{DIST_NAME}-{PROJECT['version']}.tar.gz"
DIST_INFO = f"{DIST_NAME}-{PROJECT['version']}.dist-info"
BUILD_TIMEOUT = 120
# What a project on each supported Django installs, as docs/quickstart.md says: the wheel
# (with the extra [django52] on 5.2) and, below the newest, that Django.
INSTALLS = {
    "5.2": ("[django52]", "Django~=5.2.0"),
    "6.0": ("", "Django~=6.0.0"),
    "6.1": ("", None),
}


def find_uv() -> str | None:
    """The uv that ./dev uses: on PATH, or the one it installed into .tools/."""
    local = ROOT / ".tools" / "bin" / "uv"
    return shutil.which("uv") or (str(local) if local.exists() else None)


UV = find_uv()


def uv(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run uv outside this project: no project environment or interpreter of ./dev's."""
    assert UV is not None
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "VIRTUAL_ENV"}
    }
    done = subprocess.run(
        [UV, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"uv {' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as `uv build` makes them for a release."""
    if UV is None:
        pytest.skip("uv is not installed (./dev installs it into .tools/)")
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--out-dir", out, ROOT)
    return out


@pytest.fixture(params=sorted(INSTALLS))
def django_version(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


@pytest.fixture
def installed(dist: Path, tmp_path: Path, django_version: str) -> Path:
    """A fresh virtual environment with the wheel installed for a Django; its bin/."""
    venv = tmp_path / "venv"
    extra, django = INSTALLS[django_version]
    wanted = [f"django-conveyor{extra} @ {(dist / WHEEL).as_uri()}", *([django] if django else [])]
    uv("venv", "--quiet", "--python", sys.executable, venv)
    uv("pip", "install", "--quiet", "--python", venv / "bin" / "python", *wanted)
    return venv / "bin"


def test_uv_build_makes_the_sdist_and_the_wheel_the_docs_name(dist: Path):
    assert sorted(path.name for path in dist.iterdir() if path.name != ".gitignore") == [
        WHEEL,
        SDIST,
    ]


def test_the_wheel_holds_the_package_with_its_migrations_and_templates_and_nothing_else(
    dist: Path,
):
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        names = wheel.namelist()
    assert "conveyor/migrations/0001_initial.py" in names
    assert "conveyor/py.typed" in names
    assert any(name.startswith("conveyor/templates/admin/") for name in names)
    assert any(name.startswith("conveyor/management/commands/conveyor_worker") for name in names)
    assert f"{DIST_INFO}/licenses/LICENSE" in names
    outside = {name.split("/")[0] for name in names} - {"conveyor", DIST_INFO}
    assert not outside, f"the wheel holds more than the package: {outside}"


def test_the_sdist_holds_what_builds_the_wheel(dist: Path):
    with tarfile.open(dist / SDIST) as sdist:
        names = {name.split("/", 1)[-1] for name in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE", "src/conveyor/__init__.py"} <= names


def test_the_quickstart_runs_against_the_installed_wheel(installed: Path, django_version: str):
    project = Project.empty(venv_bin=installed)
    try:
        replay(project, QUICKSTART, django=django_version)
        where = project.run("python -c 'import conveyor; print(conveyor.__file__)'")
        assert where.stdout.startswith(str(installed.parent)), where.describe()
        found = project.run("python -c 'import django; print(django.get_version())'")
        assert found.stdout.startswith(f"{django_version}."), found.describe()
        check_the_admin_lists_the_quickstart_tasks(project)
    finally:
        project.remove()
