from __future__ import annotations

from django.db import models


class Execution(models.Model):
    """One run of a test task, written by the task itself: proves how often each task ran."""

    result_id = models.CharField(max_length=32)
    attempt = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.result_id}#{self.attempt}"
