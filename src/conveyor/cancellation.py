"""Cancel tasks: a READY task ends at once; a RUNNING one is stopped by its worker.

    import conveyor

    answer = conveyor.cancel(result.id)  # CancelAnswer.CANCELLED, .REQUESTED or .FINISHED

A RUNNING task's worker learns of the request within a second on PostgreSQL (NOTIFY) and
within a heartbeat interval elsewhere; a coroutine gets CancelledError, a sync task's
conveyor.cancel_requested() turns true (and in the process isolation mode its child process
is killed). The task then ends FAILED with TaskCancelled and is never retried, unless its
attempt succeeded first: then the success stands, and the history says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from conveyor.compat import TaskResultDoesNotExist, TaskResultStatus
from conveyor.store import Engine

# A task that is claimed (or retried) between the two steps of a cancel is looked at again,
# this often at most.
CANCEL_TRIES = 3


class CancelAnswer(StrEnum):
    """What conveyor.cancel() did."""

    CANCELLED = "cancelled"  # it was READY: now FAILED with TaskCancelled
    REQUESTED = "cancel requested"  # it was RUNNING: its worker stops it
    FINISHED = "already finished"  # it had ended: nothing changed


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What cancel_tasks() did, by task id."""

    cancelled: tuple[int, ...]
    requested: tuple[int, ...]
    refused: tuple[int, ...]  # finished (or gone)


def cancel_tasks(store: Engine, ids: Iterable[int], *, by: str) -> Cancelled:
    """Cancel READY tasks now and ask the workers of RUNNING ones to stop them."""
    wanted = sorted(set(ids))
    cancelled: list[int] = []
    requested: list[int] = []
    for _ in range(CANCEL_TRIES):
        now = store.cancel(wanted, cancelled_by=by)
        cancelled += now.changed
        asked = store.request_cancel(now.refused, requested_by=by)
        requested += asked.changed
        # Refused by both: finished, gone, or READY again (a retry came in between).
        wanted = list(asked.refused)
        if not wanted or not any(status_of(store, pk) == TaskResultStatus.READY for pk in wanted):
            break
    return Cancelled(tuple(cancelled), tuple(requested), tuple(wanted))


def status_of(store: Engine, pk: int) -> str | None:
    from conveyor.models import TaskRecord

    try:
        record, _ = store.task(pk)
    except TaskRecord.DoesNotExist:
        return None
    return record.status


def cancel(
    result_id: str, *, backend: str = "default", by: str = "conveyor.cancel"
) -> CancelAnswer:
    """Cancel one task by its result id; raise TaskResultDoesNotExist if there is none."""
    from conveyor.backend import parse_result_id
    from conveyor.backends import conveyor_backend

    store = conveyor_backend(backend).store
    pk = parse_result_id(result_id)
    done = cancel_tasks(store, [pk], by=by)
    if done.cancelled:
        return CancelAnswer.CANCELLED
    if done.requested:
        return CancelAnswer.REQUESTED
    if status_of(store, pk) is None:
        raise TaskResultDoesNotExist(result_id)
    return CancelAnswer.FINISHED
