"""Task metadata: read it, and merge changes into it by key in one UPDATE.

A merge names only the keys its writer changed or removed, and the database applies them to
the row as it is at that moment, so a task saving its progress and an operator adding a note
never lose each other's keys (the row lock orders the two UPDATEs). SQLite and MariaDB/MySQL
set and remove keys with JSON paths; PostgreSQL overrides `merged_metadata_sql` with jsonb
operators.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Q

from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store.core import EngineCore

# Merge: the new value of the column, then the row's identity and, for a worker, its fence.
SAVE_METADATA_SQL = "UPDATE {task} SET metadata = {merged} WHERE id = %s AND backend_name = %s"
SAVE_METADATA_FENCE = " AND status = 'RUNNING' AND worker_id = %s AND attempt_count = %s"


def key_path(key: str) -> str:
    """The JSON path of one top-level key ($."key"); raise ValueError for a key a path
    cannot quote."""
    if not isinstance(key, str) or '"' in key or "\\" in key:
        raise ValueError(f"metadata keys must be strings without quotes or backslashes: {key!r}")
    return f'$."{key}"'


class Metadata(EngineCore):
    # The JSON value of a parameter holding JSON text, inside JSON_SET (see MySQLEngine).
    json_value_sql = "json(%s)"

    def metadata(self, pk: int) -> dict[str, Any]:
        value = self.task_rows().values_list("metadata", flat=True).get(pk=pk)
        return value if isinstance(value, dict) else {}

    def save_metadata(
        self,
        pk: int,
        *,
        changed: Mapping[str, Any],
        removed: Iterable[str] = (),
        holder: tuple[str, int] | None = None,
    ) -> bool:
        removed = sorted(set(removed) - set(changed))
        for key in (*changed, *removed):
            key_path(key)
        if not changed and not removed:
            return self.holds(pk, holder)
        merged, params = self.merged_metadata_sql(dict(changed), removed)
        statement = SAVE_METADATA_SQL.format(task=self.table(TaskRecord), merged=merged)
        params += [pk, self.backend_name]
        if holder is not None:
            statement += SAVE_METADATA_FENCE
            params += list(holder)

        def save() -> bool:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, params)
                return bool(cursor.rowcount == 1)

        return self.retrying(save)

    def holds(self, pk: int, holder: tuple[str, int] | None) -> bool:
        """Whether the task exists (and, with a holder, is still that worker's attempt)."""
        rows = self.task_rows().filter(pk=pk)
        if holder is not None:
            worker_id, attempt = holder
            rows = rows.filter(
                Q(status=TaskResultStatus.RUNNING, worker_id=worker_id, attempt_count=attempt)
            )
        return rows.exists()

    def merged_metadata_sql(
        self, changed: dict[str, Any], removed: list[str]
    ) -> tuple[str, list[Any]]:
        """Engine hook: SQL for the column with `removed` keys dropped and `changed` keys set,
        and its parameters."""
        merged, params = "COALESCE(metadata, '{}')", []
        if removed:
            merged = f"JSON_REMOVE({merged}, {', '.join(['%s'] * len(removed))})"
            params += [key_path(key) for key in removed]
        if changed:
            pairs = ", ".join([f"%s, {self.json_value_sql}"] * len(changed))
            merged = f"JSON_SET({merged}, {pairs})"
            for key, value in changed.items():
                params += [key_path(key), json.dumps(value, allow_nan=False)]
        return merged, params
