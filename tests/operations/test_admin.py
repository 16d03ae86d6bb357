"""The admin on every database: task changelist and detail, operator actions, workers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db import connection
from django.db.models.functions import Now
from django.test import Client
from django.test.utils import CaptureQueriesContext

from conveyor.admin.listing import CappedCountPaginator
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.models import Attempt, Error, TaskRecord, WorkerRecord
from conveyor.store import Outcome
from tests.conftest import ROOT
from tests.factories import ago, claim_all, enqueue, later
from tests.operations.helpers import claim_due, fail_once, finish_failed, succeed_once
from tests.tasksapp.tasks import echo

pytestmark = pytest.mark.django_db

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
TASKS_URL = "/admin/conveyor/taskrecord/"
WORKERS_URL = "/admin/conveyor/workerrecord/"


def listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].result_list]


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def act(client: Client, action: str, ids: list[int], **extra: str) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in ids], "index": "0", **extra}
    return client.post(TASKS_URL, data, follow=True)


def act_on_detail(client: Client, action: str, pk: int) -> Any:
    data = {"CHANGE_FORM-action": action, "_selected_action": str(pk), "index": "0"}
    return client.post(f"{TASKS_URL}{pk}/change/", data, follow=True)


def column(response: Any, name: str) -> dict[int, str]:
    """What a changelist column shows for each task of the page, as HTML."""
    changelist = response.context["cl"]
    show = getattr(changelist.model_admin, name)
    return {row.pk: str(show(row)) for row in changelist.result_list}


def detail(client: Client, pk: int) -> str:
    response = client.get(f"{TASKS_URL}{pk}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def readonly(html: str, field: str) -> str:
    """The value a task's page shows for a field."""
    found = re.search(
        rf'class="form-row field-{field}">.*?<div class="readonly">(.*?)</div>', html, re.DOTALL
    )
    assert found, f"no field {field}"
    return found[1]


def buttons(html: str) -> list[str]:
    return re.findall(r'name="CHANGE_FORM-action" value="(\w+)"', html)


def attempt_numbers(html: str) -> list[str]:
    return re.findall(r'<th class="field-number" scope="row">(\d+)</th>', html)


def record_attempt(row: TaskRecord, *, seconds: float, error: str = "") -> Attempt:
    started = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    attempt = Attempt.objects.create(
        task=row,
        worker_id="w",
        started_at=started,
        stopped_at=started + timedelta(seconds=seconds),
        status=FAILED if error else SUCCESSFUL,
    )
    if error:
        Error.objects.create(
            attempt=attempt, exception_class_path="builtins.RuntimeError", traceback=error
        )
    return attempt


def change_log(pk: int) -> list[str]:
    entries = LogEntry.objects.filter(object_id=str(pk), action_flag=CHANGE).order_by("pk")
    return [entry.change_message for entry in entries]


