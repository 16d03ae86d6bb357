"""Operator actions on stored tasks: retry, run now, cancel.

Each is a compare-and-set on the task row, like every other state change of the store: it
states the status it expects, locks the rows that still have it, changes them, and reports
which ids it changed and which it refused. A worker claiming at the same moment either wins
(the action is refused for that row) or finds the row changed; never both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import Q
from django.db.models.functions import Now

from conveyor.exceptions import TaskCancelled
from conveyor.models import WORKER_ID_MAX_LENGTH, Attempt, Error
from conveyor.store.base import FAILED, READY, TaskStore

logger = logging.getLogger(__name__)

# Rows changed per transaction: a large selection never holds many locks for long.
ACTION_BATCH_SIZE = 500
# The new column values of a changed row, given the database's time of the change. A time
# that the claim compares with the clock is written as Now(): SQLite then stores it in the
# claim's own format (a Python datetime gets more digits and would compare as later).
Change = Callable[[datetime], dict[str, Any]]
CANCELLED_PATH = f"{TaskCancelled.__module__}.{TaskCancelled.__qualname__}"


@dataclass(frozen=True, slots=True)
class Applied:
    """What an action did: the ids it changed, and the ids it refused (wrong state or gone)."""

    changed: tuple[int, ...]
    refused: tuple[int, ...]


def retry(store: TaskStore, ids: Iterable[int]) -> Applied:
    """Make FAILED tasks READY now, with a fresh attempt budget; keep their attempts.

    The retry policy counts `attempt_count` against max_attempts, so it starts again from
    zero. The Attempt rows stay: the result keeps its errors and worker ids, and the next
    run's TaskContext.attempt continues the count.
    """
    applied = _apply(
        store,
        ids,
        expected=Q(status=FAILED),
        change=lambda now: {
            "status": READY,
            "attempt_count": 0,
            "available_after": Now(),
            "finished_at": None,
            "return_value": None,
            "worker_id": "",
        },
    )
    _wake(store, applied)
    _log("retried", store, applied)
    return applied


def run_now(store: TaskStore, ids: Iterable[int]) -> Applied:
    """Make READY tasks that are not due yet (deferred, or backing off) available now."""
    applied = _apply(
        store,
        ids,
        expected=Q(status=READY, available_after__gt=Now()),
        change=lambda now: {"available_after": Now()},
    )
    _wake(store, applied)
    _log("made available now", store, applied)
    return applied


def cancel(store: TaskStore, ids: Iterable[int], *, cancelled_by: str) -> Applied:
    """End READY tasks as FAILED with TaskCancelled, so no worker ever claims them.

    The cancellation is recorded as one zero-length FAILED attempt by `cancelled_by` whose
    error is TaskCancelled: the result's errors say why the task failed, as they do for
    every other failure.
    """
    applied = _apply(
        store,
        ids,
        expected=Q(status=READY),
        change=lambda now: {"status": FAILED, "finished_at": now, "worker_id": ""},
        then=lambda changed, now: _record_cancellations(store, changed, now, cancelled_by),
    )
    _log("cancelled", store, applied, by=cancelled_by)
    return applied


def _apply(
    store: TaskStore,
    ids: Iterable[int],
    *,
    expected: Q,
    change: Change,
    then: Callable[[list[int], datetime], None] | None = None,
) -> Applied:
    wanted = sorted(set(ids))
    changed: list[int] = []
    for start in range(0, len(wanted), ACTION_BATCH_SIZE):
        batch = wanted[start : start + ACTION_BATCH_SIZE]
        changed += store.retrying(partial(_apply_batch, store, batch, expected, change, then))
    done = set(changed)
    return Applied(tuple(changed), tuple(pk for pk in wanted if pk not in done))


def _apply_batch(
    store: TaskStore,
    ids: list[int],
    expected: Q,
    change: Change,
    then: Callable[[list[int], datetime], None] | None,
) -> list[int]:
    with store.write_transaction():
        # Lock the rows that still match, in primary-key order like every other writer; a row
        # a worker is claiming is re-read after its claim commits, and no longer matches.
        rows = list(
            store.tasks.filter(expected, pk__in=ids)
            .select_for_update()
            .order_by("pk")
            .annotate(now=Now())
            .values_list("pk", "now")
        )
        if not rows:
            return []
        matching, now = [pk for pk, _ in rows], rows[0][1]
        store.tasks.filter(expected, pk__in=matching).update(**change(now))
        if then is not None:
            then(matching, now)
    return matching


def _record_cancellations(
    store: TaskStore, ids: Sequence[int], now: datetime, cancelled_by: str
) -> None:
    actor = f"cancelled by {cancelled_by}"[:WORKER_ID_MAX_LENGTH]
    attempts = Attempt.objects.using(store.using).bulk_create(
        Attempt(task_id=pk, worker_id=actor, started_at=now, stopped_at=now, status=FAILED)
        for pk in ids
    )
    message = f"{CANCELLED_PATH}: {TaskCancelled.__doc__} (cancelled by {cancelled_by})\n"
    Error.objects.using(store.using).bulk_create(
        Error(attempt=attempt, exception_class_path=CANCELLED_PATH, traceback=message)
        for attempt in attempts
    )


def _wake(store: TaskStore, applied: Applied) -> None:
    if applied.changed:
        store.wake_workers()


def _log(what: str, store: TaskStore, applied: Applied, *, by: str = "") -> None:
    for pk in applied.changed:
        logger.info(
            "Task id=%s %s backend=%s%s", pk, what, store.backend_name, f" by={by}" if by else ""
        )
