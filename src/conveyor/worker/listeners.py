"""Whether a django.tasks signal has anyone to tell, so that no TaskResult is built for no one.

Django connects its own logging receivers to task_started and task_finished; they only log,
at INFO (ERROR for a failure) on the "django.tasks" logger ("django_tasks" on the
backport). A signal counts as heard when any other receiver is connected (for any sender),
or when that logger is enabled for the level the message would have: then the result is
built and the signal sent as before.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

from conveyor.compat import TASKS_LOGGER
from conveyor.compat import task_signals as signals

DJANGO_LOGGER = logging.getLogger(TASKS_LOGGER)
# Django's receivers, as Signal keys its receivers: by id() of the function.
LOGGING_RECEIVERS = frozenset(
    id(receiver)
    for receiver in (
        getattr(signals, "log_task_started", None),
        getattr(signals, "log_task_finished", None),
    )
    if receiver is not None
)


def heard(signal: Signal, *, level: int = logging.INFO) -> bool:
    """Whether sending `signal` now would reach anyone (a receiver, or a log line)."""
    receivers = signal.receivers
    if not receivers:
        return False
    if DJANGO_LOGGER.isEnabledFor(level):
        return True
    return any(entry[0][0] not in LOGGING_RECEIVERS for entry in receivers)
