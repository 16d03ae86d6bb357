"""The suite's passes, one per database: what a server pass leaves to the SQLite pass is
summed up in one line, and real skips are still listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.any_database

INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = tests.settings
addopts = -ra
markers = any_database: runs in the SQLite pass only
"""
# The suite's own hooks, in a conftest of the sample's directory.
CONFTEST = """\
from tests.conftest import (
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
"""
TESTS = """\
import pytest

@pytest.mark.any_database
def test_one(): pass

@pytest.mark.any_database
def test_two(): pass

@pytest.mark.skip(reason="needs a printer")
def test_three(): pass
"""


def run_pass(tmp_path: Path, vendor: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest with this suite's hooks on a sample of three tests."""
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_sample.py").write_text(TESTS)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env |= {
        "CONVEYOR_TEST_DATABASE": vendor,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "demo")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_server_pass_sums_up_the_tests_left_to_the_sqlite_pass_in_one_line(tmp_path: Path):
    done = run_pass(tmp_path, "postgresql", "test_sample.py")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 tests independent of the database ran in the SQLite pass" in done.stdout
    assert done.stdout.count("SQLite pass") == 1
    # A skip for another reason is still listed by -ra.
    assert "SKIPPED [1] test_sample.py:9: needs a printer" in done.stdout


def test_the_sqlite_pass_runs_them(tmp_path: Path):
    done = run_pass(tmp_path, "sqlite", "test_sample.py")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 1 skipped" in done.stdout
    assert "SQLite pass" not in done.stdout


def test_a_server_pass_of_only_such_tests_passes(tmp_path: Path):
    done = run_pass(tmp_path, "postgresql", "test_sample.py::test_one")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 tests independent of the database ran in the SQLite pass" in done.stdout
