"""The harness itself: it reads markers and tables as documented, and can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.formats import yaml_subset
from tests.docs.pages import Check, _cells
from tests.docs.project import Project, matches

pytestmark = pytest.mark.any_database


def test_markers_are_read_and_malformed_ones_reported() -> None:
    assert Check.parse("project write emails/tasks.py").words == ("write", "emails/tasks.py")
    assert Check.parse("project run exit=2").option("exit") == "2"
    assert Check.parse("none (needs systemd)").reason == "needs systemd"
    assert Check.parse("none").problem()
    assert Check.parse("shell").problem()
    assert Check.parse("project jump").problem()
    assert not Check.parse("source conveyor.store.postgresql CLAIM_SQL").problem()
    assert not Check.parse("project serve").problem()


def test_blocks_reach_the_served_development_server_at_its_own_address() -> None:
    project = Project(root=Path("/nonexistent"), cwd=Path("/nonexistent"))
    project.server_address = "127.0.0.1:40123"
    assert project.local("curl http://127.0.0.1:8000/sign-up/") == (
        "curl http://127.0.0.1:40123/sign-up/"
    )


def test_output_matching_allows_ellipses_and_whitespace_but_not_other_text() -> None:
    assert matches("OK: backend=default due=...", "OK: backend=default due=3\n")
    assert matches("a   b\n...\nc", "a b\nanything\nelse\nc")
    assert not matches("Deleted 5 tasks.", "Deleted 4 tasks.")
    assert not matches("OK", "UNHEALTHY")


def test_table_cells_keep_pipes_inside_code() -> None:
    assert _cells("| `a | b` | c \\| d |") == ["`a | b`", "c | d"]


def test_yaml_subset_reads_the_deployment_shapes_and_refuses_others() -> None:
    text = 'a:\n  b: 1\n  c:\n    - name: x\n      cmd: ["p", "q"]\n'
    assert yaml_subset(text) == {"a": {"b": 1, "c": [{"name": "x", "cmd": ["p", "q"]}]}}
    with pytest.raises(AssertionError):
        yaml_subset("a: 1\n  b: 2\n")
