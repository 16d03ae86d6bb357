"""conveyor in the Django admin: task results with operator actions, the workers, the
schedules (run now) and the queues (pause, resume)."""

from __future__ import annotations

from conveyor.admin.schedules import LimitAdmin, QueueAdmin, ScheduleAdmin
from conveyor.admin.tasks import TaskRecordAdmin
from conveyor.admin.workers import WorkerRecordAdmin

__all__ = ["LimitAdmin", "QueueAdmin", "ScheduleAdmin", "TaskRecordAdmin", "WorkerRecordAdmin"]
