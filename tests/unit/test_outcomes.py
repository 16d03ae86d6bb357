"""The outcome buffer hands outcomes back to the loop in groups: it wakes the loop for the
first outcome of a batch and for the one that fills it, and the loop takes whole batches."""

from __future__ import annotations

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Outcome
from conveyor.worker.outcomes import OutcomeBuffer


def outcome(pk: int) -> Outcome:
    return Outcome(TaskRecord(pk=pk), TaskResultStatus.SUCCESSFUL)


def test_the_loop_is_woken_by_the_first_outcome_of_a_batch_and_by_the_one_that_fills_it() -> None:
    wakeups: list[int] = []
    buffer = OutcomeBuffer(on_added=lambda: wakeups.append(len(buffer)), batch_size=3)
    for pk in range(1, 5):
        buffer.add(outcome(pk))
    assert wakeups == [1, 3]  # not the second, nor the fourth (past the full batch)
    assert [o.record.pk for o in buffer.take()] == [1, 2, 3, 4]
    buffer.add(outcome(5))
    assert wakeups == [1, 3, 1]  # a new batch wakes the loop again


def test_a_batch_is_taken_when_due_and_not_before() -> None:
    now = [0.0]
    buffer = OutcomeBuffer(on_added=lambda: None, batch_size=10, clock=lambda: now[0])
    buffer.add(outcome(1))
    assert buffer.take() == []
    now[0] += buffer.delay
    assert [o.record.pk for o in buffer.take()] == [1]
