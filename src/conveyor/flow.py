"""Flow control declared on a task: uniqueness and a concurrency limit (ConveyorTask's
`unique` and `concurrency` options), and the keys they give each enqueued call."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from conveyor.compat import TaskResultStatus

# The states a unique task always holds its key in; SUCCESSFUL and FAILED may be added.
HELD_STATES = frozenset({TaskResultStatus.READY, TaskResultStatus.RUNNING})
FINAL_STATES = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
# Bits of TaskRecord.unique_keeps: the final states the key is kept in.
KEEP_BITS = {TaskResultStatus.SUCCESSFUL: 1, TaskResultStatus.FAILED: 2}


@dataclass(frozen=True, slots=True)
class Unique:
    """At most one task with the same key in the given states.

    `key`: a callable of the task's arguments (default: the arguments themselves); the key
    is always scoped to the task's path. `period`: one per period (the key of a call made
    in another period differs). `states`: READY and RUNNING, and optionally SUCCESSFUL and
    FAILED (a task keeps its key in those final states too).
    """

    key: Callable[..., Any] | None = None
    period: timedelta | None = None
    states: frozenset[str] = field(default_factory=lambda: frozenset(HELD_STATES))

    def keeps(self) -> int:
        """The bits of the final states the key is kept in."""
        return sum(bit for status, bit in KEEP_BITS.items() if status in self.states)

    def key_of(
        self, path: str, arguments_json: str, args: Sequence[Any], kw: Mapping[str, Any]
    ) -> str:
        base = arguments_json if self.key is None else repr(self.key(*args, **kw))
        bucket = "" if self.period is None else str(int(time.time() // self.period.total_seconds()))
        return digest(f"{path}\x00{base}\x00{bucket}")


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most `limit` tasks with the same key hold a slot (READY and due, or RUNNING) at
    once; the others wait without a slot. `key`: a callable of the arguments (default: one
    key for the task)."""

    limit: int
    key: Callable[..., Any] | None = None

    def key_of(self, path: str, args: Sequence[Any], kw: Mapping[str, Any]) -> str:
        if self.key is None:
            return path if len(path) <= KEY_MAX_LENGTH else digest(path)
        text = f"{path}:{self.key(*args, **kw)}"
        return text if len(text) <= KEY_MAX_LENGTH else digest(text)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` starts per `period` per key, across every worker: a task over it waits
    (without being polled for) until the next window of the period opens. `key`: a callable
    of the arguments (default: one key for the task). Windows are aligned on the period,
    judged on the database clock."""

    limit: int
    period: timedelta
    key: Callable[..., Any] | None = None

    def key_of(self, path: str, args: Sequence[Any], kw: Mapping[str, Any]) -> str:
        if self.key is None:
            return path if len(path) <= KEY_MAX_LENGTH else digest(path)
        text = f"{path}:{self.key(*args, **kw)}"
        return text if len(text) <= KEY_MAX_LENGTH else digest(text)


RATE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(text: str) -> RateLimit:
    """'100/m' (per second s, minute m, hour h or day d) as a RateLimit."""
    count, _, unit = text.partition("/")
    if not count.strip().isdigit() or unit.strip() not in RATE_UNITS or int(count) < 1:
        raise ValueError(f"a rate is 'N/s', 'N/m', 'N/h' or 'N/d' with N >= 1, got {text!r}")
    return RateLimit(limit=int(count), period=timedelta(seconds=RATE_UNITS[unit.strip()]))


KEY_MAX_LENGTH = 255


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
