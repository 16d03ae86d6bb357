"""conveyor_worker without flags: the sizes docs/worker.md#defaults explains."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.management.commands.conveyor_worker import (
    DEFAULT_THREAD_SLOTS,
    Command,
    usable_cpus,
)


def options(*argv: str) -> dict[str, Any]:
    return vars(Command().create_parser("manage.py", "conveyor_worker").parse_args(argv))


def concurrency(*argv: str) -> int:
    return Command().worker_settings("default", set(), options(*argv)).concurrency


def test_without_flags_one_process_runs_sixteen_threads() -> None:
    assert DEFAULT_THREAD_SLOTS == 16
    assert concurrency() == DEFAULT_THREAD_SLOTS
    assert options()["processes"] == 1


def test_process_isolation_defaults_to_a_child_per_usable_cpu() -> None:
    assert concurrency("--isolation", "process") == usable_cpus() >= 1


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_explicit_concurrency_wins(isolation: str) -> None:
    assert concurrency("--isolation", isolation, "--concurrency", "1") == 1


def test_the_help_names_the_defaults() -> None:
    text = Command().create_parser("manage.py", "conveyor_worker").format_help()
    assert f"(default: {DEFAULT_THREAD_SLOTS};" in " ".join(text.split())
