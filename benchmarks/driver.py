"""The measuring side inside Django: `python -m benchmarks.driver COMMAND`, one JSON line out.

Runs in the benchmark environment with benchmarks.settings, so the same code enqueues into
whichever system BENCH_SYSTEM names. Commands:

  enqueue   time N enqueues, one by one (each its own transaction) or in bulk
  latency   enqueue one stamp task at a time into an idle worker; report start latencies
  history   copy the one finished task row (and its child rows) into N history rows, and
            enqueue M deferred tasks spread over every priority
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

MONOTONIC = time.CLOCK_MONOTONIC
HISTORY_CHUNK_ROWS = 100_000
# Deferred tasks of the history case: due in a day, at priorities -100, -75, ..., 100, in a
# queue of their own that the workers serve, so that a drain can tell its tasks from them.
DEFERRED_PRIORITIES = range(-100, 101, 25)
DEFERRED_QUEUE = "deferred"
# The tasks `enqueue --task` may enqueue (benchmarks.tasks).
ENQUEUED_TASKS = ("noop", "async_wait", "sync_wait")


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()


def current_system() -> Any:
    from benchmarks import settings

    return settings.SYSTEM


def task_model() -> Any:
    """The model of the current system's task table."""
    from django.apps import apps

    table = current_system().table
    for model in apps.get_models():
        if model._meta.db_table == table:
            return model
    raise LookupError(f"no model has the table {table!r}")


# -- enqueue ------------------------------------------------------------------------------


def bulk_enqueuer() -> Callable[[Any, int], object]:
    """The system's way to enqueue many calls of one task at once."""
    from django.db import transaction

    from benchmarks.systems import CONVEYOR, OX

    name = current_system().name
    if name == CONVEYOR:
        import conveyor

        return lambda task, n: conveyor.enqueue_many(task, [((), {})] * n)
    if name == OX:
        # Installed only in the benchmark environment, not where the project is type-checked.
        from django_ox.bulk import enqueue_many  # type: ignore[import-not-found,unused-ignore]

        return lambda task, n: enqueue_many(task, [((), {})] * n)

    def in_one_transaction(task: Any, n: int) -> None:
        with transaction.atomic():
            for _ in range(n):
                task.enqueue()

    return in_one_transaction


def enqueue(
    count: int, *, bulk: bool, warmup: int, count_sql: bool, task: str = "noop"
) -> dict[str, Any]:
    """Time `count` enqueues of the no-op task, or of the benchmarks.tasks task named
    `task` (after `warmup` untimed ones)."""
    from django.db import connection

    from benchmarks import sqlcount, tasks

    enqueued = getattr(tasks, task)

    connection.ensure_connection()
    if not bulk:
        for _ in range(warmup):  # fills caches; the timed loop starts in a steady state
            enqueued.enqueue()
    if count_sql:
        connection.execute_wrappers.append(sqlcount.counting_wrapper)
    before = sqlcount.snapshot()
    started = time.perf_counter()
    if bulk:
        bulk_enqueuer()(enqueued, count)
    else:
        for _ in range(count):
            enqueued.enqueue()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"count": count, "seconds": seconds}
    if count_sql:
        after = sqlcount.snapshot()
        result["statements"] = {k: after[k] - before.get(k, 0) for k in after}
    return result


# -- latency ------------------------------------------------------------------------------


class StampReader:
    """Follows the stamp file the tasks append "label started" lines to."""

    def __init__(self, path: str) -> None:
        open(path, "a").close()
        self.file = open(path, encoding="ascii")  # noqa: SIM115 - closed by close()
        self.seen: dict[int, float] = {}
        self.partial = ""

    def wait_for(self, label: int, timeout: float) -> float | None:
        """The start time of task `label`, polling every millisecond; None on time-out."""
        deadline = time.monotonic() + timeout
        while label not in self.seen:
            self.partial += self.file.read()
            *lines, self.partial = self.partial.split("\n")
            for line in lines:
                key, value = line.split()
                self.seen[int(key)] = float(value)
            if label in self.seen:
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)
        return self.seen[label]

    def close(self) -> None:
        self.file.close()


