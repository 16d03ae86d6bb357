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
from django.db import InterfaceError, OperationalError

from conveyor.management.arguments import milliseconds, positive_int, seconds
from conveyor.management.backends import database_backend
from conveyor.store import QueueFilter
from conveyor.store.base import WorkerIdInUse
from conveyor.worker.identity import make_identity
from conveyor.worker.loop import Worker, WorkerSettings
from conveyor.worker.supervisor import SLOT_ENVIRONMENT_VARIABLE, Supervisor, child_command

logger = logging.getLogger("conveyor.worker")

CHECK_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
LOG_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


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
            default=1,
            metavar="N",
            help="Run up to N tasks at once: sync tasks on threads, async tasks on one event "
            "loop (default: %(default)s).",
        )
        parser.add_argument(
            "--processes",
            "-p",
            type=positive_int,
            default=1,
            metavar="P",
            help="Run P worker processes under a supervisor that replaces any that dies "
            "(default: %(default)s).",
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
            "--shutdown-timeout",
            type=seconds,
            default=timedelta(seconds=30),
            metavar="S",
            help="On SIGTERM or SIGINT, how long running tasks may take to finish before they are "
            "recorded as interrupted, in seconds (default: 30).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = database_backend(options["backend"])
        settings = self.worker_settings(backend.alias, backend.queues, options)
        if options["processes"] > 1:
            if options["oneshot"]:
                raise CommandError("--oneshot runs in one process; drop --processes")
            sys.exit(Supervisor(child_command(sys.orig_argv), options["processes"]).run())
        configure_logging(options["verbosity"])
        check_when_reachable(self)
        worker = Worker(backend.store, make_identity(worker_id(options["worker_id"])), settings)
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
            concurrency=options["concurrency"],
            delay_min=options["delay_min"],
            delay_max=options["delay_max"],
            oneshot=options["oneshot"],
            shutdown_timeout=options["shutdown_timeout"],
        )


def check_when_reachable(command: BaseCommand) -> None:
    """Run the system checks, waiting (one log line) while the database cannot be reached."""
    delay = iter(CHECK_RETRY_SECONDS)
    seconds = next(delay)
    while True:
        try:
            command.check()
        except (OperationalError, InterfaceError) as exc:
            if seconds == CHECK_RETRY_SECONDS[0]:
                logger.error("Database unavailable; the worker waits for it: %s", first_line(exc))
            try:
                time.sleep(seconds)
            except KeyboardInterrupt:
                raise SystemExit(1) from None
            seconds = next(delay, CHECK_RETRY_SECONDS[-1])
        else:
            return


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def worker_id(explicit: str | None) -> str | None:
    slot = os.environ.get(SLOT_ENVIRONMENT_VARIABLE)
    if explicit and slot is not None:
        return f"{explicit}-{slot}"
    return explicit


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
