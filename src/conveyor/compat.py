"""Where the task API comes from: `django.tasks` on Django 6.0 and later, the `django-tasks`
backport (`django_tasks`) on Django 5.2 LTS.

The one module of conveyor that knows; the rest imports these names from here. The backport
spells two exceptions differently (`InvalidTaskError`, `InvalidTaskBackendError`) and logs
as `django_tasks`; the names below are Django's on every version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django
from django.core.exceptions import ImproperlyConfigured
from django.db import models

# Django 6.0 ships django.tasks; the type checker runs against the newest Django.
if TYPE_CHECKING or django.VERSION >= (6, 0):
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks import signals as task_signals
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import DEFAULT_TASK_PRIORITY, TaskError
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    TASKS_LOGGER = "django.tasks"
else:
    try:
        from django_tasks import (
            DEFAULT_TASK_BACKEND_ALIAS,
            DEFAULT_TASK_QUEUE_NAME,
            TaskContext,
            TaskResult,
            TaskResultStatus,
            default_task_backend,
            task,
            task_backends,
        )
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"conveyor on Django {django.get_version()} needs the django-tasks backport: "
            "pip install 'django-conveyor[django52]'"
        ) from exc
    # Django registers the backends' system checks with django.tasks, the backport with its
    # app: registered here, they run without "django_tasks" in INSTALLED_APPS too.
    import django_tasks.checks  # noqa: F401
    from django_tasks import signals as task_signals
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import DEFAULT_TASK_PRIORITY, Task, TaskError
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    TASKS_LOGGER = "django_tasks"

# Django 6.1 passes @task's unknown keyword arguments to the backend's task_class; 6.0 does
# not (the backport does). conveyor.tasks.task takes them on every version.
TASK_PASSES_OPTIONS = django.VERSION >= (6, 1) or django.VERSION < (6, 0)
# Django 6.1 deletes an attempt and its error with its task in the database (ON DELETE
# CASCADE); before it, Django collects and deletes them itself: the same rows go, more slowly.
DB_CASCADE = getattr(models, "DB_CASCADE", models.CASCADE)

# Whether the task API is Django's own (False: the django-tasks backport).
BUILTIN = django.VERSION >= (6, 0)

__all__ = [
    "BUILTIN",
    "DB_CASCADE",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "TASKS_LOGGER",
    "TASK_PASSES_OPTIONS",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "default_task_backend",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_signals",
    "task_started",
]
