"""Paused queues, on every database: no claim from them, enqueueing goes on, resume."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import TaskRecord
from conveyor.store import Outcome, QueueFilter
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


def test_finish_and_claim_finishes_but_claims_nothing_from_a_paused_queue(
    backend: DatabaseBackend,
) -> None:
    store = backend.store
    enqueue(add)
    (running,) = claim_all(store)
    waiting = enqueue(add)
    store.pause_queue("default")
    default = QueueFilter(include=frozenset({"default"}))
    written, claimed = store.finish_and_claim(
        worker_id=running.worker_id,
        outcomes=[Outcome(running, TaskResultStatus.SUCCESSFUL)],
        queues=default,
        limit=5,
    )
    assert ([w.outcome.record.pk for w in written], claimed) == ([running.pk], [])
    assert TaskRecord.objects.get(pk=waiting.pk).status == TaskResultStatus.READY


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


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_pause_reaches_listening_workers_at_once(
    backend: DatabaseBackend,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("other databases are polled: the paused set is read again within a second")
    listening = another_engine(backend)
    assert isinstance(listening, PausedQueues)
    assert listening.paused_set() == frozenset()  # read, and trusted for a second
    source = listening.wakeup_source()
    assert source is not None
    woken = threading.Semaphore(0)
    stopping = threading.Event()
    thread = threading.Thread(target=source.listen, args=(woken.release, stopping))
    thread.start()
    try:
        assert woken.acquire(timeout=10)  # listening
        backend.store.pause_queue("default")
        assert woken.acquire(timeout=10)  # the NOTIFY woke it, and it forgot the paused set
        assert listening.paused_set() == frozenset({"default"})
    finally:
        stopping.set()
        thread.join(10)
    assert not thread.is_alive()