def latency(
    count: int, *, pause_min: float, pause_max: float, timeout: float, stamp_file: str
) -> dict[str, Any]:
    """Enqueue one stamp task at a time, after a random pause, and read when each started.

    The pause begins once the previous task has started, so every task meets an idle
    worker. Latency: the task's CLOCK_MONOTONIC reading at its start minus this process's
    reading just before enqueue() was called (the enqueue's own cost is included).
    """
    from benchmarks.tasks import stamp

    reader = StampReader(stamp_file)
    try:
        stamp.enqueue(-1)  # wait for the worker to be up before measuring
        if reader.wait_for(-1, timeout=120) is None:
            raise SystemExit("the worker never ran the warm-up task")
        latencies, missed = [], 0
        for label in range(count):
            time.sleep(random.uniform(pause_min, pause_max))
            before = time.clock_gettime(MONOTONIC)
            stamp.enqueue(label)
            started = reader.wait_for(label, timeout)
            if started is None:
                missed += 1
                continue
            latencies.append(started - before)
    finally:
        reader.close()
    return {"count": count, "latencies": latencies, "missed": missed}


# -- history ------------------------------------------------------------------------------


def series_sql(vendor: str) -> tuple[str, str]:
    """(WITH prefix, FROM item) producing rows g.n from %(first)s to %(last)s."""
    if vendor == "postgresql":
        return "", "generate_series(%(first)s, %(last)s) AS g(n)"
    return (
        "WITH RECURSIVE g(n) AS (SELECT %(first)s UNION ALL SELECT n + 1 FROM g "
        "WHERE n < %(last)s) ",
        "g",
    )


def shifted(vendor: str, column: str) -> str:
    """`column` moved n seconds into the past (history rows finished over the last days)."""
    if vendor == "postgresql":
        return f"{column} - g.n * INTERVAL '1 second'"
    if vendor == "mysql":
        return f"{column} - INTERVAL g.n SECOND"
    return f"STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', {column}, '-' || g.n || ' seconds')"


def new_uuid(vendor: str) -> str:
    if vendor == "postgresql":
        return "gen_random_uuid()"
    if vendor == "mysql":
        return "UUID()"
    return "LOWER(HEX(RANDOMBLOB(16)))"  # Django keeps UUIDs as 32 hex digits on SQLite


def copy_columns(model: Any, template: Any, *, vendor: str, alias: str) -> tuple[str, str]:
    """Column list and SELECT list that copy `template` (table alias `alias`) per g.n."""
    from django.db import connection, models

    qn = connection.ops.quote_name
    columns, values = [], []
    for field in model._meta.concrete_fields:
        value = getattr(template, field.attname)
        if field.primary_key and isinstance(field, models.AutoField | models.BigAutoField):
            continue
        columns.append(qn(field.column))
        source = f"{alias}.{qn(field.column)}"
        if field.primary_key and isinstance(field, models.UUIDField):
            values.append(new_uuid(vendor))
        elif isinstance(field, models.DateTimeField) and value is not None and value.year < 9999:
            values.append(shifted(vendor, source))
        else:
            values.append(source)
    return ", ".join(columns), ", ".join(values)


def deferred(count: int) -> int:
    """Enqueue `count` no-op tasks due in a day, spread over every priority the system takes."""
    from datetime import timedelta

    from django.utils import timezone

    from benchmarks.tasks import noop

    run_after = timezone.now() + timedelta(days=1)
    backend = noop.get_backend()
    priorities = list(DEFERRED_PRIORITIES) if backend.supports_priority else [0]
    enqueue_many = bulk_enqueuer()
    each, rest = divmod(count, len(priorities))
    for index, priority in enumerate(priorities):
        n = each + (1 if index < rest else 0)
        if n:
            task = noop.using(priority=priority, run_after=run_after, queue_name=DEFERRED_QUEUE)
            enqueue_many(task, n)
    return count


