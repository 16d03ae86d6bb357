"""Sizes of conveyor's columns, importable before Django's app registry is ready (the backend
validates against them when TASKS is read)."""

from __future__ import annotations

QUEUE_NAME_MAX_LENGTH = 64
BACKEND_NAME_MAX_LENGTH = 32
WORKER_ID_MAX_LENGTH = 128
SCHEDULE_NAME_MAX_LENGTH = 100

# TaskRecord.hold: why a READY task is not claimable. Only HOLD_NONE rows are in the claim's
# range of its index.
HOLD_NONE = 0  # due: claimable
HOLD_TIME = 1  # not due yet (deferred, or backing off): staged by the claim once due
HOLD_SLOT = 2  # waiting for a slot of its concurrency limit: promoted when one frees

# The fixed wait buckets of conveyor_minute (conveyor.models.MinuteCount): each column counts
# the tasks that waited at most its bound, from due to the start of their last attempt.
WAIT_BUCKETS_MS = (
    10,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    300_000,
    900_000,
    3_600_000,
)


def wait_column(bound_ms: int) -> str:
    """The conveyor_minute column that counts the waits of at most `bound_ms` milliseconds."""
    return f"wait_le_{bound_ms}ms"
