from __future__ import annotations

import os
from typing import Any

from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tests.tasksapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from conveyor.compat import task_finished, task_started

        task_started.connect(record_signal, dispatch_uid="tasksapp.started")
        task_finished.connect(record_signal, dispatch_uid="tasksapp.finished")


def record_signal(sender: type, task_result: Any, signal: Any, **kwargs: Any) -> None:
    """Write an Execution row per signal, so tests see what fired inside worker processes."""
    from conveyor.compat import task_started
    from tests.tasksapp.models import Execution

    name = "started" if signal is task_started else "finished"
    Execution.objects.create(
        result_id=task_result.id,
        attempt=task_result.attempts,
        pid=os.getpid(),
        label=f"signal:{name}:{task_result.status}:{len(task_result.errors)}",
    )
