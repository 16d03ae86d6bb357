from __future__ import annotations

import sys

import pytest

from conveyor.worker.supervisor import child_command, restart_delay


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "manage.py", "conveyor_worker", "-p", "4"], ["manage.py", "conveyor_worker"]),
        (
            ["python", "-m", "django", "conveyor_worker", "--processes=3", "-q", "a"],
            ["-m", "django", "conveyor_worker", "-q", "a"],
        ),
        (
            ["python", "manage.py", "conveyor_worker", "-p2", "-c", "8"],
            ["manage.py", "conveyor_worker", "-c", "8"],
        ),
    ],
)
def test_child_command_runs_one_process_the_same_way(argv: list[str], expected: list[str]) -> None:
    assert child_command(argv) == [sys.executable, *expected, "--processes", "1"]


def test_a_child_that_lived_long_is_replaced_at_once_and_young_deaths_back_off() -> None:
    assert [restart_delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 10.0]
