"""The runnable pages, replayed block by block in a throwaway project."""

from __future__ import annotations

import re
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


def test_the_quickstart_user_sees_both_tasks_in_the_admin(quickstart: Project) -> None:
    check_the_admin_lists_the_quickstart_tasks(quickstart)


def check_the_admin_lists_the_quickstart_tasks(project: Project) -> None:
    """Log in as the user the quickstart created and read the admin's task list."""
    page = "\n".join(block.text for block in project_blocks(QUICKSTART))
    password = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", page)
    username = re.search(r"--username (\S+)", page)
    assert password, f"{QUICKSTART} gives the superuser no password"
    assert username, f"{QUICKSTART} gives the superuser no username"
    shown = project.admin_page(
        "/admin/conveyor/taskrecord/", username=username[1], password=password[1]
    )
    assert shown.status == 0, shown.describe()
    assert shown.stdout.startswith("200\n"), shown.describe()
    assert shown.stdout.count("emails.tasks.send_welcome_email") >= 2, shown.describe()


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_page_runs_as_written_after_the_quickstart(
    reader_project: Callable[[], Project], page: str
) -> None:
    replay(reader_project(), page)
