"""Paused queues, on every database: no claim from them, enqueueing goes on, resume."""

from __future__ import annotations

import pytest

from conveyor.backend import DatabaseBackend
from conveyor.store import QueueFilter
from conveyor.store.paused import PausedQueues
from tests.contract.test_schedules import another_engine
from tests.factories import claim_all, enqueue
from tests.tasksapp.tasks import add

pytestmark = pytest.mark.django_db


def test_a_paused_queue_is_not_claimed_from_until_resumed(backend: DatabaseBackend) -> None:
    store = backend.store
    assert store.pause_queue("default") is True
    assert store.pause_queue("default") is False
    assert set(store.paused_queues()) == {"default"}
    held = enqueue(add)  # enqueueing still works
    other = enqueue(add.using(queue_name="other"))
    assert [r.pk for r in claim_all(store)] == [other.pk]
    assert store.next_available_at(QueueFilter()) is None
    assert (
        store.claim(worker_id="w", queues=QueueFilter(include=frozenset({"default"})), limit=5)
        == []
    )
    assert store.resume_queue("default") is True
    assert store.resume_queue("default") is False
    assert store.paused_queues() == {}
    assert [r.pk for r in claim_all(store)] == [held.pk]


def test_the_paused_set_is_shared_by_processes_within_a_second(
    backend: DatabaseBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.store
    elsewhere = another_engine(backend)
    assert isinstance(elsewhere, PausedQueues)
    assert elsewhere.paused_set() == frozenset()  # read and cached
    store.pause_queue("other")
    elsewhere.forget_paused()  # what a second passing (or a NOTIFY) does
    assert elsewhere.paused_set() == frozenset({"other"})
    assert backend.store.paused_queues().keys() == {"other"}
