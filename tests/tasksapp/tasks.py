"""Tasks the tests enqueue; worker processes import them by path."""

from __future__ import annotations

from django.tasks import task


@task
def add(a: int, b: int) -> int:
    return a + b
