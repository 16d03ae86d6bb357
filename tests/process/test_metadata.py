"""Metadata saved by a task in a worker process, read from this one while it runs."""

from __future__ import annotations

from pathlib import Path

import conveyor
from tests.conftest import wait_until
from tests.tasksapp.tasks import steps


def test_progress_saved_mid_run_is_visible_from_another_process(
    start_worker, tmp_path: Path
) -> None:
    gate = tmp_path / "go-on"
    result = conveyor.enqueue(steps, 3, gate=str(gate), metadata={"requested_by": "test"})
    worker = start_worker("--oneshot")
    seen = wait_until(
        lambda: conveyor.metadata(result).get("progress"), what="the first step's progress"
    )
    assert seen == {"done": 1, "total": 3}
    assert conveyor.metadata(result)["requested_by"] == "test"
    result.refresh()
    assert result.status == "RUNNING"
    gate.touch()
    assert worker.wait() == 0, worker.log()
    result.refresh()
    assert result.return_value == 3
    assert conveyor.metadata(result) == {
        "requested_by": "test",
        "stage": "done",
        "progress": {"done": 3, "total": 3},
    }
