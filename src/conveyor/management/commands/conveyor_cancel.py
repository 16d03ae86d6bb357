"""manage.py conveyor_cancel: cancel tasks by result id, running ones included."""

from __future__ import annotations

import argparse
import getpass
from argparse import ArgumentParser
from typing import Any

from django.core.management import BaseCommand, CommandError

from conveyor.backend import MAX_RESULT_ID_DIGITS
from conveyor.cancellation import CancelAnswer, cancel_tasks, status_of
from conveyor.management.backends import database_backend


def result_id(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > MAX_RESULT_ID_DIGITS:
        raise argparse.ArgumentTypeError(f"expected a result id (digits), got {value!r}")
    return int(value)


class Command(BaseCommand):
    help = (
        "Cancel tasks by result id. A READY task ends FAILED with TaskCancelled at once; a "
        "RUNNING one is stopped by its worker, which learns of it within a second on "
        "PostgreSQL and within a heartbeat interval elsewhere. Prints what happened to each; "
        "exits 1 if an id names no task."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("ids", nargs="+", type=result_id, metavar="ID", help="Result ids.")
        parser.add_argument(
            "--backend",
            default="default",
            metavar="ALIAS",
            help="The TASKS alias of the tasks (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        store = database_backend(options["backend"]).store
        done = cancel_tasks(store, options["ids"], by=f"command:{getpass.getuser()}")
        answers = dict.fromkeys(done.cancelled, CancelAnswer.CANCELLED)
        answers.update(dict.fromkeys(done.requested, CancelAnswer.REQUESTED))
        missing = [pk for pk in done.refused if status_of(store, pk) is None]
        answers.update({pk: CancelAnswer.FINISHED for pk in done.refused if pk not in missing})
        for pk in sorted(answers):
            self.stdout.write(f"Task {pk}: {answers[pk]}")
        if missing:
            raise CommandError(f"No task with id {', '.join(map(str, missing))}")
