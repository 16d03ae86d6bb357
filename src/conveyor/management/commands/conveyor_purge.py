"""manage.py conveyor_purge: delete old results, or READY tasks nobody ran."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management import BaseCommand, CommandError

from conveyor import durations
from conveyor.management.arguments import duration, positive_int
from conveyor.management.backends import database_backend


class Command(BaseCommand):
    help = (
        "Delete finished task results (SUCCESSFUL or FAILED, with their attempts) that "
        "finished before a cut-off, or READY tasks enqueued before it. The cut-off defaults "
        "to OPTIONS['purge'] of the backend."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "which",
            choices=["finished", "unfinished"],
            help="'finished': old results; 'unfinished': READY tasks enqueued long ago.",
        )
        parser.add_argument(
            "--backend",
            default="default",
            metavar="ALIAS",
            help="The TASKS alias to purge (default: %(default)s).",
        )
        parser.add_argument(
            "--before",
            type=duration,
            metavar="DURATION",
            help="Age cut-off, e.g. '10 days', '12 hours', 'P10D' or seconds "
            "(default: OPTIONS['purge'][WHICH]).",
        )
        parser.add_argument(
            "--limit", type=positive_int, metavar="N", help="Delete at most N tasks."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backend = database_backend(options["backend"])
        which = options["which"]
        older_than = options["before"]
        if older_than is None:
            older_than = getattr(backend.config.purge, which)
        if older_than is None:
            raise CommandError(
                f"No cut-off: pass --before or set TASKS[{backend.alias!r}]"
                f"['OPTIONS']['purge'][{which!r}]"
            )
        store, finished = backend.store, which == "finished"
        age = durations.describe(older_than)
        if options["dry_run"]:
            count = store.count_purgeable(finished=finished, older_than=older_than)
            count = min(count, options["limit"] or count)
            self.stdout.write(f"Would delete {count} {which} task(s) older than {age}.")
            return
        deleted = store.purge(finished=finished, older_than=older_than, limit=options["limit"])
        self.stdout.write(f"Deleted {deleted} {which} task(s) older than {age}.")
