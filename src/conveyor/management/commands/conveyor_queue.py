"""manage.py conveyor_queue: pause, resume or list the paused queues of a backend."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management import BaseCommand, CommandError

from conveyor.backend import DatabaseBackend
from conveyor.management.backends import database_backend


class Command(BaseCommand):
    help = (
        "Pause a queue (no worker claims its tasks, within a second; enqueueing goes on and "
        "running tasks finish), resume it, or list the paused queues. The state is in the "
        "database: it survives restarts and holds for every worker."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["pause", "resume", "list"])
        parser.add_argument("queue", nargs="?", metavar="NAME", help="The queue to act on.")
        parser.add_argument(
            "--backend",
            default="default",
            metavar="ALIAS",
            help="The TASKS alias whose queue it is (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = database_backend(options["backend"])
        action, queue = options["action"], options["queue"]
        if action == "list":
            if queue is not None:
                raise CommandError("'list' takes no queue name")
            self.list(backend)
            return
        if queue is None:
            raise CommandError(f"'{action}' needs the name of a queue")
        if backend.queues and queue not in backend.queues:
            raise CommandError(
                f"Queue {queue!r} is not in TASKS[{backend.alias!r}]['QUEUES'] "
                f"({', '.join(sorted(backend.queues))})"
            )
        if action == "pause":
            changed = backend.store.pause_queue(queue)
            self.stdout.write(f"Paused queue {queue!r}" if changed else f"{queue!r} was paused")
        else:
            changed = backend.store.resume_queue(queue)
            self.stdout.write(
                f"Resumed queue {queue!r}" if changed else f"{queue!r} was not paused"
            )

    def list(self, backend: DatabaseBackend) -> None:
        paused = backend.store.paused_queues()
        if not paused:
            self.stdout.write("No paused queues")
        for name, since in paused.items():
            self.stdout.write(f"{name}  paused since {since.isoformat(timespec='seconds')}")
