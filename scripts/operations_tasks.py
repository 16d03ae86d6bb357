"""Tasks the operations scripts enqueue."""

from __future__ import annotations

from django.tasks import task


@task
def noop() -> None:
    return None
