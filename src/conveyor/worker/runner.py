"""Run one claimed task and report how it ended; never let the task's failure escape."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from conveyor import control, observe
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus, normalize_json, task_started
from conveyor.context import ConveyorTaskContext, MetadataWriter, as_json
from conveyor.exceptions import MalformedTask, Snooze, TaskTimeout
from conveyor.failures import error_from_exception, error_from_message
from conveyor.models import Attempt, TaskRecord
from conveyor.results import AnyResult, AnyTask, build_result, import_task, stored_task
from conveyor.store import Outcome
from conveyor.worker.listeners import heard

logger = logging.getLogger(__name__)


class Prepared:
    """A claimed task ready to call: its Task, arguments and current result."""

    __slots__ = ("_result", "args", "context", "history", "kwargs", "record", "task")

    def __init__(self, record: TaskRecord, history: Sequence[Attempt]) -> None:
        self.record = record
        self.history = history
        self.task: AnyTask = stored_task(record)
        self.args, self.kwargs = stored_arguments(record)
        self._result: AnyResult | None = None
        self.context: ConveyorTaskContext | None = None

    @property
    def result(self) -> AnyResult:
        """The task's current result, built when first asked for: a no-op task whose
        signals no one hears never needs one."""
        if self._result is None:
            self._result = build_result(self.record, self.history, task=self.task)
        return self._result

    def result_if_buildable(self) -> AnyResult | None:
        """The result for an outcome that carries it; None if the row cannot give one."""
        try:
            return self.result
        except Exception:  # noqa: BLE001 - the outcome is recorded without it
            return None

    def call_arguments(self) -> tuple[list[Any], dict[str, Any]]:
        if self.record.takes_context:
            self.context = self.make_context()
            return [self.context, *self.args], self.kwargs
        return self.args, self.kwargs

    def make_context(self) -> ConveyorTaskContext:
        """The task's context, with the metadata the claim read and a writer for it."""
        record = self.record
        metadata = record.metadata if isinstance(record.metadata, dict) else {}
        writer = None
        backend = self.task.get_backend()
        if isinstance(backend, DatabaseBackend):
            holder = (record.worker_id, record.attempt_count)
            writer = MetadataWriter(backend.store, record.pk, holder)
            writer.saved = {key: as_json(key, value) for key, value in metadata.items()}
        return ConveyorTaskContext(task_result=self.result, metadata=dict(metadata), writer=writer)

    def save_metadata(self) -> None:
        """Save what the task left unsaved in its metadata, as its attempt ends."""
        if self.context is None:
            return
        try:
            self.context.save_metadata()
        except Exception:
            logger.exception("Task id=%s metadata not saved as the attempt ended", self.record.pk)

    def started(self) -> None:
        if heard(task_started):
            task_started.send(type(self.task.get_backend()), task_result=self.result)

    async def astarted(self) -> None:
        # Receivers may use the ORM: asend runs sync receivers in a thread.
        if heard(task_started):
            await task_started.asend(type(self.task.get_backend()), task_result=self.result)

    def succeeded(self, value: Any) -> Outcome:
        value = normalize_json(value)
        json.dumps(value, allow_nan=False)  # what the database would refuse, refused here
        return Outcome(self.record, TaskResultStatus.SUCCESSFUL, return_value=value)


def run_sync(
    record: TaskRecord, history: Sequence[Attempt], *, cancel_flag: threading.Event | None = None
) -> Outcome:
    """Run a claimed task in this thread; `cancel_flag` is what conveyor.cancel_requested()
    reads in it."""
    prepared: Prepared | None = None
    with observe.attempt(record) as observed:
        try:
            prepared = Prepared(record, history)
            prepared.started()
            args, kwargs = prepared.call_arguments()
            with control.running(cancel_flag):
                value = prepared.task.call(*args, **kwargs)
            outcome = prepared.succeeded(value)
        except Snooze as snooze:
            outcome = snoozed(record, snooze, prepared)
        except BaseException as exc:  # noqa: BLE001 - every failure of a task is recorded, none escapes
            outcome = failed(record, exc, prepared)
        try:
            if prepared is not None:
                prepared.save_metadata()
        finally:
            close_old_connections()
        return observed.ended(outcome)


async def run_async(
    record: TaskRecord,
    history: Sequence[Attempt],
    *,
    timeout: float | None = None,
    cancel_flag: threading.Event | None = None,
) -> Outcome:
    """Run a claimed coroutine task on this thread's event loop, cancelled at `timeout`
    seconds (then failed with TaskTimeout)."""
    prepared: Prepared | None = None
    with observe.attempt(record) as observed:
        try:
            prepared = Prepared(record, history)
            await prepared.astarted()
            args, kwargs = prepared.call_arguments()
            outcome = prepared.succeeded(
                await call_within(prepared, args, kwargs, timeout=timeout, flag=cancel_flag)
            )
        except Snooze as snooze:
            outcome = snoozed(record, snooze, prepared)
        except BaseException as exc:  # noqa: BLE001 - as in run_sync
            outcome = failed(record, exc, prepared)
        if prepared is not None and prepared.context is not None:
            await sync_to_async(prepared.save_metadata, thread_sensitive=False)()
        return observed.ended(outcome)


async def call_within(
    prepared: Prepared,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    timeout: float | None,
    flag: threading.Event | None,
) -> Any:
    """Await the task's coroutine, cancelled at `timeout` seconds (then TaskTimeout)."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            with control.running(flag):
                return await prepared.task.acall(*args, **kwargs)
    except TimeoutError as exc:
        if not deadline.expired():
            raise  # the task's own TimeoutError
        raise TaskTimeout(timeout_message(timeout or 0)) from exc


def snoozed(record: TaskRecord, snooze: Snooze, prepared: Prepared | None) -> Outcome:
    """The task asked to run again after a delay: not a failure."""
    return Outcome(
        record,
        TaskResultStatus.READY,
        snooze=snooze.delay,
        result=None if prepared is None else prepared.result_if_buildable(),
    )


def timeout_message(seconds: float) -> str:
    return f"The task ran longer than its timeout of {seconds:g}s"


def timed_out(record: TaskRecord, seconds: float) -> Outcome:
    """The outcome recorded at the deadline of a sync task that is still running."""
    message = timeout_message(seconds)
    return Outcome(
        record,
        TaskResultStatus.FAILED,
        error=error_from_message(TaskTimeout, message),
        exception=TaskTimeout(message),
    )


def is_async(record: TaskRecord) -> bool:
    """Whether the task is a coroutine function (False if it cannot even be imported)."""
    try:
        return iscoroutinefunction(import_task(record.task_path).func)
    except ImportError:
        return False


def stored_arguments(record: TaskRecord) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs of a row; raise MalformedTask if the row does not hold them."""
    arguments = record.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise MalformedTask(f"Task id={record.pk} arguments are not valid JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise MalformedTask(f"Task id={record.pk} arguments must be a JSON object")
    args, kwargs = arguments.get("args", []), arguments.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise MalformedTask(
            f"Task id={record.pk} arguments must be {{'args': [...], 'kwargs': {{...}}}}"
        )
    return args, kwargs


def failed(record: TaskRecord, exc: BaseException, prepared: Prepared | None = None) -> Outcome:
    return Outcome(
        record,
        TaskResultStatus.FAILED,
        error=error_from_exception(exc),
        exception=exc,
        result=None if prepared is None else prepared.result_if_buildable(),
    )
