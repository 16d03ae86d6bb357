"""The systems compared: how each is installed, configured and started.

Each runs with its package defaults except where noted: logging is off (verbosity 0) for
every worker, so the figures measure the queue rather than a log handler, and
django-tasks-db's random start-up delay of up to a second is turned off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONVEYOR = "conveyor"
TASKS_DB = "django-tasks-db"
OX = "django-ox"
CELERY_REDIS = "celery-redis"
CELERY_RABBITMQ = "celery-rabbitmq"


@dataclass(frozen=True)
class System:
    name: str
    requirement: str  # what the benchmark environment installs; "" for this repository
    app: str
    backend: str
    label: str  # the Django app label, which prefixes every table of the system
    table: str
    worker_command: str
    base_args: tuple[str, ...] = ()
    # Run every task that is due, then exit: used to finish the history template row.
    batch_args: tuple[str, ...] = ()
    vendors: frozenset[str] = field(
        default_factory=lambda: frozenset({"sqlite", "postgresql", "mariadb"})
    )
    bulk_api: str = ""  # the bulk enqueue the system offers, as the report names it
    broker: str = ""  # Celery's broker; "" for the systems whose queue is the database
    # Pass --concurrency and --processes even at 1: conveyor's defaults are larger, and a
    # variant labelled "1 worker process" must stay one slot in one process.
    explicit_sizes: bool = False

    @property
    def is_celery(self) -> bool:
        return bool(self.broker)

    @property
    def slug(self) -> str:
        """The system's name as a database identifier."""
        return self.name.replace("-", "_")

    def worker_argv(self, *, concurrency: int | None = 1, processes: int | None = 1) -> list[str]:
        """A worker's management command line (without the interpreter and manage.py);
        None leaves a size to the worker's default."""
        argv = [self.worker_command, "--verbosity", "0", *self.base_args]
        if concurrency is not None and (concurrency > 1 or self.explicit_sizes):
            argv += ["--concurrency", str(concurrency)]
        if processes is not None and (processes > 1 or self.explicit_sizes):
            argv += ["--processes", str(processes)]
        return argv


SYSTEMS: dict[str, System] = {
    system.name: system
    for system in (
        System(
            name=CONVEYOR,
            requirement="",
            app="conveyor",
            label="conveyor",
            backend="conveyor.backend.DatabaseBackend",
            table="conveyor_task",
            worker_command="conveyor_worker",
            batch_args=("--oneshot",),
            bulk_api="conveyor.enqueue_many()",
            explicit_sizes=True,
        ),
        System(
            name=TASKS_DB,
            requirement="django-tasks-db",
            app="django_tasks_db",
            label="django_tasks_database",
            backend="django_tasks_db.DatabaseBackend",
            table="django_tasks_database_dbtaskresult",
            worker_command="db_worker",
            base_args=("--no-startup-delay",),
            batch_args=("--batch",),
            bulk_api="enqueue() in one transaction (no bulk API)",
        ),
        System(
            name=OX,
            requirement="django-ox",
            app="django_ox",
            label="django_ox",
            backend="django_ox.backend.OxBackend",
            table="django_ox_oxtask",
            worker_command="ox_worker",
            batch_args=("--batch",),
            bulk_api="django_ox.bulk.enqueue_many()",
        ),
        *(
            System(
                name=f"celery-{broker}",
                requirement="celery[redis]",
                app="",
                label="",
                backend="",
                table="",
                worker_command="celery worker",
                bulk_api="delay() in a loop (no bulk API)",
                broker=broker,
            )
            for broker in ("redis", "rabbitmq")
        ),
    )
}


def system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(
            f"unknown system {name!r} (expected one of {', '.join(SYSTEMS)})"
        ) from None
