"""conveyor's task class takes its options from Django's own @task decorator (Django 6.1,
the django-tasks backport) and from conveyor.tasks.task (every supported Django)."""

from __future__ import annotations

import pickle
from datetime import timedelta
from typing import Any

import django
import pytest

from conveyor import compat
from conveyor.exceptions import TaskOptionError
from conveyor.results import rebuild_task
from conveyor.tasks import ConveyorTask, conveyor_options, task

needs_options_in_django_s_decorator = pytest.mark.skipif(
    not compat.TASK_PASSES_OPTIONS, reason="Django 6.0's @task takes no backend options"
)


def never(exception: BaseException, task_result: Any) -> None:
    return None


@task(max_attempts=5, timeout="30 seconds", backoff=never)
def configured(a: int) -> int:
    return a


def plain() -> None: ...


def test_conveyor_s_decorator_builds_a_conveyor_task_with_its_options() -> None:
    assert isinstance(configured, ConveyorTask)
    assert conveyor_options(configured) == {
        "backoff": never,
        "concurrency": None,
        "max_attempts": 5,
        "rate_limit": None,
        "timeout": timedelta(seconds=30),
        "unique": None,
    }


@needs_options_in_django_s_decorator
def test_django_s_decorator_builds_the_same_conveyor_task() -> None:
    # django-stubs do not know that @task passes extra options to the backend's task class.
    made = compat.task(max_attempts=5, timeout="30 seconds", backoff=never)(plain)  # type: ignore[call-overload]
    assert isinstance(made, ConveyorTask)
    assert conveyor_options(made) == conveyor_options(configured)


@pytest.mark.skipif(compat.TASK_PASSES_OPTIONS, reason="this Django's @task takes them")
def test_django_6_0_s_decorator_refuses_the_options_that_conveyor_s_takes() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_attempts'"):
        compat.task(max_attempts=5)(plain)  # type: ignore[call-overload]


def test_plain_tasks_are_the_same_from_either_decorator() -> None:
    assert compat.task(plain) == task(plain)


def test_options_survive_using_and_the_stored_copy() -> None:
    changed = configured.using(priority=7)
    assert isinstance(changed, ConveyorTask)
    assert (changed.priority, changed.max_attempts) == (7, 5)
    copy = rebuild_task(configured, queue_name="other")
    assert (copy.queue_name, conveyor_options(copy)) == ("other", conveyor_options(configured))


@pytest.mark.skipif(django.VERSION < (6, 1), reason="tasks pickle from Django 6.1 on")
def test_options_survive_pickling() -> None:
    assert pickle.loads(pickle.dumps(configured)).timeout == timedelta(seconds=30)


def test_a_backoff_may_be_a_dotted_path() -> None:
    made = task(backoff="tests.unit.test_task_class.never")(plain)
    assert isinstance(made, ConveyorTask)
    assert made.backoff is never


def test_an_unknown_option_is_a_type_error_when_the_module_is_imported() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_atempts'"):
        task(max_atempts=3)(plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "option max_attempts of .*: must be an integer >= 1, got 0"),
        ({"max_attempts": True}, "max_attempts .*: must be an integer >= 1, got True"),
        ({"timeout": 0}, "option timeout of .*: must be longer than zero, got 0"),
        ({"timeout": "soon"}, "option timeout of .*: cannot read 'soon' as a duration"),
        ({"backoff": 3}, "option backoff of .*: must be a callable"),
        ({"backoff": "no.such.thing"}, "option backoff of .*: cannot import 'no.such.thing'"),
        ({"unique": "yes"}, "option unique of .*: must be True, a conveyor.flow.Unique or a dict"),
        ({"unique": {"states": ["SUCCESSFUL"]}}, "option unique of .*: states must include READY"),
        ({"concurrency": 0}, "option concurrency of .*: limit must be an integer >= 1, got 0"),
        ({"rate_limit": "100/week"}, "option rate_limit of .*: a rate is 'N/s', 'N/m'"),
        ({"rate_limit": {"limit": 5, "period": 0}}, "rate_limit .*: period must be at least"),
    ],
)
def test_a_bad_value_names_the_task_and_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskOptionError, match=message):
        task(**options)(plain)