def history(rows: int, deferred_count: int = 0) -> dict[str, Any]:
    """Copy the one finished task (and its child rows) into `rows` finished history tasks;
    then enqueue `deferred_count` deferred ones."""
    from django.db import connection

    model = task_model()
    template = model.objects.get()
    vendor = connection.vendor
    qn = connection.ops.quote_name
    table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
    with_sql, from_sql = series_sql(vendor)
    columns, values = copy_columns(model, template, vendor=vendor, alias="tpl")
    sql = (
        f"INSERT INTO {table} ({columns}) {with_sql}SELECT {values} "
        f"FROM {from_sql} CROSS JOIN {table} AS tpl WHERE tpl.{pk} = %(pk)s"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if vendor == "mysql":
            cursor.execute("SET SESSION max_recursive_iterations = %s", [HISTORY_CHUNK_ROWS + 1])
        for first in range(1, rows + 1, HISTORY_CHUNK_ROWS):
            last = min(first + HISTORY_CHUNK_ROWS - 1, rows)
            cursor.execute(sql, {"first": first, "last": last, "pk": db_pk(model, template)})
        children = copy_children(model, template, cursor)
    waiting = deferred(deferred_count)
    return {
        "rows": rows,
        "children": children,
        "deferred": waiting,
        "seconds": time.perf_counter() - started,
    }


def db_pk(model: Any, row: Any) -> Any:
    """A row's primary key as the database driver takes it (UUIDs are text on SQLite)."""
    from django.db import connection

    return model._meta.pk.get_db_prep_value(row.pk, connection)


def copy_children(model: Any, template: Any, cursor: Any) -> dict[str, int]:
    """Give every history task a copy of each row that points at the template task."""
    from django.db import connection

    qn = connection.ops.quote_name
    table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
    copied: dict[str, int] = {}
    for relation in model._meta.related_objects:
        child = relation.related_model
        fk = relation.field
        for row in child.objects.filter(**{fk.name: template.pk}):
            columns, values = [], []
            for field in child._meta.concrete_fields:
                if field.primary_key and not field.is_relation:
                    continue
                columns.append(qn(field.column))
                values.append(f"t.{pk}" if field is fk else f"c.{qn(field.column)}")
            child_table, child_pk = qn(child._meta.db_table), qn(child._meta.pk.column)
            cursor.execute(
                f"INSERT INTO {child_table} ({', '.join(columns)}) "
                f"SELECT {', '.join(values)} FROM {table} AS t CROSS JOIN {child_table} AS c "
                f"WHERE c.{child_pk} = %s AND t.{pk} <> %s",
                [db_pk(child, row), db_pk(model, template)],
            )
            copied[child._meta.db_table] = copied.get(child._meta.db_table, 0) + cursor.rowcount
    return copied


# -- command line -------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.driver")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("enqueue")
    one.add_argument("--count", type=int, required=True)
    one.add_argument("--bulk", action="store_true")
    one.add_argument("--warmup", type=int, default=20)
    one.add_argument("--count-sql", action="store_true")
    one.add_argument("--task", choices=ENQUEUED_TASKS, default="noop")
    lat = commands.add_parser("latency")
    lat.add_argument("--count", type=int, required=True)
    # Random over a whole 1 s polling period, so that arrivals meet a polling worker at
    # every phase of its cycle instead of just after it looked.
    lat.add_argument("--pause-min", type=float, default=0.05)
    lat.add_argument("--pause-max", type=float, default=1.05)
    lat.add_argument("--timeout", type=float, default=10.0)
    lat.add_argument("--stamp-file", required=True)
    hist = commands.add_parser("history")
    hist.add_argument("--rows", type=int, required=True)
    hist.add_argument("--deferred", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse(sys.argv[1:] if argv is None else argv)
    setup()
    if options.command == "enqueue":
        result = enqueue(
            options.count,
            bulk=options.bulk,
            warmup=options.warmup,
            count_sql=options.count_sql,
            task=options.task,
        )
    elif options.command == "latency":
        result = latency(
            options.count,
            pause_min=options.pause_min,
            pause_max=options.pause_max,
            timeout=options.timeout,
            stamp_file=options.stamp_file,
        )
    else:
        result = history(options.rows, options.deferred)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
