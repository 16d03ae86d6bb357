"""The runnable pages, replayed block by block in a throwaway project."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.docs.pages import checked_pages
from tests.docs.project import Project
from tests.docs.replay import (
    QUICKSTART,
    check_the_admin_lists_the_quickstart_tasks,
    project_blocks,
    replay,
)

pytestmark = [pytest.mark.any_database, pytest.mark.process]

OTHER_PAGES = [p for p in checked_pages() if p != QUICKSTART and project_blocks(p)]


def test_the_quickstart_runs_as_written(quickstart: Project) -> None:
    # The fixture followed every block; what the reader has at the end is a project whose
    # task ran, in a database of its own.
    assert (quickstart.cwd / "manage.py").exists()
    assert (quickstart.cwd / "db.sqlite3").exists()


def test_the_quickstart_user_sees_both_tasks_in_the_admin(quickstart: Project) -> None:
    check_the_admin_lists_the_quickstart_tasks(quickstart)


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_page_runs_as_written_after_the_quickstart(
    reader_project: Callable[[], Project], page: str
) -> None:
    replay(reader_project(), page)
