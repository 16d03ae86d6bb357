"""manage.py conveyor_purge on every database: cut-offs, --dry-run, --limit, bad input."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, TaskRecord
from tests.factories import ago
from tests.operations.test_retention import old_history, rows

pytestmark = pytest.mark.django_db

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def purge(*args: str) -> str:
    out = StringIO()
    call_command("conveyor_purge", *args, stdout=out)
    return out.getvalue().strip()


def remaining() -> set[int]:
    return set(TaskRecord.objects.values_list("pk", flat=True))


def test_finished_deletes_results_older_than_the_configured_cut_off() -> None:
    old_history(finished=4)
    recent = rows(2, status=FAILED, finished_at=ago(days=9))
    running = rows(1, status=RUNNING, enqueued_at=ago(days=40), worker_id="w")
    assert purge("finished") == "Deleted 4 finished task(s) older than 10 days."
    assert remaining() == {*recent, *running}
    assert not Attempt.objects.exists()


def test_unfinished_deletes_only_old_ready_tasks() -> None:
    _, stale = old_history(finished=3, stale=2)
    fresh = rows(1, status=READY, enqueued_at=ago(days=1))
    before = remaining()
    assert purge("unfinished") == "Deleted 2 unfinished task(s) older than 20 days."
    assert remaining() == before - set(stale)
    assert set(fresh) <= remaining()


def test_dry_run_counts_and_deletes_nothing() -> None:
    old_history(finished=5, stale=3)
    before = remaining()
    assert purge("finished", "--dry-run") == ("Would delete 5 finished task(s) older than 10 days.")
    assert purge("unfinished", "--dry-run", "--limit", "2") == (
        "Would delete 2 unfinished task(s) older than 20 days."
    )
    assert remaining() == before
    assert Attempt.objects.count() == 5


def test_before_overrides_the_cut_off_and_limit_caps_the_deletion() -> None:
    rows(6, status=SUCCESSFUL, finished_at=ago(hours=3))
    kept = rows(2, status=SUCCESSFUL, finished_at=ago(minutes=30))
    assert purge("finished", "--before", "2 hours", "--limit", "4") == (
        "Deleted 4 finished task(s) older than 2 hours."
    )
    assert len(remaining()) == 4
    assert purge("finished", "--before", "PT2H") == "Deleted 2 finished task(s) older than 2 hours."
    assert remaining() == set(kept)


def test_without_a_cut_off_it_says_where_to_set_one(task_options: Any) -> None:
    task_options(purge={})
    rows(1, status=SUCCESSFUL, finished_at=ago(days=400))
    with pytest.raises(CommandError) as raised:
        purge("finished")
    assert str(raised.value) == (
        "No cut-off: pass --before or set TASKS['default']['OPTIONS']['purge']['finished']"
    )
    assert len(remaining()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["finished", "--before", "soon"], "--before: cannot read 'soon' as a duration"),
        (["finished", "--limit", "0"], "--limit: must be at least 1, got 0"),
        (["everything"], "invalid choice: 'everything'"),
        (["finished", "--backend", "nope"], "No task backend 'nope' in TASKS"),
    ],
)
def test_bad_input_is_one_clear_error_and_deletes_nothing(args: list[str], message: str) -> None:
    old_history(finished=2)
    with pytest.raises(CommandError, match=message):
        purge(*args)
    assert len(remaining()) == 2


def test_before_zero_means_everything_finished_until_now() -> None:
    old_history(finished=2)
    recent = rows(1, status=SUCCESSFUL, finished_at=ago(seconds=5))
    assert purge("finished", "--before", "0") == "Deleted 3 finished task(s) older than 0 seconds."
    assert not set(recent) & remaining()
