from __future__ import annotations

from conveyor.models import TaskRecord
from tests.tasksapp.tasks import add


def test_worker_process_runs_a_task(start_worker) -> None:
    result = add.enqueue(2, 3)
    worker = start_worker("--oneshot")
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 5
    assert TaskRecord.objects.get(pk=result.id).worker_id == ""
