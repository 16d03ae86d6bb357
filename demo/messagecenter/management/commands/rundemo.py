"""manage.py rundemo: migrate, then run the web app and a conveyor worker together."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, CommandError, call_command
from django.urls import reverse

from messagecenter import superuser
from messagecenter.launcher import Address, Launcher, address


class Command(BaseCommand):
    help = (
        "Apply migrations and create the admin's demo user on the first run, then run "
        "Django's development server and a conveyor worker together until Ctrl-C or SIGTERM, "
        "which stops both."
    )
    # The children check the project; this command only starts them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            type=address,
            default=Address(host="127.0.0.1", port=8000),
            metavar="[HOST:]PORT",
            help="Where the web app listens (default: 127.0.0.1:8000).",
        )
        parser.add_argument(
            "--noreload",
            action="store_false",
            dest="reload",
            help="Do not restart the web server when code changes (the worker never does).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=options["verbosity"])
        if superuser.ensure_superuser():
            self.stdout.write(f"Created the admin's superuser {superuser.USERNAME}.")
        launcher = Launcher(
            options["addrport"],
            reload=options["reload"],
            ntfy_url=settings.NTFY_URL,
            admin_path=reverse("admin:index"),
            write=self.stdout.write,
        )
        exited = launcher.run()
        if exited is not None:
            raise CommandError(
                f"The {exited.name} exited with status {exited.exit_status()}; stopped the demo."
            )
        self.stdout.write("Stopped.")
