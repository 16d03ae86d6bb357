"""The runnable pages, replayed block by block in a throwaway project."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.docs.conftest import QUICKSTART
from tests.docs.pages import checked_pages
from tests.docs.project import Project
from tests.docs.replay import project_blocks, replay

pytestmark = [pytest.mark.any_database, pytest.mark.process]

OTHER_PAGES = [p for p in checked_pages() if p != QUICKSTART and project_blocks(p)]


def test_the_quickstart_runs_as_written(quickstart: Project) -> None:
    # The fixture followed every block; what the reader has at the end is a project whose
    # task ran, in a database of its own.
    assert (quickstart.cwd / "manage.py").exists()
    assert (quickstart.cwd / "db.sqlite3").exists()


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_page_runs_as_written_after_the_quickstart(
    reader_project: Callable[[], Project], page: str
) -> None:
    replay(reader_project(), page)
