"""The portable statements (SQLite and MariaDB/MySQL; PostgreSQL keeps its own beside its
engine). Identifiers are interpolated, values are always parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Finish: lock the rows still held for the attempts that ended, with the database clock.
LOCK_HELD_SQL = (
    "SELECT id, attempt_count, worker_id, cancel_requested_by, {now} FROM {task} "
    "WHERE id IN ({ids}) AND status = 'RUNNING' ORDER BY id{lock}"
)
# Finish: a final state, for every row of a group with the same outcome.
FINAL_SQL = (
    "UPDATE {task} SET status = %s, finished_at = %s, return_value = %s, worker_id = '', "
    "unique_key = CASE WHEN (unique_keeps & %s) <> 0 THEN unique_key ELSE NULL END "
    "WHERE id IN ({ids})"
)
# Finish: back to READY, due after the back-off (held until then, unless it is due now).
RETRY_SQL = (
    "UPDATE {task} SET status = 'READY', available_after = %s, hold = %s, worker_id = '' "
    "WHERE id IN ({ids})"
)
# Finish: a snoozed attempt, back to READY after the delay the task asked for.
SNOOZE_SQL = (
    "UPDATE {task} SET status = 'READY', available_after = %s, hold = %s, worker_id = '', "
    "snoozes = snoozes + 1 WHERE id IN ({ids})"
)
INSERT_ATTEMPTS_SQL = (
    "INSERT INTO {attempt} (task_id, worker_id, started_at, stopped_at, status) "
    "VALUES {rows}{returning}"
)
INSERT_ERRORS_SQL = (
    "INSERT INTO {error} (attempt_id, exception_class_path, traceback) VALUES {rows}"
)
# Enqueue: a READY row, no attempt yet, held by nobody; enqueued_at is the column's default,
# available_after is run_after or else the database clock, and a run_after in the future
# holds the row for its time (1); HOLD_SLOT (2) is given by the concurrency limit's check.
INSERT_TASKS_SQL = (
    "INSERT INTO {task} (task_path, backend_name, queue_name, priority, takes_context, "
    "arguments, metadata, status, attempt_count, worker_id, run_after, available_after, "
    "hold) VALUES {rows} RETURNING id, enqueued_at, available_after"
)
INSERT_TASK_ROW = (
    "(%s, %s, %s, %s, %s, {json}, {json}, 'READY', 0, '', %s, COALESCE(%s, {now}), "
    "CASE WHEN %s > {now} THEN 1 ELSE 0 END)"
)
# Claim, first: rows held for their time that have become due join the claim's range of the
# index. Only rows that became due are read (by conveyor_task_waiting), however many wait.
STAGE_SQL = (
    "UPDATE {task} SET hold = 0 "
    "WHERE status = 'READY' AND hold = 1 AND available_after <= {now} AND backend_name = %s"
)
# Reconcile: hand back RUNNING rows a worker holds but never received (a lost claim reply);
# the claim's attempt is undone, as it never started.
RELEASE_UNHELD_SQL = (
    "UPDATE {task} SET status = 'READY', worker_id = '', attempt_count = attempt_count - 1 "
    "WHERE backend_name = %s AND status = 'RUNNING' AND worker_id = %s{held}"
)


def placeholders(values: Sequence[Any] | frozenset[Any]) -> str:
    return ", ".join(["%s"] * len(values))
