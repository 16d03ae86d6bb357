"""Paused queues: a row per paused queue of a backend; the claim leaves their tasks alone.

The claim statements are not changed: the queue filter a worker claims with is narrowed by
the paused set before it reaches them. Each process reads that set at most once a second
(on PostgreSQL a NOTIFY from pause and resume makes listening workers read it at once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from conveyor.models import PausedQueue, TaskRecord
from conveyor.store.transitions import Transitions
from conveyor.store.values import Outcome, QueueFilter, Written

logger = logging.getLogger(__name__)

# How long a process trusts the paused set it read.
PAUSED_CACHE = timedelta(seconds=1)


class PausedQueues(Transitions):
    _paused_read: tuple[float, frozenset[str]] | None = None

    def pause_queue(self, queue_name: str) -> bool:
        try:
            with transaction.atomic(using=self.using):
                self.paused_rows().create(backend_name=self.backend_name, queue_name=queue_name)
        except IntegrityError:
            return False  # already paused
        logger.info("Queue=%s of backend=%s paused", queue_name, self.backend_name)
        self.queues_changed()
        return True

    def resume_queue(self, queue_name: str) -> bool:
        deleted, _ = self.paused_rows().filter(queue_name=queue_name).delete()
        if not deleted:
            return False
        logger.info("Queue=%s of backend=%s resumed", queue_name, self.backend_name)
        self.queues_changed()
        return True

    def paused_queues(self) -> dict[str, datetime]:
        rows = self.paused_rows().order_by("queue_name")
        return dict(rows.values_list("queue_name", "paused_at"))

    def claim(self, *, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        claimable = self.unpaused(queues)
        if claimable is None:
            return []
        return super().claim(worker_id=worker_id, queues=claimable, limit=limit)

    def finish_and_claim(
        self, *, worker_id: str, outcomes: Sequence[Outcome], queues: QueueFilter, limit: int
    ) -> tuple[list[Written], list[TaskRecord]]:
        claimable = self.unpaused(queues)
        return super().finish_and_claim(
            worker_id=worker_id,
            outcomes=outcomes,
            queues=queues if claimable is None else claimable,
            limit=0 if claimable is None else limit,
        )

    def next_available_at(self, queues: QueueFilter) -> datetime | None:
        claimable = self.unpaused(queues)
        return None if claimable is None else super().next_available_at(claimable)

    def paused_rows(self) -> QuerySet[PausedQueue]:
        """This backend's paused queues."""
        return PausedQueue.objects.using(self.using).filter(backend_name=self.backend_name)

    def unpaused(self, queues: QueueFilter) -> QueueFilter | None:
        """The filter less the paused queues; None when nothing is left to claim from."""
        paused = self.paused_set()
        if not paused:
            return queues
        if queues.include is not None and not queues.include - queues.exclude - paused:
            return None
        return QueueFilter(include=queues.include, exclude=queues.exclude | paused)

    def paused_set(self) -> frozenset[str]:
        """The paused queue names, as read within PAUSED_CACHE."""
        read = self._paused_read
        now = time.monotonic()
        if read is None or now - read[0] > PAUSED_CACHE.total_seconds():
            names = frozenset(self.paused_rows().values_list("queue_name", flat=True))
            read = self._paused_read = (now, names)
        return read[1]

    def forget_paused(self) -> None:
        """Read the paused set again at the next claim."""
        self._paused_read = None

    def queues_changed(self) -> None:
        """Engine hook: tell other processes the paused set changed (PostgreSQL notifies)."""
        self.forget_paused()
