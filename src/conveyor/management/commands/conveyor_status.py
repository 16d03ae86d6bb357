"""manage.py conveyor_status: queues and workers of conveyor backends, or a health check."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser
from django.db import DatabaseError

from conveyor.failures import first_line
from conveyor.management.arguments import duration, non_negative_int
from conveyor.management.backends import database_backends
from conveyor.readiness import NotMigrated, require_migrated
from conveyor.status import (
    BackendState,
    ScheduleState,
    as_json,
    backend_state,
    human_duration,
    problems,
)

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
ZERO = timedelta(0)

HELP = """\
Show, per backend and queue, how many tasks are in each status, how long the oldest due
READY task has waited, how many tasks finished and failed in the last minute and hour, and
which workers are live or dead. Ages are judged on the database clock; a worker is live when
its last heartbeat is within the backend's worker_timeout. Paused queues are listed, and
so are the schedules of OPTIONS['periodic'] (and those gone from it that left ticks) with
their last tick, its task's status, and their next tick.

--check turns the command into a health probe for containers and monitoring. It exits 0 and
prints "OK" when healthy, and exits 1 with a one-line reason on stderr when:
  - a queue has due tasks and no live worker serves it, or
  - with --max-age, a queue's oldest due task has waited longer than that, or
  - with --max-stuck, a live worker has more threads stuck in tasks past their timeout, or
  - the database cannot be reached.
