from __future__ import annotations

from django.apps import AppConfig


class ConveyorConfig(AppConfig):
    name = "conveyor"
    verbose_name = "Conveyor tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from conveyor.store.cascade import cascade_in_database

        post_migrate.connect(cascade_in_database, sender=self)
