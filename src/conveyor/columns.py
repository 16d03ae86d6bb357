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
