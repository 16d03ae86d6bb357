"""Settings of the operations scripts: conveyor and the admin on a database of their own.

CONVEYOR_OPERATIONS_DATABASE picks the vendor (postgresql by default) and
CONVEYOR_OPERATIONS_DATABASE_NAME the database, which the scripts create if it is missing.
CONVEYOR_OPERATIONS_OPTIONS (JSON) is merged into the backend's OPTIONS.
"""

from __future__ import annotations

import json
import os

from tests.databases import database_settings

SECRET_KEY = "scripts-only-not-secret"
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
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "scripts.operations_urls"
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

VENDOR = os.environ.get("CONVEYOR_OPERATIONS_DATABASE", "postgresql")
DATABASES = {"default": database_settings(VENDOR)}
DATABASES["default"]["NAME"] = os.environ.get(
    "CONVEYOR_OPERATIONS_DATABASE_NAME",
    "/tmp/conveyor-operations.sqlite3" if VENDOR == "sqlite" else "conveyor_operations",
)

TASKS = {
    "default": {
        "BACKEND": "conveyor.backend.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
        "OPTIONS": {
            "purge": {"finished": "7 days", "unfinished": "30 days"},
            **json.loads(os.environ.get("CONVEYOR_OPERATIONS_OPTIONS", "{}")),
        },
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"conveyor": {"handlers": ["console"], "level": "WARNING"}},
}
