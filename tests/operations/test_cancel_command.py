"""manage.py conveyor_cancel on every database: what happened to each id."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from tests.factories import claim_all, enqueue
from tests.operations.helpers import succeed_once

pytestmark = pytest.mark.django_db


def cancel(*args: str) -> str:
    out = StringIO()
    call_command("conveyor_cancel", *args, stdout=out)
    return out.getvalue().strip()


def test_each_id_says_whether_it_was_cancelled_requested_or_finished(
    backend: DatabaseBackend,
) -> None:
    done = succeed_once(backend.store)
    running = enqueue()
    claim_all(backend.store, "w1")
    ready = enqueue()
    assert cancel(str(ready.pk), str(running.pk), str(done.pk)).splitlines() == sorted(
        [
            f"Task {ready.pk}: cancelled",
            f"Task {running.pk}: cancel requested",
            f"Task {done.pk}: already finished",
        ],
        key=lambda line: int(line.split()[1].rstrip(":")),
    )
    assert TaskRecord.objects.get(pk=ready.pk).status == TaskResultStatus.FAILED
    assert backend.store.cancel_requests("w1") == {running.pk: running_requester()}


def running_requester() -> str:
    (requested_by,) = TaskRecord.objects.exclude(cancel_requested_by="").values_list(
        "cancel_requested_by", flat=True
    )
    assert requested_by.startswith("command:")
    return requested_by


def test_an_unknown_id_is_an_error_after_the_others_are_cancelled() -> None:
    ready = enqueue()
    with pytest.raises(CommandError, match="No task with id 999999"):
        cancel(str(ready.pk), "999999")
    assert TaskRecord.objects.get(pk=ready.pk).status == TaskResultStatus.FAILED


def test_a_malformed_id_is_refused() -> None:
    with pytest.raises(CommandError, match="expected a result id"):
        cancel("abc")
