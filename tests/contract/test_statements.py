"""Statements per task stay few, and do not grow with the size of a batch."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Outcome, Written
from tests.factories import ALL_QUEUES, claim_all
from tests.tasksapp.tasks import noop

pytestmark = pytest.mark.django_db(transaction=True)


def count(action: object) -> int:
    with CaptureQueriesContext(connection) as queries:
        action()  # type: ignore[operator]
    return len(queries)


def test_enqueue_is_one_statement() -> None:
    assert count(noop.enqueue) == 1


def test_bulk_enqueue_is_one_insert_per_thousand_rows() -> None:
    statements = count(lambda: enqueue_many(noop, [((), {})] * 2500))
    assert statements == 1 + 3 + 1  # BEGIN, three INSERTs, COMMIT


@pytest.mark.parametrize("size", [1, 50])
def test_claim_and_finish_cost_the_same_for_one_task_or_fifty(
    backend: DatabaseBackend, size: int
) -> None:
    enqueue_many(noop, [((), {})] * size)
    claimed: list[TaskRecord] = []
    # Claims reuse the paused queues read within the last second: count the steady state.
    backend.store.next_available_at(ALL_QUEUES)
    claim_statements = count(lambda: claimed.extend(claim_all(backend.store, "w", limit=size)))
    assert len(claimed) == size
    outcomes = [Outcome(r, TaskResultStatus.SUCCESSFUL) for r in claimed]
    finish_statements = count(lambda: backend.store.finish(worker_id="w", outcomes=outcomes))
    expected = {  # round trips, BEGIN and COMMIT included
        # one query string (staging, then UPDATE ... RETURNING); one statement that fences,
        # updates and inserts attempts
        "postgresql": (1, 1),
        # staging and UPDATE ... RETURNING in an immediate transaction; fence, UPDATE, INSERT
        "sqlite": (4, 5),
        # staging, SELECT ... FOR UPDATE SKIP LOCKED and UPDATE; fence, UPDATE, INSERT
        "mysql": (5, 5),
    }[connection.vendor]
    assert (claim_statements, finish_statements) == expected


@pytest.mark.parametrize("size", [1, 50])
def test_a_worker_s_finish_and_next_claim_are_one_round_trip_on_postgresql(
    backend: DatabaseBackend, size: int
) -> None:
    enqueue_many(noop, [((), {})] * (2 * size))
    backend.store.next_available_at(ALL_QUEUES)  # the paused queues' read, as above
    outcomes = [
        Outcome(r, TaskResultStatus.SUCCESSFUL) for r in claim_all(backend.store, "w", size)
    ]
    found: list[tuple[list[Written], list[TaskRecord]]] = []
    statements = count(
        lambda: found.append(
            backend.store.finish_and_claim(
                worker_id="w", outcomes=outcomes, queues=ALL_QUEUES, limit=size
            )
        )
    )
    ((written, claimed),) = found
    assert (len(written), len(claimed)) == (size, size)
    # Elsewhere the finish's statements, then the claim's (see the test above).
    assert statements == {"postgresql": 1, "sqlite": 9, "mysql": 10}[connection.vendor]
