"""Django settings of every benchmark process; the system and database come from the
environment (BENCH_SYSTEM, BENCH_VENDOR, BENCH_DB), set by the harness."""

from __future__ import annotations

import json
import os

from benchmarks.databases import django_settings
from benchmarks.systems import system

SYSTEM = system(os.environ.get("BENCH_SYSTEM", "conveyor"))

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["django.contrib.contenttypes", SYSTEM.app]

DATABASES = {
    "default": django_settings(
        os.environ.get("BENCH_VENDOR", "sqlite"),
        os.environ.get("BENCH_DB", "/tmp/conveyor-bench.sqlite3"),
    )
}

# "deferred" holds the history case's tasks due in a day; drains wait for "default" only.
TASKS = {"default": {"BACKEND": SYSTEM.backend, "QUEUES": ["default", "deferred"]}}
if os.environ.get("BENCH_TASKS_OPTIONS"):
    # benchmarks.schedules gives the worker OPTIONS (its periodic schedules).
    TASKS["default"]["OPTIONS"] = json.loads(os.environ["BENCH_TASKS_OPTIONS"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    # Django logs every task's state changes at INFO from its signal receivers; some systems
    # send those signals, others not. Workers run with logging off, so these are off too.
    "loggers": {"django.tasks": {"level": "WARNING"}},
}

if os.environ.get("BENCH_SQL_COUNT_DIR"):
    from benchmarks import sqlcount

    sqlcount.install(os.environ["BENCH_SQL_COUNT_DIR"])
