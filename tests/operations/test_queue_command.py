"""manage.py conveyor_queue on every database: pause, resume, list, and its mistakes."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def queue(*args: str) -> str:
    out = StringIO()
    call_command("conveyor_queue", *args, stdout=out)
    return out.getvalue()


def test_pause_resume_and_list_report_what_changed() -> None:
    assert queue("list") == "No paused queues\n"
    assert queue("pause", "low_priority") == "Paused queue 'low_priority'\n"
    assert queue("pause", "low_priority") == "'low_priority' was paused\n"
    assert queue("list").startswith("low_priority  paused since ")
    assert queue("resume", "low_priority") == "Resumed queue 'low_priority'\n"
    assert queue("resume", "low_priority") == "'low_priority' was not paused\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "nowhere"), "Queue 'nowhere' is not in TASKS['default']['QUEUES']"),
        (("resume",), "'resume' needs the name of a queue"),
        (("list", "default"), "'list' takes no queue name"),
    ],
)
def test_mistakes_are_one_line_errors(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        queue(*args)
