"""Fixtures of the documentation tests: the quickstart's project, built once per run."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.docs.project import Project
from tests.docs.replay import QUICKSTART, replay


@pytest.fixture(scope="session")
def quickstart() -> Iterator[Project]:
    """The project a reader has after following the quickstart, every block as written."""
    project = Project.empty()
    try:
        replay(project, QUICKSTART)
        yield project
    finally:
        project.remove()


@pytest.fixture
def reader_project(quickstart: Project) -> Iterator[Callable[[], Project]]:
    """Copies of the quickstart's project, one per call, removed after the test."""
    made: list[Project] = []

    def copy() -> Project:
        made.append(quickstart.copy())
        return made[-1]

    yield copy
    for project in made:
        project.remove()