Deferred tasks that are not due yet never make a backend unhealthy. --check reads only the
due tasks and the worker registry, never the whole history, so it stays cheap on big tables.
"""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Keep the paragraphs and the list of --check conditions as written.
        return super().create_parser(
            prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs
        )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            metavar="ALIAS",
            help="Report only this TASKS alias (default: every conveyor backend).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print JSON for machines instead of a table."
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Health probe: exit 0 when healthy, 1 with a one-line reason when not.",
        )
        parser.add_argument(
            "--max-age",
            type=duration,
            metavar="DURATION",
            help="Unhealthy when the oldest due task has waited longer, e.g. '5 minutes', "
            "'90' (seconds) or 'PT5M'.",
        )
        parser.add_argument(
            "--max-stuck",
            type=non_negative_int,
            metavar="N",
            help="Unhealthy when a live worker has more than N threads stuck in sync tasks "
            "past their timeout.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backends = database_backends(options["backend"])
        try:
            states = [
                backend_state(
                    backend.store,
                    configured_queues=set(backend.queues),
                    counts=not options["check"] or options["json"],
                )
                for backend in backends
            ]
        except DatabaseError as exc:
            reason = diagnose(exc, [backend.store.using for backend in backends])
            if not options["check"]:
                raise CommandError(f"Cannot read the database: {reason}") from exc
            self.unhealthy(reason)
        found = [
            line
            for state in states
            for line in problems(state, max_age=options["max_age"], max_stuck=options["max_stuck"])
        ]
        if options["json"]:
            document = {
                "healthy": not found,
                "problems": found,
                "backends": [as_json(s) for s in states],
            }
            self.stdout.write(json.dumps(document, indent=2))
        elif options["check"]:
            if not found:
                self.stdout.write(f"OK: {summary(states)}")
        else:
            for state in states:
                self.stdout.write(render(state))
            for line in found:
                self.stdout.write(self.style.WARNING(f"problem: {line}"))
        if options["check"] and found:
            self.unhealthy("; ".join(found), echo=not options["json"])

    def unhealthy(self, reason: str, *, echo: bool = True) -> NoReturn:
        if echo:
            self.stderr.write(f"UNHEALTHY: {reason}")
        sys.exit(EXIT_UNHEALTHY)


def diagnose(exc: DatabaseError, databases: list[str]) -> str:
    """Why the state could not be read: tables not migrated yet, or the database itself."""
    for using in dict.fromkeys(databases):
        try:
            require_migrated(using)
        except NotMigrated as missing:
            return str(missing)
        except DatabaseError:
            break
    return f"database unreachable: {first_line(exc)}"


def summary(states: list[BackendState]) -> str:
    parts = []
    for state in states:
        due = sum(q.due for q in state.queues)
        live = sum(w.alive for w in state.workers)
        parts.append(f"backend={state.backend} due={due} live_workers={live}")
    return "; ".join(parts)


QUEUE_COLUMNS = (
    "QUEUE",
    "READY",
    "DUE",
    "OLDEST DUE",
    "RUNNING",
    "SUCCESSFUL",
    "FAILED",
    "FINISHED 1M",
    "FAILED 1M",
    "FINISHED 1H",
    "FAILED 1H",
    "LIVE WORKERS",
    "DEAD WORKERS",
)
LIMIT_COLUMNS = ("CONCURRENCY KEY", "LIMIT", "HOLDING", "RUNNING", "WAITING")
RATE_COLUMNS = ("RATE KEY", "LIMIT", "PER", "STARTS IN WINDOW", "NEXT WINDOW", "WAITING")
SCHEDULE_COLUMNS = ("SCHEDULE", "TASK", "WHEN", "LAST TICK", "LAST STATUS", "NEXT TICK")
WORKER_COLUMNS = (
    "WORKER",
    "HOST",
    "PID",
    "QUEUES",
    "STARTED",
    "LAST HEARTBEAT",
    "STATE",
    "STUCK",
)


def render(state: BackendState) -> str:
    """A backend's state as readable text: a queue table, then a worker table."""
    when = state.database_time.strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [f"Backend {state.backend!r} (database {state.database!r}, {when})", ""]
    rows = [
        [
            q.queue,
            q.counts["READY"],
            q.due,
            "-" if q.oldest_due_age is None else human_duration(q.oldest_due_age),
            q.counts["RUNNING"],
            q.counts["SUCCESSFUL"],
            q.counts["FAILED"],
            q.finished_last_minute,
            q.failed_last_minute,
            q.finished_last_hour,
            q.failed_last_hour,
            q.live_workers,
            q.dead_workers,
        ]
        for q in state.queues
    ]
    lines += table(QUEUE_COLUMNS, rows) if rows else ["No queues and no tasks."]
    paused = [q for q in state.queues if q.paused_since is not None]
    lines += [f"Paused: {q.queue} (since {q.paused_since:%Y-%m-%d %H:%M:%S})" for q in paused]
    lines.append("")
    if state.schedules:
        lines += table(SCHEDULE_COLUMNS, [schedule_row(s) for s in state.schedules])
        lines.append("")
    if state.slots:
        slots = [[s.key, s.limit, s.holding, s.running, s.waiting] for s in state.slots]
        lines += table(LIMIT_COLUMNS, slots)
        lines.append("")
    if state.rates:
        rates = [
            [
                r.key,
                r.limit,
                human_duration(r.period),
                r.starts,
                f"{r.next_window:%H:%M:%S}",
                r.waiting,
            ]
            for r in state.rates
        ]
        lines += table(RATE_COLUMNS, rates)
        lines.append("")
    workers = [
        [
            w.worker_id,
            w.host,
            w.pid,
            served(w.queues, w.excluded_queues),
            w.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{human_duration(max(state.database_time - w.last_heartbeat_at, ZERO))} ago",
            "live" if w.alive else "dead",
            w.stuck_threads,
        ]
        for w in state.workers
    ]
    lines += table(WORKER_COLUMNS, workers) if workers else ["No workers registered."]
    lines.append("")
    return "\n".join(lines)


def schedule_row(schedule: ScheduleState) -> list[str]:
    """A schedule's row: a gone one says so where its timing was."""

    def moment(value: datetime | None) -> str:
        return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")

    status = schedule.last_status or ("-" if schedule.last_tick is None else "deleted")
    return [
        schedule.name,
        schedule.task_path or "-",
        "gone from settings" if schedule.when is None else schedule.when,
        moment(schedule.last_tick),
        status,
        moment(schedule.next_tick),
    ]


def served(queues: list[str], excluded: list[str]) -> str:
    """'a,b', '*', or '* except c'."""
    text = ",".join(queues) or "*"
    return f"{text} except {','.join(excluded)}" if excluded and not queues else text


def table(headers: tuple[str, ...], rows: list[list[Any]]) -> list[str]:
    """Columns aligned: text to the left, numbers to the right."""
    cells = [list(headers), *([str(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    return [
        "  ".join(
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    ]
