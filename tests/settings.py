"""Settings of the test suite; the database comes from CONVEYOR_TEST_DATABASE."""

from __future__ import annotations

import json
import os

from tests.databases import database_settings, selected

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "conveyor",
    "tests.tasksapp.apps.TasksAppConfig",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": database_settings(selected())}
if "CONVEYOR_DATABASE_NAME" in os.environ:
    # Worker processes started by a test use the test's database.
    DATABASES["default"]["NAME"] = os.environ["CONVEYOR_DATABASE_NAME"]

TASKS = {
    "default": {
        "BACKEND": "conveyor.backend.DatabaseBackend",
        "QUEUES": ["default", "low_priority", "other"],
        "OPTIONS": {
            "max_attempts": 1,
            "backoff_factor": 0,
            "queues": {"low_priority": {"max_attempts": 3}},
            "purge": {"finished": "10 days", "unfinished": "20 days"},
        },
    }
}

# Worker processes started by a test may get other OPTIONS (short heartbeats, retries).
TASKS["default"]["OPTIONS"] = {
    **TASKS["default"]["OPTIONS"],  # type: ignore[dict-item]
    **json.loads(os.environ.get("CONVEYOR_TASKS_OPTIONS", "{}")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # A test that waits for a worker's log line asks its process for more.
    "loggers": {
        "conveyor": {
            "handlers": ["console"],
            "level": os.environ.get("CONVEYOR_TEST_LOG_LEVEL", "WARNING"),
        }
    },
}

# The messagecenter demo (tests/demo) runs on this suite's databases: its app, its static
# files, and the ntfy endpoint a test serves, which worker processes get from the environment.
INSTALLED_APPS += ["django.contrib.staticfiles", "messagecenter"]
STATIC_URL = "static/"
NTFY_URL = os.environ.get("NTFY_URL", "")
