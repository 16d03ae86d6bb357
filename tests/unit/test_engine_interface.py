"""Every engine implements the whole interface, and the contract suite exercises all of it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from conveyor.store import ENGINES, Engine

# The suites that run on every database: the engine contract, and the operator actions.
SUITES = [Path(__file__).resolve().parents[1] / name for name in ("contract", "operations")]


def operations() -> list[str]:
    return sorted(
        name
        for name, member in vars(Engine).items()
        if inspect.isfunction(member) and not name.startswith("_")
    )


def test_the_interface_lists_the_operations_on_conveyors_tables() -> None:
    assert {"insert", "claim", "finish", "recover_lost", "purge", "take_lease"} <= set(operations())


@pytest.mark.parametrize("vendor", sorted(ENGINES))
def test_each_engine_implements_every_operation(vendor: str) -> None:
    engine = ENGINES[vendor]
    for name in operations():
        implementation = getattr(engine, name, None)
        assert callable(implementation), f"{engine.__name__} lacks {name}()"
        expected = list(inspect.signature(getattr(Engine, name)).parameters)
        assert list(inspect.signature(implementation).parameters) == expected, name


@pytest.mark.parametrize("name", operations())
def test_the_contract_suite_calls_every_operation(name: str) -> None:
    called = re.compile(rf"\.{name}\(")
    callers = [
        p.name for suite in SUITES for p in suite.glob("test_*.py") if called.search(p.read_text())
    ]
    assert callers, f"no test run on every database calls Engine.{name}()"
