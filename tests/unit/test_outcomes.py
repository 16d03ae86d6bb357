"""The outcome buffer: every outcome wakes the loop (its task's slot is free to claim into),
and the loop writes whole batches, when due."""

from __future__ import annotations

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Outcome
from conveyor.worker.outcomes import OutcomeBuffer


def outcome(pk: int) -> Outcome:
    return Outcome(TaskRecord(pk=pk), TaskResultStatus.SUCCESSFUL)


def test_every_outcome_wakes_the_loop_as_its_slot_is_free_again() -> None:
    # Waking only for the first outcome of a batch left a one-slot worker idle until the
    # batch was due: a fifth of its drain rate.
    wakeups: list[int] = []
    buffer = OutcomeBuffer(on_added=lambda: wakeups.append(len(buffer)), batch_size=3)
    for pk in range(1, 5):
        buffer.add(outcome(pk))
    assert wakeups == [1, 2, 3, 4]
    assert [o.record.pk for o in buffer.take()] == [1, 2, 3, 4]


def test_a_batch_is_taken_when_due_and_not_before() -> None:
    now = [0.0]
    buffer = OutcomeBuffer(on_added=lambda: None, batch_size=10, clock=lambda: now[0])
    buffer.add(outcome(1))
    assert buffer.take() == []
    now[0] += buffer.delay
    assert [o.record.pk for o in buffer.take()] == [1]
