"""After outcomes are written: log retries and failures, and send task_finished."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError

from conveyor import observe
from conveyor.compat import TaskResultStatus, task_finished
from conveyor.failures import first_line, last_line
from conveyor.results import AnyResult, finished_result, has_history, import_task
from conveyor.store import Engine, Written
from conveyor.worker.listeners import heard

logger = logging.getLogger(__name__)

READY, FAILED = TaskResultStatus.READY, TaskResultStatus.FAILED


class Announcer:
    """Tells the world what written outcomes did to their tasks."""

    def __init__(self, store: Engine) -> None:
        self.store = store

    def announce(self, written: list[Written]) -> None:
        """Log every failed attempt; send task_finished for tasks that reached a final
        state."""
        observe.written(written)
        finals = []
        for item in written:
            log_outcome(item)
            if item.status != READY and heard(task_finished, level=finished_level(item)):
                finals.append(item)
        if not finals:
            return  # nothing final, or no one to tell: no result is built
        records = [item.outcome.record for item in finals]
        histories = self.store.histories(r.pk for r in records if has_history(r))
        for item in finals:
            record = item.outcome.record
            try:
                task = import_task(record.task_path)
            except ImportError:
                continue  # nothing to build a result from; the attempt is stored
            result = finished_result(
                record,
                task=task,
                status=item.status,
                finished_at=item.finished_at,
                return_value=item.outcome.return_value,
                error=item.outcome.error,
                history=histories.get(record.pk, []),
            )
            try:
                send_finished(type(task.get_backend()), result, item.outcome.exception)
            except (DatabaseError, InterfaceError):
                raise  # an outage: the caller's thread handles it as any other
            except Exception:
                # The outcome is written; a receiver's bug must not stop the worker's thread
                # (the loop, or maintenance) nor the receivers of the next tasks.
                logger.exception(
                    "A task_finished receiver failed for task id=%s path=%s",
                    record.pk,
                    record.task_path,
                )


def finished_level(item: Written) -> int:
    """The level Django's own receiver logs a finished task at."""
    return logging.ERROR if item.status == FAILED else logging.INFO


def send_finished(sender: type, result: AnyResult, exception: BaseException | None) -> None:
    """Send task_finished; for a failure, from inside an exception handler of its exception.

    Django's contract (and its own logging receiver) has receivers of a failed result read
    the exception from sys.exc_info(), as backends that run the task in the same call do.
    """
    if exception is None or result.status != FAILED:
        task_finished.send(sender, task_result=result)
        return
    try:
        raise exception
    except BaseException:  # noqa: BLE001 - re-raised only to be current while receivers run
        task_finished.send(sender, task_result=result)
    finally:
        exception.__traceback__ = None  # the task's frames are no longer needed


def log_outcome(item: Written) -> None:
    """One line per failed attempt (WARNING with the retry's time, or ERROR when final, with
    the traceback), and per snooze (INFO)."""
    outcome = item.outcome
    if outcome.snooze is not None and item.status == READY:
        logger.info(
            "Task id=%s path=%s attempt=%d snoozed; runs again at %s",
            outcome.record.pk,
            outcome.record.task_path,
            outcome.record.attempt_count,
            item.available_after.isoformat() if item.available_after else "?",
        )
        return
    if outcome.status != FAILED:
        return
    record, error = outcome.record, outcome.error
    kind = error.exception_class_path if error else "unknown error"
    if outcome.exception is not None:
        message = first_line(outcome.exception)
    else:
        message = last_line(error.traceback) if error else ""
    if item.status == READY:
        logger.warning(
            "Task id=%s path=%s attempt=%d failed: %s: %s; retry at %s",
            record.pk,
            record.task_path,
            record.attempt_count,
            kind,
            message,
            item.available_after.isoformat() if item.available_after else "?",
        )
        return
    logger.error(
        "Task id=%s path=%s failed after attempt=%d: %s: %s\n%s",
        record.pk,
        record.task_path,
        record.attempt_count,
        kind,
        message,
        (error.traceback if error else "").rstrip(),
    )
