"""The django.tasks face of conveyor: capability flags, validation, enqueue and results."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import router

from conveyor import observe
from conveyor.columns import BACKEND_NAME_MAX_LENGTH, QUEUE_NAME_MAX_LENGTH
from conveyor.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from conveyor.conf import BackendOptions, parse_options
from conveyor.flow import Concurrency, RateLimit, Unique
from conveyor.results import AnyResult, AnyTask, as_duplicate, build_result, make_result
from conveyor.tasks import ConveyorTask

# Django imports a backend's module when it reads TASKS, which may be before the app
# registry is ready (and, when 'conveyor' is missing from INSTALLED_APPS, without it):
# models and the store are imported where they are used, so that check() can say so.
if TYPE_CHECKING:
    from conveyor.policies import TaskPolicies
    from conveyor.store import Engine, NewTask

MAX_RESULT_ID_DIGITS = 19  # a BigAutoField never needs more


class DatabaseBackend(BaseTaskBackend):
    """Store tasks in the project's database, for `manage.py conveyor_worker` to run."""

    # @task(...) passes conveyor's options (max_attempts, timeout, ...) to this class.
    task_class = ConveyorTask

    # run_after is a column the claim compares with the database clock.
    supports_defer = True
    # Coroutine functions run on the worker's event loop.
    supports_async_task = True
    # Results are rows, readable from any process.
    supports_get_result = True
    # priority is part of the claim order.
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if len(alias) > BACKEND_NAME_MAX_LENGTH:
            raise ImproperlyConfigured(
                f"TASKS alias {alias[:20]!r}... is longer than {BACKEND_NAME_MAX_LENGTH} "
                "characters, the most conveyor stores"
            )
        self.config: BackendOptions = parse_options(
            alias, params.get("OPTIONS", {}), frozenset(self.queues)
        )

    @cached_property
    def store(self) -> Engine:
        from django.apps import apps

        if not apps.is_installed("conveyor"):
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}] uses conveyor.backend.DatabaseBackend, "
                "but 'conveyor' is not in INSTALLED_APPS."
            )
        from conveyor.models import TaskRecord
        from conveyor.store import store_for

        return store_for(
            backend_name=self.alias,
            options=self.config,
            using=router.db_for_write(TaskRecord),
            decider=self.policies,
        )

    @cached_property
    def policies(self) -> TaskPolicies:
        """Each task's retry policy and timeout: its own options, its queue's, this backend's."""
        from conveyor.policies import TaskPolicies

        return TaskPolicies(self.config)

    def validate_task(self, task: AnyTask) -> None:
        """Check that this backend can run the task; raise InvalidTask if not."""
        if self.queues and task.queue_name not in self.queues:
            raise InvalidTask(
                f"Queue {task.queue_name!r} is not in TASKS[{self.alias!r}]['QUEUES'] "
                f"({', '.join(sorted(self.queues))})."
            )
        super().validate_task(task)
        if len(task.queue_name) > QUEUE_NAME_MAX_LENGTH:
            raise InvalidTask(
                f"Queue name {task.queue_name[:20]!r}... is longer than "
                f"{QUEUE_NAME_MAX_LENGTH} characters."
            )

    def enqueue[**P, R](
        self, task: Task[P, R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[P, R]:
        """Queue up a task to be executed."""
        new = self.prepare(task, args, kwargs)
        if not controlled(new):
            self.store.insert([new])
            return cast("TaskResult[P, R]", self.announce(task, new))
        (live,) = self.store.insert_controlled([new])
        return cast("TaskResult[P, R]", self.announce_or_duplicate(task, new, live))

    def announce_or_duplicate(self, task: AnyTask, new: NewTask, live: int | None) -> AnyResult:
        """The stored task's result (announced), or the live task's for a duplicate."""
        if live is None:
            return self.announce(task, new)
        return as_duplicate(self.get_result(str(live)))

    def prepare(
        self,
        task: AnyTask,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> NewTask:
        """Validate a task and its arguments into a row to insert; raise before storing."""
        self.validate_task(task)
        return self.new_task(task, args, kwargs, metadata=metadata)

    def new_task(
        self,
        task: AnyTask,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> NewTask:
        """The row of a validated task; raise TypeError if the arguments or the metadata do
        not fit the function's signature or are not JSON."""
        from conveyor.store.values import NewTask

        check_arguments(task, args, kwargs)
        arguments, arguments_json = json_arguments(args, kwargs)
        flow = flow_columns(task, self.config, arguments_json, args, kwargs)
        metadata = observe.enqueued_metadata(task, metadata)
        return NewTask(
            task_path=task.module_path,
            backend_name=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            takes_context=task.takes_context,
            arguments=arguments,
            arguments_json=arguments_json,
            run_after=task.run_after,
            metadata_json=json_metadata(metadata),
            **flow,
        )

    def announce(self, task: AnyTask, record: NewTask) -> AnyResult:
        """Build the result of a stored row and send task_enqueued."""
        result = make_result(record, task=task, errors=[], worker_ids=[])
        observe.enqueued(result)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> AnyResult:
        """Retrieve a task result by id; raise TaskResultDoesNotExist if there is none."""
        from conveyor.models import TaskRecord

        pk = parse_result_id(result_id)
        try:
            record, attempts = self.store.task(pk)
        except TaskRecord.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return build_result(record, attempts)

    async def aget_result(self, result_id: str) -> AnyResult:
        """See get_result()."""
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    def get_results[**P, R](self, task: Task[P, R]) -> Iterator[TaskResult[P, R]]:
        """Every result of one task, newest first."""
        for record, attempts in self.store.tasks_of(task.module_path):
            yield cast("TaskResult[P, R]", build_result(record, attempts, task=task))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report configuration problems of this backend."""
        from django.apps import apps

        if apps.is_installed("conveyor"):
            from conveyor.periodic import schedule_problems

            return [
                checks.Error(
                    problem,
                    hint="Each schedule's 'task' must be a @task of this backend that its "
                    "args and kwargs fit.",
                    id="conveyor.E002",
                )
                for problem in schedule_problems(self)
            ]
        return [
            checks.Error(
                f"TASKS[{self.alias!r}] uses conveyor.backend.DatabaseBackend, "
                "but 'conveyor' is not in INSTALLED_APPS.",
                hint="Add 'conveyor' to INSTALLED_APPS and run migrate.",
                id="conveyor.E001",
            )
        ]


def controlled(new: NewTask) -> bool:
    """Whether a row needs the flow-controlled insert (unique, or concurrency-limited)."""
    return any(key is not None for key in (new.unique_key, new.concurrency_key, new.rate_key))


def flow_columns(
    task: AnyTask,
    config: BackendOptions,
    arguments_json: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """The flow-control columns of one call: its unique key and concurrency slot key."""
    columns: dict[str, Any] = {}
    unique = getattr(task, "unique", None)
    if isinstance(unique, Unique):
        columns["unique_key"] = unique.key_of(task.module_path, arguments_json, args, kwargs)
        columns["unique_keeps"] = unique.keeps()
    concurrency = getattr(task, "concurrency", None)
    if isinstance(concurrency, Concurrency):
        columns["concurrency_key"] = concurrency.key_of(task.module_path, args, kwargs)
        columns["concurrency_limit"] = concurrency.limit
    elif (limit := config.policy(task.queue_name).concurrency) is not None:
        columns["concurrency_key"] = f"queue:{task.queue_name}"
        columns["concurrency_limit"] = limit
    rate = getattr(task, "rate_limit", None)
    if isinstance(rate, RateLimit):
        columns["rate_key"] = rate.key_of(task.module_path, args, kwargs)
        columns["rate_limit"] = rate.limit
        columns["rate_period_ms"] = max(1, round(rate.period.total_seconds() * 1000))
    return columns


def check_arguments(task: AnyTask, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise TypeError when the task's function could not be called with these arguments, as
    the call on the worker would, naming the task: a wrong call is refused before it is
    stored, not failed on a worker later."""
    signature, shown = signature_of(task.func)
    context = (None,) if task.takes_context else ()
    try:
        signature.bind(*context, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{task.module_path}{shown}: {exc}") from None


@lru_cache(maxsize=1024)
def signature_of(func: Callable[..., Any]) -> tuple[inspect.Signature, str]:
    """A function's signature, and its parameters as an error shows them (no annotations)."""
    signature = inspect.signature(func)
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    return signature, str(bare)


def json_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """{"args", "kwargs"} as JSON values, and as JSON text; raise TypeError naming what
    cannot be stored."""
    try:
        arguments = {"args": normalize_json(args), "kwargs": normalize_json(kwargs)}
        text = json.dumps(arguments, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Task arguments must be JSON-serialisable: {exc}") from exc
    return arguments, text


def json_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """Metadata as JSON text (None when there is none); raise TypeError naming what cannot
    be stored."""
    if not metadata:
        return None
    if not all(isinstance(key, str) for key in metadata):
        raise TypeError("Task metadata keys must be strings")
    try:
        return json.dumps(normalize_json(dict(metadata)), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Task metadata must be JSON-serialisable: {exc}") from exc


def parse_result_id(result_id: object) -> int:
    """The primary key a result id names; raise TaskResultDoesNotExist if it names none."""
    text = str(result_id)
    if not text.isascii() or not text.isdigit() or len(text) > MAX_RESULT_ID_DIGITS:
        raise TaskResultDoesNotExist(result_id)
    return int(text)


__all__ = ["DatabaseBackend", "TaskResultStatus"]
