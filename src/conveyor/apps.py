from __future__ import annotations

from django.apps import AppConfig


class ConveyorConfig(AppConfig):
    name = "conveyor"
    verbose_name = "Conveyor tasks"
    default_auto_field = "django.db.models.BigAutoField"
