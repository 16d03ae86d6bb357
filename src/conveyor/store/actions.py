"""Operator actions on stored tasks: retry, run now, cancel, delete.

Each is a compare-and-set on the task row, like every other state change of the store: it
states the status it expects, locks the rows that still have it, changes them, and reports
which ids it changed and which it refused. A worker claiming at the same moment either wins
(the action is refused for that row) or finds the row changed; never both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import Case, F, Q, When
from django.db.models.functions import Now

from conveyor.columns import HOLD_NONE, WORKER_ID_MAX_LENGTH
from conveyor.exceptions import TaskCancelled
from conveyor.failures import error_from_message
from conveyor.models import Attempt, Error
from conveyor.store.flow import FlowControl
from conveyor.store.transitions import FAILED, READY, RUNNING
from conveyor.store.values import Applied

logger = logging.getLogger(__name__)

# Rows changed per transaction: a large selection never holds many locks for long.
ACTION_BATCH_SIZE = 500
# The new column values of a changed row, given the database's time of the change. A time
# that the claim compares with the clock is written as Now(): SQLite then stores it in the
# claim's own format (a Python datetime gets more digits and would compare as later).
Change = Callable[[datetime], dict[str, Any]]
# What else a change writes, given the ids it changed and the time.
Then = Callable[[list[int], datetime], None]


class Actions(FlowControl):
    def retry(self, ids: Iterable[int]) -> Applied:
        # The retry policy counts attempt_count against max_attempts, so it starts again from
        # zero. The Attempt rows stay: the result keeps its errors and worker ids.
        applied = self._apply(
            ids,
            expected=Q(status=FAILED),
            change=lambda now: {
                "status": READY,
                "attempt_count": 0,
                "snoozes": 0,
                "cancel_requested_by": "",
                "available_after": Now(),
                "hold": HOLD_NONE,
                "finished_at": None,
                "return_value": None,
                "worker_id": "",
            },
        )
        return self._report("retried", applied, wake=True)

    def run_now(self, ids: Iterable[int]) -> Applied:
        applied = self._apply(
            ids,
            expected=Q(status=READY, available_after__gt=Now()),
            change=lambda now: {"available_after": Now(), "hold": HOLD_NONE},
        )
        return self._report("made available now", applied, wake=True)

    def cancel(self, ids: Iterable[int], *, cancelled_by: str) -> Applied:
        # Recorded as one zero-length FAILED attempt by `cancelled_by` whose error is
        # TaskCancelled: the result's errors say why it failed, as for every other failure.
        wanted = list(ids)
        keys = self._concurrency_keys(wanted)
        applied = self._apply(
            wanted,
            expected=Q(status=READY),
            change=lambda now: {
                "status": FAILED,
                "finished_at": now,
                "worker_id": "",
                "hold": HOLD_NONE,
                # A unique key stays only where the task keeps it when FAILED (bit 2).
                "unique_key": Case(
                    When(unique_keeps__in=(2, 3), then=F("unique_key")), default=None
                ),
            },
            then=partial(self._record_cancellations, cancelled_by=cancelled_by),
        )
        self.promote(keys)
        return self._report("cancelled", applied, by=cancelled_by)

    def request_cancel(self, ids: Iterable[int], *, requested_by: str) -> Applied:
        # The worker holding the task stops it (it reads the request with its heartbeat, or
        # at once where notify_cancel() reaches it); the finish of its attempt ends the task.
        actor = requested_by[:WORKER_ID_MAX_LENGTH]
        applied = self._apply(
            ids,
            expected=Q(status=RUNNING),
            change=lambda now: {"cancel_requested_by": actor},
        )
        if applied.changed:
            self.notify_cancel()
        return self._report("cancel requested", applied, by=requested_by)

    def notify_cancel(self) -> None:
        """Tell workers at once that a cancel was requested, where the database can (see
        the PostgreSQL engine); elsewhere they read requests with their heartbeat."""

    def cancel_requests(self, worker_id: str) -> dict[int, str]:
        requested = (
            self.task_rows()
            .running()
            .filter(worker_id=worker_id)
            .exclude(cancel_requested_by="")
            .values_list("pk", "cancel_requested_by")
        )
        return dict(self.retrying(lambda: list(requested)))

    def delete(self, ids: Iterable[int]) -> Applied:
        # A RUNNING task is left to its worker, which would otherwise write to a gone row.
        wanted = list(ids)
        keys = self._concurrency_keys(wanted)
        applied = self._apply(wanted, expected=~Q(status=RUNNING), change=None)
        self.promote(keys)
        return self._report("deleted", applied)

    def _concurrency_keys(self, ids: list[int]) -> set[str]:
        """The concurrency keys among these tasks: their slots may free."""
        rows = self.task_rows().filter(pk__in=ids, concurrency_key__isnull=False)
        keys = rows.order_by().values_list("concurrency_key", flat=True).distinct()
        return {key for key in keys if key is not None}

    def _apply(
        self,
        ids: Iterable[int],
        *,
        expected: Q,
        change: Change | None,
        then: Then | None = None,
    ) -> Applied:
        wanted = sorted(set(ids))
        changed: list[int] = []
        for start in range(0, len(wanted), ACTION_BATCH_SIZE):
            batch = wanted[start : start + ACTION_BATCH_SIZE]
            changed += self.retrying(partial(self._apply_batch, batch, expected, change, then))
        done = set(changed)
        return Applied(tuple(changed), tuple(pk for pk in wanted if pk not in done))

    def _apply_batch(
        self, ids: list[int], expected: Q, change: Change | None, then: Then | None
    ) -> list[int]:
        """Change (or, without a change, delete) the rows among ids that match `expected`."""
        with self.write_transaction():
            # Lock the rows that still match, in primary-key order like every other writer; a
            # row a worker is claiming is re-read after its claim commits, and no longer
            # matches.
            rows = list(
                self.task_rows()
                .filter(expected, pk__in=ids)
                .select_for_update()
                .order_by("pk")
                .annotate(now=Now())
                .values_list("pk", "now")
            )
            if not rows:
                return []
            matching, now = [pk for pk, _ in rows], rows[0][1]
            selected = self.task_rows().filter(expected, pk__in=matching)
            if change is None:
                selected.delete()
            else:
                selected.update(**change(now))
            if then is not None:
                then(matching, now)
        return matching

    def _record_cancellations(
        self, ids: Sequence[int], now: datetime, *, cancelled_by: str
    ) -> None:
        actor = f"cancelled by {cancelled_by}"[:WORKER_ID_MAX_LENGTH]
        attempts = Attempt.objects.using(self.using).bulk_create(
            Attempt(task_id=pk, worker_id=actor, started_at=now, stopped_at=now, status=FAILED)
            for pk in ids
        )
        error = error_from_message(
            TaskCancelled, f"{TaskCancelled.__doc__} (cancelled by {cancelled_by})"
        )
        Error.objects.using(self.using).bulk_create(
            Error(
                attempt=attempt,
                exception_class_path=error.exception_class_path,
                traceback=error.traceback,
            )
            for attempt in attempts
        )

    def _report(self, what: str, applied: Applied, *, by: str = "", wake: bool = False) -> Applied:
        if wake and applied.changed:
            self.wake_workers()
        for pk in applied.changed:
            logger.info(
                "Task id=%s %s backend=%s%s", pk, what, self.backend_name, f" by={by}" if by else ""
            )
        return applied
