from __future__ import annotations

from django.apps import AppConfig


class MessageCenterConfig(AppConfig):
    name = "messagecenter"
    verbose_name = "Message center"
