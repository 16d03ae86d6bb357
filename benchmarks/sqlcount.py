"""Count the SQL statements a process sends, and write the counts to a file at exit.

Installed by benchmarks.settings when BENCH_SQL_COUNT_DIR is set: every new connection, in
every thread, gets an execute wrapper. Transaction control that drivers send themselves
(BEGIN, COMMIT) does not pass through Django's cursors and is not counted here.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

COUNTS: Counter[str] = Counter()
_lock = threading.Lock()


def statement_kind(sql: str) -> str:
    """The first keyword of a statement (WITH for a CTE), upper-case."""
    words = sql.lstrip(" (\n\t").split(None, 1)
    return words[0].upper() if words else "?"


def counting_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    kind = statement_kind(sql)
    with _lock:
        COUNTS[kind] += len(params) if many and hasattr(params, "__len__") else 1
    return execute(sql, params, many, context)


def total() -> int:
    with _lock:
        return sum(COUNTS.values())


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(COUNTS)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if counting_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(counting_wrapper)


def _write(directory: Path) -> None:
    counts = snapshot()
    if counts:
        path = directory / f"{os.getpid()}.json"
        path.write_text(json.dumps(counts))


def install(directory: str) -> None:
    """Count from the first connection on; write <directory>/<pid>.json at exit."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="benchmarks.sqlcount")
    atexit.register(_write, Path(directory))


def read(directory: Path) -> dict[str, int]:
    """The counts of every process that wrote to a directory, added up."""
    found: Counter[str] = Counter()
    for path in directory.glob("*.json"):
        found.update(json.loads(path.read_text()))
    return dict(found)
