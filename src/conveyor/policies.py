"""Each task's retry policy and timeout: its own @task options, then its queue's OPTIONS,
then the backend's.

The backend hands `TaskPolicies` to its store engine as the engine's `decider`: the store
decides every failed attempt through it (a worker's outcome, an interrupted task, recovery's
WorkerLost) without importing tasks itself.
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from conveyor.compat import TaskError, TaskResultStatus
from conveyor.conf import BackendOptions, RetryPolicy
from conveyor.exceptions import ConveyorError, RetryPolicyError, TaskCancelled
from conveyor.failures import class_path, last_line
from conveyor.results import AnyResult, AnyTask, build_result, import_task
from conveyor.tasks import ConveyorTask

if TYPE_CHECKING:
    from conveyor.models import TaskRecord
    from conveyor.store.values import Decision, Outcome

logger = logging.getLogger(__name__)

# Failures no policy retries: the operator asked for the task to stop.
FINAL_ERRORS = frozenset({class_path(TaskCancelled)})


class TaskPolicies:
    """The retry decisions and timeouts of one backend's tasks."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    def queue(self, record: TaskRecord) -> RetryPolicy:
        return self.options.policy(record.queue_name)

    def timeout(self, record: TaskRecord) -> timedelta | None:
        """How long one attempt of the task may run (None: as long as it takes)."""
        own = task_option(record.task_path, "timeout")
        return own if own is not None else self.queue(record).timeout

    def max_attempts(self, record: TaskRecord) -> int:
        own = task_option(record.task_path, "max_attempts")
        return own if own is not None else self.queue(record).max_attempts

    def __call__(self, outcome: Outcome) -> Decision:
        """Decide a failed attempt: retried after a delay, or final."""
        from conveyor.store.values import Decision

        record = outcome.record
        if outcome.error is not None and outcome.error.exception_class_path in FINAL_ERRORS:
            return Decision(None)
        failures = record.attempt_count - record.snoozes  # a snooze is not a failure
        if failures >= self.max_attempts(record):
            return Decision(None)
        backoff = task_option(record.task_path, "backoff") or self.queue(record).backoff
        if backoff is None:
            return Decision(timedelta(seconds=self.queue(record).backoff_factor ** failures))
        try:
            answer = backoff(exception_of(outcome), failed_result(outcome))
            return Decision(as_delay(answer))
        except BaseException as exc:  # noqa: BLE001 - a policy's failure ends the task, not the worker
            return Decision(None, error=policy_error(outcome, backoff, exc))


def task_option(task_path: str, name: str) -> Any:
    """A conveyor option of a task (None: not set, or the task no longer imports)."""
    try:
        task = import_task(task_path)
    except ImportError:
        return None
    return getattr(task, name) if isinstance(task, ConveyorTask) else None


def exception_of(outcome: Outcome) -> BaseException:
    """The exception that ended the attempt (rebuilt as a ConveyorError from the stored
    error when it was not seen in this process)."""
    if outcome.exception is not None:
        return outcome.exception
    error = outcome.error
    return ConveyorError(last_line(error.traceback) if error else None)


def failed_result(outcome: Outcome) -> AnyResult:
    """The task's result as the failed attempt leaves it: FAILED, its error last."""
    result: AnyResult | None = outcome.result
    if result is None:
        task: AnyTask = import_task(outcome.record.task_path)
        result = build_result(outcome.record, outcome.history or [], task=task)
    errors = [*result.errors, outcome.error] if outcome.error else list(result.errors)
    return replace(result, status=TaskResultStatus.FAILED, errors=errors)


def as_delay(answer: object) -> timedelta | None:
    """A back-off's answer as a delay; raise ValueError for anything but a number of
    seconds >= 0, a timedelta >= 0, or None."""
    if answer is None:
        return None
    if isinstance(answer, timedelta):
        seconds = answer.total_seconds()
    elif isinstance(answer, int | float) and not isinstance(answer, bool):
        seconds = float(answer)
    else:
        raise ValueError(f"returned {answer!r}; expected seconds, a timedelta or None")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"returned {answer!r}; a delay must be finite and >= 0")
    return timedelta(seconds=seconds)


def policy_error(outcome: Outcome, backoff: Any, exc: BaseException) -> TaskError:
    """The error recorded for an attempt whose back-off failed: the task's own error, then
    the policy's, last line RetryPolicyError naming both."""
    name = getattr(backoff, "__qualname__", repr(backoff))
    failed_with = last_line(outcome.error.traceback) if outcome.error else "an unknown error"
    message = (
        f"backoff {name} of task {outcome.record.task_path} failed: {type(exc).__name__}: "
        f"{exc}; the attempt had failed with {failed_with}"
    )
    logger.error("Task id=%s %s", outcome.record.pk, message)
    own = outcome.error.traceback if outcome.error else ""
    text = (
        f"{own}\nThe retry policy failed while deciding the retry:\n\n"
        f"{''.join(traceback.format_exception(exc))}\n"
        f"{class_path(RetryPolicyError)}: {message}\n"
    )
    return TaskError(exception_class_path=class_path(RetryPolicyError), traceback=text)