class TestChangelist:
    def test_lists_tasks_with_their_columns(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = enqueue(echo, "x", queue_name="other", priority=7)
        claim_all(backend.store, "worker-7")
        response = admin_client_as_superuser.get(TASKS_URL)
        assert listed(response) == [row.pk]
        html = response.content.decode()
        path = "tests.<wbr>t.<wbr>tasks.<wbr>echo"
        for text in (path, "other", "priority 7", "worker-7", "RUNNING"):
            assert text in html
        assert 'title="tests.tasksapp.tasks.echo"' in html

    def test_heading_says_view_also_to_users_who_may_apply_actions(
        self, admin_client_as_superuser: Client
    ) -> None:
        enqueue()
        html = admin_client_as_superuser.get(TASKS_URL).content.decode()
        assert "Select task to view" in html
        assert "to change" not in html

    def test_statuses_are_coloured_badges(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        succeed_once(backend.store)
        fail_once(backend.store)
        enqueue()
        claim_all(backend.store, "w1")
        enqueue()
        html = admin_client_as_superuser.get(TASKS_URL).content.decode()
        for status in (READY, RUNNING, SUCCESSFUL, FAILED):
            assert f'class="conveyor-badge conveyor-badge--{status.lower()}">{status}<' in html
        assert "conveyor/admin.css" in html  # where the colours are

    def test_a_tasks_progress_is_a_bar_under_its_status(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        reporting = enqueue(metadata={"progress": {"done": 2, "total": 5}, "big": "x" * 100})
        counting = enqueue(metadata={"progress": {"done": 7, "total": None}})
        silent = enqueue()
        response = admin_client_as_superuser.get(TASKS_URL)
        shown = column(response, "status_badge")
        assert '<progress value="2" max="5">2 of 5</progress>' in shown[reporting.pk]
        assert "7 done" in shown[counting.pk]
        assert "progress" not in shown[silent.pk]
        assert "x" * 100 not in response.content.decode()  # the rest of the metadata: unread

    def test_times_are_shown_to_the_second(self, admin_client_as_superuser: Client) -> None:
        row = enqueue(
            enqueued_at=datetime(2026, 11, 20, 8, 5, 9, tzinfo=UTC),
            status=SUCCESSFUL,
            finished_at=datetime(2026, 11, 20, 8, 5, 41, tzinfo=UTC),
        )
        response = admin_client_as_superuser.get(TASKS_URL)
        enqueued = column(response, "enqueued")[row.pk]
        assert re.sub(r"<[^>]+>", "", enqueued) == "2026-11-20 08:05:09"
        assert 'datetime="2026-11-20T08:05:09+00:00"' in enqueued
        assert "08:05:41" in column(response, "finished")[row.pk]

    def test_due_says_when_a_ready_task_may_run_and_why_it_waits(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        done = succeed_once(backend.store)
        due = enqueue()
        deferred = enqueue(available_after=later(hours=2))
        retrying = enqueue(attempt_count=1, available_after=later(seconds=30))
        retry_due = enqueue(attempt_count=1)
        shown = column(admin_client_as_superuser.get(TASKS_URL), "due")
        text = {pk: re.sub(r"<[^>]+>", "", html) for pk, html in shown.items()}
        assert text[due.pk] == "now"
        assert re.fullmatch(r"in (1 h 59 min|2 h) deferred", text[deferred.pk])
        assert re.fullmatch(r"in (29|30) s retrying", text[retrying.pk])
        assert text[retry_due.pk] == "now retrying"
        assert text[done.pk] == "-"
        # The exact time is in the tooltip.
        assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"', shown[deferred.pk])

    def test_last_error_is_a_line_of_the_latest_attempts_error(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        recovered = enqueue()
        record_attempt(recovered, seconds=1, error="Traceback ...\nRuntimeError: first try\n")
        record_attempt(recovered, seconds=1)
        retrying = enqueue(attempt_count=2)
        record_attempt(retrying, seconds=1, error="Traceback ...\nRuntimeError: first try\n")
        record_attempt(retrying, seconds=1, error="Traceback ...\nRuntimeError: second try\n")
        shown = column(admin_client_as_superuser.get(TASKS_URL), "last_error")
        assert shown[failed.pk] == (
            '<span class="conveyor-excerpt" title="ValueError: boom">ValueError: boom</span>'
        )
        assert "second try" in shown[retrying.pk]
        assert "first try" not in shown[retrying.pk]
        assert shown[recovered.pk] == "-"  # its latest attempt succeeded

    def test_attempts_are_those_made_the_running_one_included(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = enqueue(queue_name="low_priority")
        finish_failed(backend.store, claim_all(backend.store, "w1"))
        claim_due(backend.store, "w2")
        never = enqueue()
        attempts = column(admin_client_as_superuser.get(TASKS_URL), "attempts")
        assert attempts == {row.pk: "2", never.pk: "0"}

    def test_reads_the_attempts_of_a_page_in_two_queries_whatever_its_size(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        def attempt_queries() -> list[str]:
            with CaptureQueriesContext(connection) as captured:
                assert admin_client_as_superuser.get(TASKS_URL).status_code == 200
            tables = ("conveyor_attempt", "conveyor_error")
            return [q["sql"] for q in captured if any(t in q["sql"] for t in tables)]

        fail_once(backend.store)
        few = attempt_queries()
        for _ in range(10):
            fail_once(backend.store)
        many = attempt_queries()
        assert len(few) == len(many) == 2
        # Neither the capped count nor the page's own query reads attempts.
        assert not [sql for sql in many if "COUNT(*)" in sql.upper() and "LIMIT" in sql.upper()]

    def test_filters_by_status_queue_and_backend(self, admin_client_as_superuser: Client) -> None:
        ready = enqueue()
        low = enqueue(queue_name="low_priority")
        failed = enqueue(status=FAILED)
        elsewhere = enqueue(backend_name="other_backend")
        client = admin_client_as_superuser
        assert listed(client.get(TASKS_URL, {"status__exact": "FAILED"})) == [failed.pk]
        assert listed(client.get(TASKS_URL, {"queue_name": "low_priority"})) == [low.pk]
        by_backend = listed(client.get(TASKS_URL, {"backend_name": "default"}))
        assert set(by_backend) == {ready.pk, low.pk, failed.pk}
        assert listed(client.get(TASKS_URL, {"backend_name": "other_backend"})) == [elsewhere.pk]

    def test_queue_and_backend_choices_come_from_settings(
        self, admin_client_as_superuser: Client
    ) -> None:
        html = admin_client_as_superuser.get(TASKS_URL).content.decode()
        for queue in ("default", "low_priority", "other"):
            assert f"?queue_name={queue}" in html
        assert "?backend_name=default" in html

    def test_search_finds_a_task_by_id_or_by_part_of_its_path(
        self, admin_client_as_superuser: Client
    ) -> None:
        added = enqueue()
        echoed = enqueue(echo, "x")
        client = admin_client_as_superuser
        assert listed(client.get(TASKS_URL, {"q": str(echoed.pk)})) == [echoed.pk]
        assert listed(client.get(TASKS_URL, {"q": f"#{added.pk}"})) == [added.pk]
        assert listed(client.get(TASKS_URL, {"q": "tasks.echo"})) == [echoed.pk]
        assert listed(client.get(TASKS_URL, {"q": "Tasks.ECHO"})) == [echoed.pk]
        assert set(listed(client.get(TASKS_URL, {"q": "tasksapp"}))) == {added.pk, echoed.pk}
        assert listed(client.get(TASKS_URL, {"q": "nothing.like.this"})) == []

    def test_date_hierarchy_drills_down_from_years_to_days(
        self, admin_client_as_superuser: Client
    ) -> None:
        early = enqueue(enqueued_at=datetime(2024, 3, 5, 12, tzinfo=UTC))
        late = enqueue(enqueued_at=datetime(2026, 11, 20, 8, tzinfo=UTC))
        client = admin_client_as_superuser
        html = client.get(TASKS_URL).content.decode()
        years = re.findall(r"enqueued_at__year=(\d+)", html)
        assert sorted(set(years)) == ["2024", "2025", "2026"]
        in_2024 = client.get(TASKS_URL, {"enqueued_at__year": "2024"})
        assert listed(in_2024) == [early.pk]
        assert "enqueued_at__month=3" in in_2024.content.decode()
        march = client.get(TASKS_URL, {"enqueued_at__year": "2024", "enqueued_at__month": "3"})
        assert "enqueued_at__day=5" in march.content.decode()
        day = {"enqueued_at__year": "2026", "enqueued_at__month": "11", "enqueued_at__day": "20"}
        assert listed(client.get(TASKS_URL, day)) == [late.pk]

    def test_date_drill_down_reads_bounds_of_the_table_not_of_the_filtered_rows(
        self, admin_client_as_superuser: Client
    ) -> None:
        enqueue(enqueued_at=datetime(2024, 3, 5, 12, tzinfo=UTC))
        enqueue(enqueued_at=datetime(2026, 11, 20, 8, tzinfo=UTC))
        with CaptureQueriesContext(connection) as captured:
            response = admin_client_as_superuser.get(TASKS_URL, {"status__exact": "RUNNING"})
        assert listed(response) == []
        years = re.findall(r"enqueued_at__year=(\d+)", response.content.decode())
        assert sorted(set(years)) == ["2024", "2025", "2026"]
        bounds = [q["sql"] for q in captured if "MIN(" in q["sql"].upper()]
        assert len(bounds) == 1
        assert "RUNNING" not in bounds[0]

    def test_sorts_only_by_indexed_columns(self, admin_client_as_superuser: Client) -> None:
        early = enqueue(status=SUCCESSFUL, finished_at=ago(hours=2), queue_name="default")
        late = enqueue(status=SUCCESSFUL, finished_at=ago(hours=1), queue_name="other")
        client = admin_client_as_superuser
        columns = client.get(TASKS_URL).context["cl"].list_display
        finished, queue = columns.index("finished"), columns.index("queue")
        assert listed(client.get(TASKS_URL, {"o": f"{finished}"})) == [early.pk, late.pk]
        assert listed(client.get(TASKS_URL, {"o": f"-{finished}"})) == [late.pk, early.pk]
        # queue_name leads no index alone: the request is ignored, the default order applies.
        assert listed(client.get(TASKS_URL, {"o": f"{queue}"})) == [late.pk, early.pk]
        assert listed(client.get(TASKS_URL, {"o": f"-{queue}"})) == [late.pk, early.pk]

    def test_never_counts_the_whole_table_and_reads_no_row_twice(
        self, admin_client_as_superuser: Client
    ) -> None:
        def queries_for_a_page() -> list[str]:
            with CaptureQueriesContext(connection) as captured:
                assert admin_client_as_superuser.get(TASKS_URL).status_code == 200
            return [q["sql"] for q in captured.captured_queries]

        for _ in range(3):
            row = enqueue(status=FAILED)
            Attempt.objects.create(
                task=row, worker_id="w", started_at=Now(), stopped_at=Now(), status=FAILED
            )
        few = queries_for_a_page()
        for _ in range(30):
            enqueue()
        many = queries_for_a_page()
        assert len(few) == len(many)
        counts = [sql for sql in many if "COUNT(" in sql.upper() and "conveyor_task" in sql]
        assert counts, "the changelist should count (with a cap)"
        for sql in counts:
            assert "LIMIT" in sql.upper(), f"uncapped count: {sql}"
        # The big JSON columns stay in the database.
        page_query = [sql for sql in many if "ORDER BY" in sql and "conveyor_task" in sql]
        assert page_query
        assert all('"arguments"' not in sql and "`arguments`" not in sql for sql in page_query)

    def test_a_count_past_the_cap_says_more_than(
        self, admin_client_as_superuser: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(CappedCountPaginator, "cap", 5)
        for _ in range(4):
            enqueue()
        assert "more than" not in admin_client_as_superuser.get(TASKS_URL).content.decode()
        for _ in range(4):
            enqueue()
        response = admin_client_as_superuser.get(TASKS_URL)
        assert "more than 5 tasks" in response.content.decode()
        assert len(listed(response)) == 8


class TestDetail:
    def test_shows_arguments_return_value_and_every_attempt(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = enqueue(echo, "first-arg", queue_name="low_priority")
        finish_failed(backend.store, claim_all(backend.store, "worker-one"))
        (claimed,) = claim_due(backend.store, "worker-two")
        backend.store.finish(
            worker_id="worker-two",
            outcomes=[Outcome(claimed, SUCCESSFUL, return_value={"answer": 42})],
        )
        html = admin_client_as_superuser.get(f"{TASKS_URL}{row.pk}/change/").content.decode()
        assert "first-arg" in html
        assert "&quot;answer&quot;: 42" in html
        assert "worker-one" in html
        assert "worker-two" in html
        assert "builtins.ValueError" in html
        assert "ValueError: boom" in html  # the full traceback
        assert html.count("field-stopped") == 2  # one row per attempt

    def test_shows_the_progress_and_the_metadata(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = enqueue(metadata={"progress": {"done": 3, "total": 4}, "topic": "alerts"})
        html = detail(admin_client_as_superuser, row.pk)
        assert '<progress value="3" max="4">' in readonly(html, "progress_bar")
        assert "&quot;topic&quot;: &quot;alerts&quot;" in readonly(html, "metadata_json")

    def test_is_read_only(self, admin_client_as_superuser: Client) -> None:
        row = enqueue()
        url = f"{TASKS_URL}{row.pk}/change/"
        html = admin_client_as_superuser.get(url).content.decode()
        assert 'name="_save"' not in html
        response = admin_client_as_superuser.post(url, {"priority": "9", "_save": "Save"})
        assert response.status_code == 403
        assert TaskRecord.objects.get(pk=row.pk).priority == 0
        assert admin_client_as_superuser.get(f"{TASKS_URL}add/").status_code == 403

    def test_numbers_attempts_within_the_task(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        first = enqueue(queue_name="low_priority")
        second = enqueue(queue_name="low_priority")
        # Their attempts alternate, so the global ids of each task's attempts have gaps.
        for _ in range(2):
            finish_failed(backend.store, claim_all(backend.store, "w1"))
        html = detail(admin_client_as_superuser, second.pk)
        assert attempt_numbers(html) == ["1", "2"]
        assert "attempt #" not in html
        assert attempt_numbers(detail(admin_client_as_superuser, first.pk)) == ["1", "2"]
        assert attempt_numbers(detail(admin_client_as_superuser, enqueue().pk)) == []

    def test_durations_are_humanised(self, admin_client_as_superuser: Client) -> None:
        row = enqueue()
        for seconds in (0.007, 2.3, 65):
            record_attempt(row, seconds=seconds)
        html = detail(admin_client_as_superuser, row.pk)
        durations = re.findall(r'<td class="field-duration">(.*?)</td>', html)
        assert durations == ["7 ms", "2.3 s", "1 min 5 s"]
        assert "0:00:" not in html

    def test_shows_times_to_the_second(self, admin_client_as_superuser: Client) -> None:
        row = enqueue(enqueued_at=datetime(2026, 11, 20, 8, 5, 9, tzinfo=UTC))
        enqueued = readonly(detail(admin_client_as_superuser, row.pk), "enqueued")
        assert re.sub(r"<[^>]+>", "", enqueued) == "2026-11-20 08:05:09"

    def test_a_failed_tasks_error_comes_first_and_its_traceback_wraps(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        html = detail(admin_client_as_superuser, failed.pk)
        failure = html.index('class="module conveyor-failure"')
        assert failure < html.index("field-task_path") < html.index("conveyor-attempts")
        panel = html[failure : html.index("</section>", failure)]
        assert "Error of attempt 1" in panel
        assert "builtins.ValueError" in panel
        assert "on worker w1" in panel
        assert '<pre class="conveyor-traceback">Traceback (most recent call last):' in panel
        css = (ROOT / "src/conveyor/static/conveyor/admin.css").read_text()
        assert re.search(r"pre\.conveyor-traceback \{[^}]*white-space: pre-wrap;", css)

    def test_a_task_that_did_not_fail_has_no_error_panel(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        done = succeed_once(backend.store)
        assert "conveyor-failure" not in detail(admin_client_as_superuser, done.pk)

    def test_tells_attempts_made_from_the_attempt_budget_used(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        client = admin_client_as_superuser
        cancelled = enqueue()
        act(client, "cancel", [cancelled.pk])
        html = detail(client, cancelled.pk)
        assert readonly(html, "attempts_made") == "1"  # the cancellation is an attempt
        assert readonly(html, "attempt_budget") == "0 of 1"
        assert "Attempts made:" in html
        assert "Attempt budget used:" in html

        failed = enqueue(queue_name="low_priority")
        for _ in range(3):
            finish_failed(backend.store, claim_due(backend.store, "w1"))
        act(client, "retry", [failed.pk])
        claim_due(backend.store, "w2")
        html = detail(client, failed.pk)
        assert readonly(html, "attempts_made") == "4"  # three ended, one running
        assert readonly(html, "attempt_budget") == "1 of 3"  # renewed by the retry
        result = backend.get_result(str(failed.pk))
        assert result.attempts == 4

    def test_the_budget_of_a_task_of_an_unknown_backend_says_so(
        self, admin_client_as_superuser: Client
    ) -> None:
        row = enqueue(backend_name="other_backend")
        budget = readonly(detail(admin_client_as_superuser, row.pk), "attempt_budget")
        assert budget == (
            "0 (max_attempts unknown: backend &#x27;other_backend&#x27; is not a conveyor "
            "backend in TASKS)"
        )


class TestActions:
    def test_retry_makes_failed_tasks_ready_and_logs_it(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        response = act(admin_client_as_superuser, "retry", [failed.pk])
        assert messages_of(response) == [f"Retried task #{failed.pk}."]
        stored = TaskRecord.objects.get(pk=failed.pk)
        assert (stored.status, stored.attempt_count) == (READY, 0)
        assert Attempt.objects.filter(task_id=failed.pk).count() == 1
        assert change_log(failed.pk) == ["Retried: FAILED -> READY now, attempt budget renewed"]
        entry = LogEntry.objects.get(object_id=str(failed.pk))
        assert entry.user.username == "root"

    def test_retry_refuses_tasks_that_did_not_fail(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        done = succeed_once(backend.store)
        failed = fail_once(backend.store)
        ready = enqueue()
        response = act(admin_client_as_superuser, "retry", [ready.pk, done.pk, failed.pk])
        assert messages_of(response) == [
            f"Retried task #{failed.pk}.",
            f"Refused 2 tasks (#{done.pk}, #{ready.pk}): only FAILED tasks can be retried.",
        ]
        assert TaskRecord.objects.get(pk=ready.pk).status == READY
        assert TaskRecord.objects.get(pk=done.pk).status == SUCCESSFUL
        assert change_log(ready.pk) == change_log(done.pk) == []

    def test_run_now_makes_a_deferred_task_due(self, admin_client_as_superuser: Client) -> None:
        deferred = enqueue(available_after=later(days=1))
        due = enqueue()
        response = act(admin_client_as_superuser, "run_now", [deferred.pk, due.pk])
        assert messages_of(response) == [
            f"Made available now: task #{deferred.pk}.",
            f"Refused task #{due.pk}: only READY tasks that are not due yet can be run now.",
        ]
        assert TaskRecord.objects.filter(pk=deferred.pk, available_after__lte=Now()).exists()
        assert change_log(deferred.pk) == ["Run now: available at once instead of later"]
        assert change_log(due.pk) == []

    def test_cancel_fails_a_ready_task_and_asks_a_running_one_s_worker_to_stop_it(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        finished = fail_once(backend.store)
        running = enqueue()
        claim_all(backend.store, "w1")
        other = enqueue()
        response = act(admin_client_as_superuser, "cancel", [running.pk, other.pk, finished.pk])
        assert messages_of(response) == [
            f"Asked the workers to stop task #{running.pk}.",
            f"Cancelled task #{other.pk}.",
            f"Refused task #{finished.pk}: only READY and RUNNING tasks can be cancelled.",
        ]
        row = TaskRecord.objects.get(pk=running.pk)
        assert (row.status, row.cancel_requested_by) == (RUNNING, "admin:root")
        assert backend.store.cancel_requests("w1") == {running.pk: "admin:root"}
        assert change_log(running.pk) == ["Cancel requested: its worker stops the running task"]
        result = backend.get_result(str(other.pk))
        assert result.status == FAILED
        assert [e.exception_class_path for e in result.errors] == [
            "conveyor.exceptions.TaskCancelled"
        ]
        assert "admin:root" in result.errors[0].traceback
        assert change_log(other.pk) == ["Cancelled: READY -> FAILED with TaskCancelled"]

    def test_actions_work_from_the_detail_page(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        response = act_on_detail(admin_client_as_superuser, "cancel", failed.pk)
        assert messages_of(response) == [
            f"Refused task #{failed.pk}: only READY and RUNNING tasks can be cancelled. "
            "Nothing was changed."
        ]
        response = act_on_detail(admin_client_as_superuser, "retry", failed.pk)
        assert messages_of(response) == [f"Retried task #{failed.pk}."]
        assert TaskRecord.objects.get(pk=failed.pk).status == READY
        assert change_log(failed.pk) == ["Retried: FAILED -> READY now, attempt budget renewed"]

    def test_the_task_page_offers_the_actions_that_apply_to_its_state(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        client = admin_client_as_superuser
        done = succeed_once(backend.store)
        failed = fail_once(backend.store)
        running = enqueue()
        claim_all(backend.store, "w1")
        due = enqueue()
        deferred = enqueue(available_after=later(hours=1))
        assert buttons(detail(client, failed.pk)) == ["retry"]
        assert buttons(detail(client, due.pk)) == ["cancel"]
        assert buttons(detail(client, deferred.pk)) == ["run_now", "cancel"]
        assert buttons(detail(client, running.pk)) == ["cancel"]
        assert buttons(detail(client, done.pk)) == []
        html = detail(client, deferred.pk)
        assert ">Run now</button>" in html
        assert re.search(r">in (59 min \d+ s|1 h)</span>.*deferred", readonly(html, "due"))
        assert (
            'title="Cancel (ready tasks end failed; running ones are stopped by their worker)">'
            "Cancel</button>" in html
        )

    def test_a_stale_button_is_refused_with_a_reason(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = succeed_once(backend.store)  # finished after the page offered Cancel
        response = act_on_detail(admin_client_as_superuser, "cancel", row.pk)
        assert messages_of(response) == [
            f"Refused task #{row.pk}: only READY and RUNNING tasks can be cancelled. "
            "Nothing was changed."
        ]
        assert TaskRecord.objects.get(pk=row.pk).status == SUCCESSFUL

    def test_delete_asks_then_deletes_and_logs(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        confirm = act(admin_client_as_superuser, "delete_selected", [failed.pk])
        assert "Are you sure" in confirm.content.decode()
        assert TaskRecord.objects.filter(pk=failed.pk).exists()
        act(admin_client_as_superuser, "delete_selected", [failed.pk], post="yes")
        assert not TaskRecord.objects.filter(pk=failed.pk).exists()
        assert not Attempt.objects.filter(task_id=failed.pk).exists()
        assert LogEntry.objects.filter(object_id=str(failed.pk), action_flag=DELETION).exists()

    def test_delete_refuses_running_tasks(
        self, admin_client_as_superuser: Client, backend: DatabaseBackend
    ) -> None:
        row = enqueue()
        claim_all(backend.store, "w1")
        response = act(admin_client_as_superuser, "delete_selected", [row.pk], post="yes")
        assert messages_of(response) == [
            f"Refused task #{row.pk}: running tasks cannot be deleted. Nothing was changed for "
            "them."
        ]
        assert TaskRecord.objects.get(pk=row.pk).status == RUNNING
        detail = admin_client_as_superuser.get(f"{TASKS_URL}{row.pk}/delete/")
        assert detail.status_code == 403
        assert not LogEntry.objects.exists()


class TestWithoutChangePermission:
    def test_a_viewer_sees_tasks_but_is_offered_no_action(
        self, viewer_client: Client, backend: DatabaseBackend
    ) -> None:
        failed = fail_once(backend.store)
        listing = viewer_client.get(TASKS_URL)
        assert listed(listing) == [failed.pk]
        assert 'value="retry"' not in listing.content.decode()
        detail = viewer_client.get(f"{TASKS_URL}{failed.pk}/change/")
        assert detail.status_code == 200
        assert "builtins.ValueError" in detail.content.decode()  # attempts are visible
        assert 'value="retry"' not in detail.content.decode()

    @pytest.mark.parametrize("action", ["retry", "run_now", "cancel", "delete_selected"])
    def test_a_viewer_cannot_apply_actions(
        self, viewer_client: Client, backend: DatabaseBackend, action: str
    ) -> None:
        failed = fail_once(backend.store)
        deferred = enqueue(available_after=later(days=1))
        ids = [failed.pk, deferred.pk]
        act(viewer_client, action, ids, post="yes")
        for pk in ids:
            act_on_detail(viewer_client, action, pk)
        assert TaskRecord.objects.get(pk=failed.pk).status == FAILED
        stored = TaskRecord.objects.get(pk=deferred.pk)
        assert stored.status == READY
        assert not TaskRecord.objects.filter(pk=deferred.pk, available_after__lte=Now()).exists()
        assert not LogEntry.objects.exists()


class TestWorkers:
    def register(self, worker_id: str, *, seconds_ago: float, queues: list[str]) -> None:
        WorkerRecord.objects.create(
            worker_id=worker_id,
            backend_name="default",
            host="host-a",
            pid=1234,
            queues=queues,
            last_heartbeat_at=Now() - timedelta(seconds=seconds_ago),
        )

    def test_lists_the_registry_judging_alive_by_the_worker_timeout(
        self, admin_client_as_superuser: Client, task_options: Any
    ) -> None:
        task_options(worker_timeout=30, heartbeat_interval=5)
        self.register("fresh", seconds_ago=1, queues=["default"])
        self.register("stale", seconds_ago=45, queues=[])
        client = admin_client_as_superuser
        response = client.get(WORKERS_URL)
        assert response.status_code == 200
        rows = {w.worker_id: w for w in response.context["cl"].result_list}
        assert {name: bool(w.alive) for name, w in rows.items()} == {"fresh": True, "stale": False}
        html = response.content.decode()
        for text in ("host-a", "1234", "default", "all"):
            assert text in html
        alive = client.get(WORKERS_URL, {"alive": "yes"}).context["cl"].result_list
        dead = client.get(WORKERS_URL, {"alive": "no"}).context["cl"].result_list
        assert [w.worker_id for w in alive] == ["fresh"]
        assert [w.worker_id for w in dead] == ["stale"]

    def test_a_longer_worker_timeout_keeps_the_same_worker_alive(
        self, admin_client_as_superuser: Client, task_options: Any
    ) -> None:
        task_options(worker_timeout=120, heartbeat_interval=5)
        self.register("stale", seconds_ago=45, queues=[])
        alive = admin_client_as_superuser.get(WORKERS_URL, {"alive": "yes"})
        assert [w.worker_id for w in alive.context["cl"].result_list] == ["stale"]

    def test_shows_how_long_ago_a_worker_was_heard_from_and_whether_it_is_alive_first(
        self, admin_client_as_superuser: Client
    ) -> None:
        long_id = "worker-7f9c2b1d4e-prod-eu-west-1.internal.example.com-48213-Zq8LmP2x"
        self.register(long_id, seconds_ago=45, queues=[])
        html = admin_client_as_superuser.get(WORKERS_URL).content.decode()
        age = re.search(r'<td class="field-heartbeat_age"><span title="([^"]+)">(.*?)<', html)
        assert age, html
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", age[1])
        assert re.fullmatch(r"4[5-7] s ago", age[2])
        assert "0:00:" not in html
        headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
        assert headers[:3] == ["worker", "alive", "heartbeat_age"]
        assert f'title="{long_id}">worker-7…q8LmP2x<' in html

    def test_is_read_only_and_visible_to_viewers(self, viewer_client: Client) -> None:
        self.register("fresh", seconds_ago=1, queues=[])
        assert viewer_client.get(WORKERS_URL).status_code == 200
        worker = WorkerRecord.objects.get()
        assert viewer_client.get(f"{WORKERS_URL}add/").status_code == 403
        assert viewer_client.get(f"{WORKERS_URL}{worker.pk}/delete/").status_code == 403
