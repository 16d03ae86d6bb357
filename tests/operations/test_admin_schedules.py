"""The admin's schedules and queues pages on every database: listed, run now, pause, resume."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from conveyor.models import TaskRecord
from tests.tasksapp.tasks import noop

pytestmark = pytest.mark.django_db

SCHEDULES_URL = "/admin/conveyor/scheduletick/"
QUEUES_URL = "/admin/conveyor/pausedqueue/"
NIGHTLY = {"task": "tests.tasksapp.tasks.noop", "cron": "0 3 * * *", "timezone": "Europe/Brussels"}


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_schedules_are_listed_with_last_and_next_tick_and_gone_ones_marked(
    admin_client_as_superuser: Client, task_options: Any
) -> None:
    backend = task_options(periodic={"nightly": NIGHTLY})
    now = backend.store.database_now().replace(microsecond=0)
    task = backend.new_task(noop, (), {})
    for name in ("nightly", "retired"):
        backend.store.enqueue_tick(task, schedule_name=name, tick=now, window=timedelta(days=1))
    response = admin_client_as_superuser.get(SCHEDULES_URL)
    assert response.status_code == 200
    states = {row["state"].name: row["state"] for row in response.context["rows"]}
    assert states["nightly"].when == "cron 0 3 * * * (Europe/Brussels)"
    assert states["nightly"].last_status == "READY"
    assert states["nightly"].next_tick is not None
    assert states["retired"].gone
    html = response.content.decode()
    assert "gone from settings" in html
    assert html.count("Run now") == 1  # a gone schedule cannot be run


def test_run_now_enqueues_one_task_outside_the_ticks(
    admin_client_as_superuser: Client, task_options: Any
) -> None:
    task_options(periodic={"nightly": NIGHTLY})
    response = admin_client_as_superuser.post(
        SCHEDULES_URL, {"backend": "default", "schedule": "nightly"}, follow=True
    )
    row = TaskRecord.objects.get()
    assert messages_of(response) == [f"Enqueued task #{row.pk} of schedule 'nightly'."]
    assert (row.schedule_name, row.schedule_tick, row.task_path) == (
        "nightly",
        None,
        "tests.tasksapp.tasks.noop",
    )
    gone = admin_client_as_superuser.post(
        SCHEDULES_URL, {"backend": "default", "schedule": "retired"}, follow=True
    )
    assert messages_of(gone) == ["No schedule 'retired' in TASKS['default']: nothing was run."]
    assert TaskRecord.objects.count() == 1


def test_queues_are_paused_and_resumed_from_the_admin(
    admin_client_as_superuser: Client, backend: Any
) -> None:
    def post(action: str) -> list[str]:
        data = {"backend": "default", "queue": "other", "action": action}
        return messages_of(admin_client_as_superuser.post(QUEUES_URL, data, follow=True))

    assert post("pause") == ["Paused queue 'other'."]
    assert set(backend.store.paused_queues()) == {"other"}
    response = admin_client_as_superuser.get(QUEUES_URL)
    states = {row["queue"]: row["paused_since"] is not None for row in response.context["rows"]}
    assert states == {"default": False, "low_priority": False, "other": True}
    assert post("pause") == ["Already paused: queue 'other'."]
    assert post("resume") == ["Resumed queue 'other'."]
    assert backend.store.paused_queues() == {}


def test_the_pages_refuse_users_without_permission(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(SCHEDULES_URL).status_code == 403
    assert (
        client.post(QUEUES_URL, {"backend": "default", "queue": "x", "action": "pause"}).status_code
        == 403
    )


def test_markers_and_pause_rows_have_no_pages_of_their_own(
    admin_client_as_superuser: Client, backend: Any
) -> None:
    backend.store.pause_queue("other")
    for url in (f"{QUEUES_URL}1/change/", f"{SCHEDULES_URL}add/", f"{QUEUES_URL}1/delete/"):
        assert admin_client_as_superuser.get(url).status_code == 404, url


LIMITS_URL = "/admin/conveyor/semaphore/"


def test_limits_list_each_concurrency_key_with_its_slots_and_waiting_tasks(
    admin_client_as_superuser: Client,
) -> None:
    from tests.tasksapp.tasks import call_partner

    results = [call_partner.enqueue(3) for _ in range(3)]
    response = admin_client_as_superuser.get(LIMITS_URL)
    assert response.status_code == 200
    (row,) = response.context["rows"]
    slot = row["slot"]
    assert (slot.key, slot.limit, slot.holding, slot.waiting) == (
        "tests.tasksapp.tasks.call_partner:3",
        2,
        2,
        1,
    )
    assert "waiting for a slot" in response.content.decode()
    listed = admin_client_as_superuser.get("/admin/conveyor/taskrecord/")
    assert listed.content.decode().count("waiting for a slot") == 1
    assert admin_client_as_superuser.post(LIMITS_URL, {}).status_code == 403
    assert len(results) == 3
    assert response.context["rates"] == []
    assert "No rate-limited task has started yet." in response.content.decode()


def test_limits_show_each_rate_key_with_its_window(
    admin_client_as_superuser: Client, backend: Any
) -> None:
    from tests.factories import claim_all
    from tests.tasksapp.tasks import rate_limited

    for _ in range(4):
        rate_limited.enqueue()
    claim_all(backend.store, "w")
    response = admin_client_as_superuser.get(LIMITS_URL)
    (row,) = response.context["rates"]
    assert (row["rate"].starts, row["rate"].waiting, row["rate"].limit) == (3, 1, 3)
    assert "tests.tasksapp.tasks.rate_limited" in response.content.decode()
