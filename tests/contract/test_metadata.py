"""Task metadata on every database: given at enqueue, merged by key, fenced for workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

import conveyor
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultDoesNotExist
from conveyor.models import TaskRecord
from tests.factories import claim_all
from tests.tasksapp.tasks import add, annotate

pytestmark = pytest.mark.django_db


def test_enqueue_stores_metadata_that_metadata_reads_back(backend: DatabaseBackend) -> None:
    given = {"customer": 42, "labels": ["a", "b"], "nested": {"x": None}}
    result = conveyor.enqueue(add, 1, 2, metadata=given)
    assert conveyor.metadata(result) == given
    assert backend.store.metadata(int(result.id)) == given


def test_a_task_enqueued_without_metadata_has_none(backend: DatabaseBackend) -> None:
    result = add.enqueue(1, 2)
    assert conveyor.metadata(result) == {}
    assert TaskRecord.objects.get(pk=result.id).metadata is None


def test_metadata_that_is_not_json_is_refused_before_storing(backend: DatabaseBackend) -> None:
    with pytest.raises(TypeError, match="metadata must be JSON"):
        conveyor.enqueue(add, 1, 2, metadata={"when": object()})
    assert not TaskRecord.objects.exists()


def test_save_metadata_sets_and_removes_keys_and_keeps_the_others(
    backend: DatabaseBackend,
) -> None:
    result = conveyor.enqueue(add, 1, 2, metadata={"keep": 1, "drop": 2, "change": 3})
    pk = int(result.id)
    changed = {"change": {"done": 1, "total": [2]}, "new": "x", "null": None}
    assert backend.store.save_metadata(pk, changed=changed, removed=["drop"])
    assert backend.store.metadata(pk) == {"keep": 1, **changed}


def test_save_metadata_replaces_a_changed_key_whole(backend: DatabaseBackend) -> None:
    result = conveyor.enqueue(add, 1, 2, metadata={"progress": {"done": 1, "total": 5}})
    backend.store.save_metadata(int(result.id), changed={"progress": {"done": 2}})
    assert conveyor.metadata(result) == {"progress": {"done": 2}}


def test_save_metadata_with_a_holder_is_fenced_by_worker_and_attempt(
    backend: DatabaseBackend,
) -> None:
    result = add.enqueue(1, 2)
    (claimed,) = claim_all(backend.store, "w1")
    pk = claimed.pk
    assert not backend.store.save_metadata(pk, changed={"a": 1}, holder=("w2", 1))
    assert not backend.store.save_metadata(pk, changed={"a": 1}, holder=("w1", 2))
    assert backend.store.metadata(pk) == {}
    assert backend.store.save_metadata(pk, changed={"a": 1}, holder=("w1", 1))
    assert conveyor.metadata(result) == {"a": 1}


def test_save_metadata_refuses_keys_a_json_path_cannot_quote(backend: DatabaseBackend) -> None:
    result = add.enqueue(1, 2)
    with pytest.raises(ValueError, match="metadata keys"):
        backend.store.save_metadata(int(result.id), changed={'say "hi"': 1})


def test_update_metadata_of_a_missing_task_reports_false(backend: DatabaseBackend) -> None:
    result = add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).delete()
    assert not conveyor.update_metadata(result, {"a": 1})
    with pytest.raises(TaskResultDoesNotExist):
        conveyor.metadata(result)


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_of_different_keys_keep_every_write(backend: DatabaseBackend) -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:"):
        pytest.skip("an in-memory SQLite database is not shared between threads")
    result = conveyor.enqueue(add, 1, 2, metadata={"base": 0})
    pk, rounds = int(result.id), 30
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str, holder: tuple[str, int] | None) -> None:
        try:
            start.wait()
            for i in range(rounds):
                backend.store.save_metadata(pk, changed={f"{name}{i}": i}, holder=holder)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    (claimed,) = claim_all(backend.store, "w1")
    threads = [
        threading.Thread(target=writer, args=("task", ("w1", claimed.attempt_count))),
        threading.Thread(target=writer, args=("operator", None)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    expected: dict[str, Any] = {"base": 0}
    for i in range(rounds):
        expected |= {f"task{i}": i, f"operator{i}": i}
    assert conveyor.metadata(result) == expected


def test_a_running_task_reads_its_metadata_and_its_changes_are_saved_when_it_ends(
    backend: DatabaseBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.worker import runner
    from conveyor.worker.runner import run_sync

    # A worker thread closes its connection after each task; this test's holds its data.
    monkeypatch.setattr(runner, "close_old_connections", lambda: None)
    result = conveyor.enqueue(annotate, "note", "from the task", metadata={"given": True})
    (claimed,) = claim_all(backend.store, "w1")
    conveyor.update_metadata(result, {"operator": "meanwhile"})
    outcome = run_sync(claimed, [])
    assert outcome.return_value == {"given": True}
    assert conveyor.metadata(result) == {
        "given": True,
        "operator": "meanwhile",
        "note": "from the task",
    }
