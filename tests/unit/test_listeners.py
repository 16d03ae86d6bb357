"""A signal is heard when a receiver other than Django's logging one is connected, or when
the "django.tasks" logger would write the line; otherwise no TaskResult is built for it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.dispatch import Signal

from conveyor.compat import TASKS_LOGGER
from conveyor.compat import task_signals as signals
from conveyor.worker.listeners import heard


@pytest.fixture
def quiet_django_tasks() -> Iterator[logging.Logger]:
    logger = logging.getLogger(TASKS_LOGGER)
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield logger
    logger.setLevel(level)


def receiver(**kwargs: Any) -> None:
    return None


def test_a_signal_without_receivers_is_not_heard() -> None:
    assert not heard(Signal())


def test_djangos_logging_receiver_alone_is_heard_only_at_its_level(
    quiet_django_tasks: logging.Logger,
) -> None:
    signal = Signal()
    signal.connect(signals.log_task_finished)
    assert not heard(signal, level=logging.INFO)
    assert heard(signal, level=logging.ERROR)  # a failure is logged at ERROR
    quiet_django_tasks.setLevel(logging.INFO)
    assert heard(signal, level=logging.INFO)


def test_any_other_receiver_is_heard(quiet_django_tasks: logging.Logger) -> None:
    signal = Signal()
    signal.connect(signals.log_task_started)
    signal.connect(receiver, sender=int)  # for one sender only: still heard
    assert heard(signal)


def test_the_test_apps_receivers_are_heard(quiet_django_tasks: logging.Logger) -> None:
    assert heard(signals.task_started)
    assert heard(signals.task_finished)
