"""conveyor in the Django admin: task results with operator actions, and the workers."""

from __future__ import annotations

from conveyor.admin.tasks import TaskRecordAdmin
from conveyor.admin.workers import WorkerRecordAdmin

__all__ = ["TaskRecordAdmin", "WorkerRecordAdmin"]
