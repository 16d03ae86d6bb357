"""Settings of the reliability scripts (chaos, soak) and of the workers they start.

CONVEYOR_RELIABILITY_DATABASE picks the vendor (sqlite, postgresql, mariadb),
CONVEYOR_RELIABILITY_DATABASE_NAME the database (a file path for SQLite), and
CONVEYOR_RELIABILITY_OPTIONS (JSON) the backend's OPTIONS. Servers and ports come from the
variables of tests.databases (CONVEYOR_PG_PORT, CONVEYOR_MYSQL_PORT, ...), which is how a
worker is pointed at a fault-injecting proxy.
"""

from __future__ import annotations

import json
import os

from django.apps import AppConfig

from tests.databases import database_settings


class TasksApp(AppConfig):
    """The suite's task app (its tasks and Execution model) without the signal receivers that
    write an Execution row per task_started/task_finished: the scripts count only the rows
    their tasks write, and a noop task must not touch the database."""

    name = "tests.tasksapp"
    label = "tasksapp"
    default_auto_field = "django.db.models.BigAutoField"


SECRET_KEY = "reliability-scripts-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["conveyor", "scripts.reliability_settings.TasksApp"]

VENDOR = os.environ.get("CONVEYOR_RELIABILITY_DATABASE", "postgresql")
DATABASES = {"default": database_settings(VENDOR)}
DATABASES["default"]["NAME"] = os.environ.get(
    "CONVEYOR_RELIABILITY_DATABASE_NAME",
    "/tmp/conveyor-reliability.sqlite3" if VENDOR == "sqlite" else "reliability",
)

TASKS = {
    "default": {
        "BACKEND": "conveyor.backend.DatabaseBackend",
        "QUEUES": ["default", "low_priority"],  # every queue of the tasks in tests.tasksapp
        "OPTIONS": json.loads(os.environ.get("CONVEYOR_RELIABILITY_OPTIONS", "{}")),
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {"conveyor": {"handlers": ["console"], "level": "WARNING"}},
}
