"""Sizes of conveyor's columns, importable before Django's app registry is ready (the backend
validates against them when TASKS is read)."""

from __future__ import annotations

QUEUE_NAME_MAX_LENGTH = 64
BACKEND_NAME_MAX_LENGTH = 32
WORKER_ID_MAX_LENGTH = 128
SCHEDULE_NAME_MAX_LENGTH = 100
