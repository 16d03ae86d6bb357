"""Tasks the operations scripts enqueue."""

from __future__ import annotations

from conveyor.compat import task


@task
def noop() -> None:
    return None
