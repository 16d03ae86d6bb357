"""manage.py conveyor_worker: run tasks from the database until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from argparse import ArgumentParser
from datetime import timedelta
from types import FrameType
from typing import Any

from django.core.management import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError, OperationalError

from conveyor import observe
from conveyor.backend import DatabaseBackend
from conveyor.backoff import Backoff
from conveyor.columns import WORKER_ID_MAX_LENGTH
from conveyor.exceptions import WorkerIdInUse
from conveyor.failures import first_line
from conveyor.management.arguments import milliseconds, port, positive_int, seconds
from conveyor.management.backends import database_backend
from conveyor.periodic import scheduled_tasks
from conveyor.readiness import NotMigrated, require_migrated
from conveyor.schedules import ScheduleError
from conveyor.store import QueueFilter
from conveyor.worker.build import build_worker
from conveyor.worker.identity import make_identity
from conveyor.worker.loop import Worker, WorkerSettings
from conveyor.worker.pool import ASYNC_CONCURRENCY, ISOLATIONS, THREAD
from conveyor.worker.scheduler import Planned
from conveyor.worker.supervisor import SLOT_ENVIRONMENT_VARIABLE, Supervisor, child_command

logger = logging.getLogger("conveyor.worker")

CHECK_BACKOFF = Backoff((0.5, 1.0, 2.0, 5.0))
LOG_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}
# Thread slots without --concurrency: several times one slot's rate on short tasks, and few
# enough connections (the worker's own 5 + 16) for four workers under PostgreSQL's default
# max_connections of 100 (docs/worker.md#defaults).
DEFAULT_THREAD_SLOTS = 16


class Command(BaseCommand):
    # Run by handle() once the database answers: on MariaDB/MySQL the system checks connect,
    # and a worker started during an outage waits for the database instead of failing.
    requires_system_checks: list[str] = []

    help = (
        "Run tasks enqueued with conveyor's DatabaseBackend until stopped. "
        "SIGTERM or SIGINT stops claiming and lets running tasks finish; a second signal "
        "stops at once. Run as many workers as you like, on any number of machines."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            default="default",
            metavar="ALIAS",
            help="The TASKS alias whose tasks to run (default: %(default)s).",
        )
        parser.add_argument(
            "--queue",
            "-q",
            nargs="+",
            action="extend",
            default=[],
            metavar="NAME",
            help="Run only tasks of these queues (default: every queue of the backend).",
        )
        parser.add_argument(
            "--excluding",
            nargs="+",
            action="extend",
            default=[],
            metavar="NAME",
            help="Never run tasks of these queues.",
        )
        parser.add_argument(
            "--id",
            dest="worker_id",
            metavar="ID",
            help="This worker's id (default: host, pid and a random part, unique per process).",
        )
        parser.add_argument(
            "--oneshot",
            "-o",
            action="store_true",
            help="Run every task that is due now, then exit.",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=positive_int,
            default=None,
            metavar="N",
            help="Run up to N sync tasks at once, each on a thread (default: "
            f"{DEFAULT_THREAD_SLOTS}; with --isolation process, one child process per CPU this "
            "process may use). Each thread whose tasks use the ORM holds a database connection "
            "of its own.",
        )
        parser.add_argument(
            "--async-concurrency",
            type=positive_int,
            default=ASYNC_CONCURRENCY,
            metavar="N",
            help="Run up to N async tasks at once on the worker's event loop, besides the "
            "--concurrency threads (default: %(default)s).",
        )
        parser.add_argument(
            "--isolation",
            choices=ISOLATIONS,
            default=THREAD,
            help="Where sync tasks run: 'thread' (default), or 'process': a child process per "
            "slot, killed and replaced when a task passes its timeout or is cancelled.",
        )
        parser.add_argument(
            "--processes",
            "-p",
            type=positive_int,
            default=1,
            metavar="P",
            help="Run P worker processes under a supervisor that replaces any that dies "
            "(default: %(default)s). More processes help tasks that compute; each has its "
            "own --concurrency slots and connections.",
        )
        parser.add_argument(
            "--delay-min",
            type=milliseconds,
            default=timedelta(milliseconds=50),
            metavar="MS",
            help="Shortest idle wait between looks for due tasks, in ms (default: 50).",
        )
        parser.add_argument(
            "--delay-max",
            type=milliseconds,
            default=timedelta(seconds=1),
            metavar="MS",
            help="Longest idle wait, in ms; on PostgreSQL new tasks wake the worker sooner "
            "(default: 1000).",
        )
        parser.add_argument(
            "--no-schedule",
            action="store_true",
            help="Do not enqueue the ticks of OPTIONS['periodic'] schedules (by default every "
            "worker does, and each tick is enqueued once however many do).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=seconds,
            default=timedelta(seconds=30),
            metavar="S",
            help="On SIGTERM or SIGINT, how long running tasks may take to finish before they are "
            "recorded as interrupted, in seconds (default: 30).",
        )
        parser.add_argument(
            "--metrics-port",
            type=port,
            default=None,
            metavar="PORT",
            help="Serve Prometheus metrics on this port (needs django-conveyor[prometheus]; "
            "one process: not with --processes).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = database_backend(options["backend"])
        settings = self.worker_settings(backend.alias, backend.queues, options)
        if options["processes"] > 1:
            if options["oneshot"]:
                raise CommandError("--oneshot runs in one process; drop --processes")
            if options["metrics_port"] is not None:
                raise CommandError(
                    "--metrics-port serves one process's metrics; drop --processes, or run "
                    "one worker per port"
                )
            sys.exit(Supervisor(child_command(sys.orig_argv), options["processes"]).run())
        identity = make_identity(worker_id(options["worker_id"]))
        configure_logging(options["verbosity"])
        check_when_reachable(self)
        check_migrated(backend.store.using)
        if options["metrics_port"] is not None:
            serve_metrics(options["metrics_port"])
        # A oneshot run only drains what is due; it enqueues no ticks.
        scheduling = not options["no_schedule"] and not options["oneshot"]
        planned = planned_schedules(backend) if scheduling else {}
        worker = build_worker(
            backend.store,
            identity,
            settings,
            planned,
            timeout_of=backend.policies.timeout,
            isolation=options["isolation"],
        )
        install_signal_handlers(worker)
        try:
            status = worker.run()
        except WorkerIdInUse as exc:
            raise CommandError(str(exc)) from exc
        if status:
            sys.exit(status)

    def worker_settings(
        self, alias: str, configured: set[str], options: dict[str, Any]
    ) -> WorkerSettings:
        for name in options["queue"] + options["excluding"]:
            if configured and name not in configured:
                raise CommandError(
                    f"Queue {name!r} is not in TASKS[{alias!r}]['QUEUES'] "
                    f"({', '.join(sorted(configured))})"
                )
        if options["delay_min"] > options["delay_max"]:
            raise CommandError("--delay-min must not be greater than --delay-max")
        include = frozenset(options["queue"]) or frozenset(configured) or None
        exclude = frozenset(options["excluding"])
        if include is not None and not include - exclude:
            raise CommandError("--excluding leaves no queue to run")
        return WorkerSettings(
            queues=QueueFilter(include=include, exclude=exclude),
            concurrency=options["concurrency"] or default_concurrency(options["isolation"]),
            async_concurrency=options["async_concurrency"],
            delay_min=options["delay_min"],
            delay_max=options["delay_max"],
            oneshot=options["oneshot"],
            shutdown_timeout=options["shutdown_timeout"],
        )


def default_concurrency(isolation: str) -> int:
    """Slots without --concurrency: DEFAULT_THREAD_SLOTS threads, or with process isolation
    one child process per CPU this process may run on (each child imports the project)."""
    if isolation == THREAD:
        return DEFAULT_THREAD_SLOTS
    return usable_cpus()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def planned_schedules(backend: DatabaseBackend) -> dict[str, Planned]:
    """The backend's schedules with the row each tick inserts (the system checks have
    already refused schedules whose task does not resolve)."""
    try:
        tasks = scheduled_tasks(backend)
    except ScheduleError as exc:
        raise CommandError(str(exc)) from None
    return {
        name: Planned(schedule, tasks[name]) for name, schedule in backend.config.periodic.items()
    }


def serve_metrics(port: int) -> None:
    """Serve the metrics from this process; refuse when prometheus_client is missing."""
    module = observe.metrics()
    if module is None:
        raise CommandError(
            "--metrics-port needs prometheus_client: pip install 'django-conveyor[prometheus]'"
            " (and CONVEYOR_METRICS not False)"
        )
    module.serve(port)


def check_when_reachable(command: BaseCommand) -> None:
    """Run the system checks, waiting (one log line) while the database cannot be reached."""
    failures = 0
    while True:
        try:
            command.check()
        except (OperationalError, InterfaceError) as exc:
            if failures == 0:
                logger.error("Database unavailable; the worker waits for it: %s", first_line(exc))
            try:
                time.sleep(CHECK_BACKOFF.delay(failures))
            except KeyboardInterrupt:
                raise SystemExit(1) from None
            failures += 1
        else:
            return


def check_migrated(using: str) -> None:
    """CommandError when conveyor's migrations are not applied; a database that fails again
    meanwhile is left to the worker's outage handling."""
    try:
        require_migrated(using)
    except NotMigrated as exc:
        raise CommandError(str(exc)) from None
    except DatabaseError:
        return


def worker_id(explicit: str | None) -> str | None:
    """The --id of this process (with its slot under --processes); CommandError if it is
    empty or longer than the registry stores."""
    if explicit is None:
        return None
    if not explicit.strip():
        raise CommandError("--id must not be empty (leave it out for a generated id)")
    slot = os.environ.get(SLOT_ENVIRONMENT_VARIABLE)
    full = explicit if slot is None else f"{explicit}-{slot}"
    if len(full) > WORKER_ID_MAX_LENGTH:
        raise CommandError(
            f"--id is {len(full)} characters long{' with its slot' if slot else ''}; "
            f"at most {WORKER_ID_MAX_LENGTH} fit"
        )
    return full


def install_signal_handlers(worker: Worker) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def configure_logging(verbosity: int) -> None:
    """Show the worker's log on stderr unless the project configured conveyor's logger."""
    logger = logging.getLogger("conveyor")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LOG_LEVELS.get(verbosity, logging.DEBUG))
