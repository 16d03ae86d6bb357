"""Settings of the messagecenter demo: SQLite, conveyor's DatabaseBackend, one ntfy topic."""

from __future__ import annotations

import os
from pathlib import Path

from messagecenter.ntfy import topic_url

BASE_DIR = Path(__file__).resolve().parent.parent

# A demo that runs on one machine: never deploy these settings.
SECRET_KEY = "messagecenter-demo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    # The admin shows every task, its attempts and tracebacks, and the workers.
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "conveyor",
    "messagecenter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "messagecenter.urls"
WSGI_APPLICATION = "messagecenter.wsgi.application"
STATIC_URL = "static/"

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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("MESSAGECENTER_SQLITE_PATH", BASE_DIR / "messagecenter.sqlite3"),
        # WAL lets the web app read while the worker writes.
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }
}

TASKS = {
    "default": {
        "BACKEND": "conveyor.backend.DatabaseBackend",
        # A failed notification is tried twice more, 2 s and then 4 s later.
        "OPTIONS": {"max_attempts": 3, "backoff_factor": 2},
    }
}

# The ntfy topic notifications go to: NTFY_URL, or a random ntfy.sh topic kept in demo/.ntfy-topic.
NTFY_URL = topic_url(os.environ, topic_file=BASE_DIR / ".ntfy-topic")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "conveyor": {"handlers": ["console"], "level": "INFO"},
        "messagecenter": {"handlers": ["console"], "level": "INFO"},
    },
}
