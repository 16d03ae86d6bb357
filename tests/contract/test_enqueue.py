"""The django.tasks face: enqueue, results, validation, transactions, signals."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from conveyor import enqueue_many
from conveyor.backend import DatabaseBackend
from conveyor.compat import InvalidTask, TaskResultDoesNotExist, TaskResultStatus, task_enqueued
from conveyor.models import TaskRecord
from tests.tasksapp.tasks import add, async_add, echo, low, noop, record

pytestmark = pytest.mark.django_db


def test_capabilities_are_all_supported(backend: DatabaseBackend) -> None:
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task


def test_enqueue_stores_a_ready_row_and_returns_its_result() -> None:
    result = add.using(priority=7).enqueue(1, b=2)
    row = TaskRecord.objects.get(pk=result.id)
    assert result.id == str(row.pk)
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([1], {"b": 2})
    assert result.enqueued_at == row.enqueued_at
    assert result.enqueued_at is not None
    assert abs(result.enqueued_at - timezone.now()) < timedelta(minutes=1)
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None, None, None)
    assert (result.errors, result.worker_ids, result.attempts) == ([], [], 0)
    assert row.task_path == "tests.tasksapp.tasks.add"
    assert (row.priority, row.queue_name, row.backend_name) == (7, "default", "default")
    assert row.available_after == row.enqueued_at
    assert row.arguments == {"args": [1], "kwargs": {"b": 2}}


def test_get_result_reads_the_row_from_any_caller() -> None:
    result = echo.enqueue("x", n=1)
    fetched = add.get_backend().get_result(result.id)
    assert fetched.id == result.id
    assert fetched.task.func is echo.func
    assert (fetched.args, fetched.kwargs) == (["x"], {"n": 1})
    assert fetched.status == TaskResultStatus.READY
    with pytest.raises(ValueError, match="not finished"):
        _ = fetched.return_value


@pytest.mark.parametrize(
    "result_id", ["abc", "", "999999999", "-1", "1.5", "\u0661", " 1", "9" * 30]
)
def test_get_result_of_an_unknown_id_raises(backend: DatabaseBackend, result_id: str) -> None:
    add.enqueue(1, 1)
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(result_id)


def test_get_result_checks_the_task() -> None:
    from conveyor.compat import TaskResultMismatch

    result = add.enqueue(1, 1)
    with pytest.raises(TaskResultMismatch):
        echo.get_result(result.id)


def test_run_after_defers_availability() -> None:
    when = timezone.now() + timedelta(hours=1)
    result = add.using(run_after=when).enqueue(1, 2)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.run_after == when
    assert row.available_after == when
    assert result.task.run_after == when


@pytest.mark.parametrize(
    ("args", "kwargs", "what"),
    [
        ((object(),), {}, "object"),
        ((), {"when": datetime(2026, 1, 1)}, "datetime"),
        ((math.nan,), {}, "Out of range float values"),
        ((), {"data": {1, 2}}, "set"),
        ((b"\xff",), {}, "bytes"),
    ],
)
def test_arguments_that_are_not_json_raise_type_error_and_store_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], what: str
) -> None:
    with pytest.raises(TypeError, match="JSON-serialisable") as caught:
        echo.enqueue(*args, **kwargs)
    assert what in str(caught.value)
    assert not TaskRecord.objects.exists()


def test_unknown_queue_is_invalid_and_the_error_lists_the_queues() -> None:
    with pytest.raises(InvalidTask) as caught:
        add.using(queue_name="nowhere")
    assert str(caught.value) == (
        "Queue 'nowhere' is not in TASKS['default']['QUEUES'] (default, low_priority, other)."
    )
    assert not TaskRecord.objects.exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: add.enqueue(1),  # type: ignore[call-arg]
            "tests.tasksapp.tasks.add(a, b): missing a required argument: 'b'",
        ),
        (lambda: add.enqueue(1, 2, 3), "too many positional arguments"),  # type: ignore[call-arg]
        (
            lambda: add.enqueue(1, 2, c=2),  # type: ignore[call-arg]
            "got an unexpected keyword argument 'c'",
        ),
        (
            lambda: record.enqueue("a", 2, 3, 4),  # type: ignore[call-arg]
            "tests.tasksapp.tasks.record(context, label='', sleep=0.0): too many positional",
        ),
        (lambda: enqueue_many(add, [((1, 2), {}), ((1,), {})]), "enqueue_many item 1: "),
    ],
)
def test_arguments_that_do_not_fit_the_function_raise_type_error_and_store_nothing(
    call: Any, message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        call()
    assert message in str(caught.value)
    assert not TaskRecord.objects.exists()


def test_a_task_that_takes_context_is_called_with_its_own_arguments() -> None:
    result = record.enqueue("label", sleep=0)
    assert result.kwargs == {"sleep": 0}
    assert TaskRecord.objects.filter(pk=result.id).exists()


def test_naive_run_after_is_invalid_with_use_tz() -> None:
    with pytest.raises(InvalidTask, match="aware datetime"):
        add.using(run_after=datetime(2030, 1, 1))


@pytest.mark.parametrize("priority", [101, -101])
def test_priority_out_of_range_is_invalid(priority: int) -> None:
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        add.using(priority=priority)


def test_queue_name_too_long_is_invalid(task_options: Any, settings: Any) -> None:
    tasks = dict(settings.TASKS)
    tasks["default"] = {**tasks["default"], "QUEUES": []}
    settings.TASKS = tasks
    with pytest.raises(InvalidTask, match="longer than 64 characters"):
        add.using(queue_name="q" * 65)


def test_rolled_back_enqueue_leaves_no_task() -> None:
    seen_inside = []

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            add.enqueue(1, 2)
            seen_inside.append(TaskRecord.objects.count())
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert seen_inside == [1]
    assert not TaskRecord.objects.exists()


def test_task_enqueued_signal_carries_the_stored_result() -> None:
    seen: list[Any] = []

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        seen.append((sender, task_result))

    task_enqueued.connect(receiver)
    try:
        result = add.enqueue(3, 4)
    finally:
        task_enqueued.disconnect(receiver)
    assert len(seen) == 1
    sender, signalled = seen[0]
    assert sender is DatabaseBackend
    assert signalled.id == result.id
    assert signalled.status == TaskResultStatus.READY
    assert signalled.enqueued_at is not None


def test_get_results_lists_every_result_of_a_task_newest_first(backend: DatabaseBackend) -> None:
    first, second = add.enqueue(1, 1), add.enqueue(2, 2)
    echo.enqueue()
    TaskRecord.objects.filter(pk=first.id).update(enqueued_at=timezone.now() - timedelta(hours=1))
    results = list(backend.get_results(add))
    assert [r.id for r in results] == [second.id, first.id]
    assert all(r.task.func is add.func for r in results)


def test_async_enqueue_and_get_result(backend: DatabaseBackend) -> None:
    from asgiref.sync import async_to_sync

    async def flow() -> tuple[str, str]:
        result = await async_add.aenqueue(1, 2)
        fetched = await backend.aget_result(result.id)
        return result.id, fetched.status

    result_id, status = async_to_sync(flow)()
    assert status == TaskResultStatus.READY
    assert TaskRecord.objects.get(pk=result_id).task_path == "tests.tasksapp.tasks.async_add"


def test_enqueue_many_returns_results_in_order_in_one_go() -> None:
    results = enqueue_many(add, [((i, i), {}) for i in range(2500)])
    assert len(results) == 2500
    assert [r.args for r in results[:3]] == [[0, 0], [1, 1], [2, 2]]
    assert len({r.id for r in results}) == 2500
    assert all(r.status == TaskResultStatus.READY and r.enqueued_at for r in results)
    stored = dict(TaskRecord.objects.values_list("pk", "arguments"))
    assert stored[int(results[1234].id)] == {"args": [1234, 1234], "kwargs": {}}


def test_enqueue_many_fires_task_enqueued_per_result() -> None:
    seen: list[str] = []

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        seen.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        results = enqueue_many(low, [((n,), {}) for n in range(5)])
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [r.id for r in results]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (((object(),), {}), "item 3: Task arguments must be JSON-serialisable"),
        (("not args", {}), "item 3: args must be a list or tuple"),
        (((1,), ["kw"]), "item 3: kwargs must be a dict"),
        ((1, 2, 3), "item 3: expected an (args, kwargs) pair"),
    ],
)
def test_enqueue_many_is_all_or_nothing(bad: Any, message: str) -> None:
    calls = [((1,), {}), ((2,), {}), ((3,), {}), bad, ((5,), {})]
    with pytest.raises(TypeError) as caught:
        enqueue_many(echo, calls)
    assert message in str(caught.value)
    assert not TaskRecord.objects.exists()


def test_enqueue_many_with_nothing_stores_nothing() -> None:
    assert enqueue_many(noop, []) == []
    assert not TaskRecord.objects.exists()


def test_a_batch_keeps_each_task_s_own_values_in_order(backend: DatabaseBackend) -> None:
    now = backend.store.database_now()
    later, earlier = now + timedelta(hours=1, microseconds=7), now - timedelta(minutes=5)
    tasks = [
        backend.new_task(add.using(run_after=later, priority=5), (1, 2), {}),
        backend.new_task(echo, ({"ü": [None, 1.5, '"q"']},), {}),
        backend.new_task(add.using(run_after=earlier, queue_name="low_priority"), (3, 4), {}),
    ]
    backend.store.insert(tasks)
    ids = [task.pk for task in tasks]
    assert None not in ids
    first, second, third = (TaskRecord.objects.get(pk=pk) for pk in ids if pk is not None)
    assert (first.run_after, first.available_after, first.hold, first.priority) == (
        later,
        later,
        1,
        5,
    )
    assert first.arguments == {"args": [1, 2], "kwargs": {}}
    assert (second.run_after, second.hold, second.queue_name) == (None, 0, "default")
    assert second.arguments == {"args": [{"ü": [None, 1.5, '"q"']}], "kwargs": {}}
    assert (third.run_after, third.available_after, third.hold) == (earlier, earlier, 0)
    assert third.queue_name == "low_priority"
    assert [task.available_after for task in tasks] == [later, second.available_after, earlier]
