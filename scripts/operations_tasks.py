"""Tasks the operations scripts enqueue."""

from __future__ import annotations

from conveyor.tasks import task


@task
def noop() -> None:
    return None


# Flow control whose limits never bind here: what the bookkeeping alone costs.
@task(concurrency=1_000_000)
def limited_noop() -> None:
    return None


@task(rate_limit="1000000/s")
def rated_noop() -> None:
    return None


@task(unique=True)
def unique_noop(n: int) -> None:
    return None
