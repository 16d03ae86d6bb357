from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

import conveyor
from conveyor.models import TaskRecord
from messagecenter.forms import MESSAGE_MAX_LENGTH
from messagecenter.tasks import broadcast, send_notification
from tests.conftest import wait_until
from tests.demo.conftest import FAST_WORKER
from tests.demo.ntfy_server import NtfyServer
from tests.tasksapp.tasks import add

HTMX = {"HX-Request": "true"}


def send(client: Client, *, htmx: bool = True, **data: str) -> Any:
    return client.post(reverse("send"), data, headers=HTMX if htmx else {})


def row_ids(html: str) -> list[str]:
    return re.findall(r'<li id="result-(\w+)"', html)


def poll_url(html: str) -> str:
    """The URL a row polls, as htmx would request it."""
    match = re.search(r'hx-get="([^"]+)"', html)
    assert match, f"the row does not poll:\n{html}"
    return match[1].replace("&amp;", "&")


@pytest.mark.django_db
def test_the_page_shows_the_form_the_topic_and_the_results_newest_first(
    client: Client, ntfy_url: str
):
    first = send_notification.enqueue(message="first")
    second = send_notification.enqueue(message="second", title="Two")
    add.enqueue(1, 2)  # another task's result is not listed

    response = client.get(reverse("page"))

    html = response.content.decode()
    assert response.status_code == 200
    assert row_ids(html) == [second.id, first.id]
    assert '<form id="send-form" method="post" action="/messages/"' in html
    assert '<label for="id_message">' in html
    assert f"curl -s {ntfy_url}/json" in html
    assert "/static/messagecenter/htmx.min.js" in html
    assert re.search(rf'id="result-{first.id}".*?Ready', html, re.S)
    assert '<a href="/admin/conveyor/taskrecord/">the admin</a>' in html


@pytest.mark.django_db
def test_posting_with_htmx_stores_the_task_and_answers_with_its_row(client: Client, ntfy_url: str):
    response = send(client, message="Hello", title="Greeting")

    html = response.content.decode()
    record = TaskRecord.objects.get()
    assert response.status_code == 201
    assert record.task_path == "messagecenter.tasks.send_notification"
    assert record.arguments == {"args": [], "kwargs": {"message": "Hello", "title": "Greeting"}}
    assert row_ids(html) == [str(record.pk)]
    assert "<html" not in html
    assert "Ready" in html
    assert "Hello" in html
    assert "Greeting" in html
    assert poll_url(html) == f"/messages/{record.pk}/?seen=READY-0"
    assert 'hx-trigger="every 1s"' in html
    assert re.search(
        rf'<div id="announcer" hx-swap-oob="innerHTML">Message #{record.pk}: Ready</div>', html
    )


@pytest.mark.django_db
def test_posting_without_htmx_redirects_to_the_page(client: Client, ntfy_url: str):
    response = send(client, htmx=False, message="No JavaScript")

    record = TaskRecord.objects.get()
    assert response.status_code == 303
    assert response["Location"] == reverse("page")
    page = client.get(response["Location"]).content.decode()
    assert row_ids(page) == [str(record.pk)]
    assert "No JavaScript" in page


@pytest.mark.django_db
def test_an_empty_title_is_stored_as_none(client: Client, ntfy_url: str):
    send(client, message="Untitled", title="")

    assert TaskRecord.objects.get().arguments["kwargs"] == {"message": "Untitled", "title": None}


BAD_INPUT = [
    pytest.param({"message": ""}, "Write a message to send.", id="no message"),
    pytest.param({"message": "   "}, "Write a message to send.", id="blank message"),
    pytest.param(
        {"message": "x" * (MESSAGE_MAX_LENGTH + 1)},
        f"Ensure this value has at most {MESSAGE_MAX_LENGTH} characters "
        f"(it has {MESSAGE_MAX_LENGTH + 1}).",
        id="message too long",
    ),
    pytest.param(
        {"message": "Hi", "title": "t" * 251},
        "Ensure this value has at most 250 characters (it has 251).",
        id="title too long",
    ),
    pytest.param(
        {"message": "Hi", "title": "two\nlines"},
        "The title must be one line of printable text.",
        id="title on two lines",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "error"), BAD_INPUT)
def test_bad_input_with_htmx_gets_the_form_back_with_the_error(
    client: Client, ntfy_url: str, data, error
):
    response = send(client, **data)

    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#send-form"
    assert response["HX-Reswap"] == "outerHTML"
    assert html.strip().startswith('<form id="send-form"')
    assert '<ul class="errorlist" id="id_' in html
    assert error.replace("'", "&#x27;") in html
    assert 'aria-invalid="true"' in html
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "error"), BAD_INPUT)
def test_bad_input_without_htmx_gets_the_page_back_with_the_error(
    client: Client, ntfy_url: str, data, error
):
    response = send(client, htmx=False, **data)

    html = response.content.decode()
    assert response.status_code == 422
    assert "<html" in html
    assert error.replace("'", "&#x27;") in html
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("result_id", ["999999", "not-a-number"])
def test_polling_an_unknown_result_is_not_found(client: Client, result_id: str):
    assert client.get(reverse("result", args=[result_id]), headers=HTMX).status_code == 404


@pytest.mark.django_db
def test_polling_a_result_of_another_task_is_not_found(client: Client):
    other = add.enqueue(1, 2)

    assert client.get(reverse("result", args=[other.id]), headers=HTMX).status_code == 404


def test_a_row_answers_204_while_unchanged_its_new_row_when_changed_and_286_when_finished(
    client: Client, ntfy_server: NtfyServer, ntfy_url: str, start_worker
):
    ntfy_server.hold()  # the task stays RUNNING until the server answers
    ready = poll_url(send(client, message="Watch me", title="Polling").content.decode())

    assert client.get(ready, headers=HTMX).status_code == 204
    start_worker(*FAST_WORKER)
    changed = wait_until(
        lambda: (answer := client.get(ready, headers=HTMX)).status_code != 204 and answer,
        what="the row to change",
    )
    html = changed.content.decode()
    assert changed.status_code == 200
    assert "Running" in html
    running = poll_url(html)
    assert running.endswith("?seen=RUNNING-1")
    assert client.get(running, headers=HTMX).status_code == 204

    ntfy_server.release()
    finished = wait_until(
        lambda: (answer := client.get(running, headers=HTMX)).status_code == 286 and answer,
        what="the row to finish",
    )
    html = finished.content.decode()
    assert "Successful" in html
    assert "hx-get" not in html
    assert "hx-trigger" not in html
    assert re.search(r'hx-swap-oob="innerHTML">Message #\d+: Successful<', html)
    [received] = ntfy_server.received
    assert (received.body, received.title) == ("Watch me", "Polling")


def test_a_failed_result_shows_its_last_error(
    client: Client, ntfy_server: NtfyServer, ntfy_url: str, start_worker
):
    ntfy_server.status = 500
    poll = poll_url(send(client, message="Doomed").content.decode())

    start_worker(*FAST_WORKER, options={"max_attempts": 2, "backoff_factor": 0})
    finished = wait_until(
        lambda: (answer := client.get(poll, headers=HTMX)).status_code == 286 and answer,
        what="the task to fail",
    )

    html = finished.content.decode()
    assert "Failed" in html
    assert "Failed after 2 attempts" in html
    assert "httpx.HTTPStatusError" in html
    assert "Server error &#x27;500 Internal Server Error&#x27; for url" in html
    assert len(ntfy_server.received) == 2
    page = client.get(reverse("page")).content.decode()
    assert "Failed after 2 attempts" in page
    assert "httpx.HTTPStatusError" in page


def test_a_result_waiting_for_its_retry_shows_retrying_and_when_the_next_attempt_is_due(
    client: Client, ntfy_server: NtfyServer, ntfy_url: str, start_worker
):
    ntfy_server.status = 500
    poll = poll_url(send(client, message="Try again").content.decode())

    # One failed attempt, then an hour's back-off: the row stays Retrying for this test.
    start_worker(*FAST_WORKER, options={"max_attempts": 2, "backoff_factor": 3600})
    changed = wait_until(
        lambda: (
            "Retrying" in (answer := client.get(poll, headers=HTMX)).content.decode() and answer
        ),
        what="the first attempt to fail",
    )

    html = changed.content.decode()
    due = TaskRecord.objects.get().available_after
    assert changed.status_code == 200
    assert poll_url(html).endswith("?seen=READY-1")
    assert '<span class="status status--retrying">Retrying</span>' in html
    assert f'Next attempt at <time datetime="{due.isoformat()}">{due:%H:%M:%S} UTC</time>' in html
    assert "Attempt 1 failed:" in html
    assert "httpx.HTTPStatusError" in html
    assert re.search(r'hx-swap-oob="innerHTML">Message #\d+: Retrying<', html)
    assert client.get(poll_url(html), headers=HTMX).status_code == 204
    assert len(ntfy_server.received) == 1
    page = client.get(reverse("page")).content.decode()
    assert "Retrying" in page
    assert f"{due:%H:%M:%S} UTC" in page


@pytest.mark.django_db
def test_a_ready_result_never_attempted_is_ready_not_retrying(client: Client, ntfy_url: str):
    html = send(client, message="Fresh").content.decode()

    assert '<span class="status status--ready">Ready</span>' in html
    assert "Next attempt" not in html


@pytest.mark.django_db
def test_posting_with_topics_enqueues_a_broadcast_that_the_page_lists(
    client: Client, ntfy_url: str
):
    response = send(client, message="Deploy", title="", topics="alerts, ops alerts conveyor-test")

    record = TaskRecord.objects.get()
    assert response.status_code == 201
    assert record.task_path == "messagecenter.tasks.broadcast"
    assert record.arguments["kwargs"] == {
        "message": "Deploy",
        "topics": ["conveyor-test", "alerts", "ops"],  # its own topic first, each once
        "title": None,
    }
    html = client.get(reverse("page")).content.decode()
    assert row_ids(html) == [str(record.pk)]
    assert "Deploy" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("topics", "error"),
    [
        ("alerts, no/slashes", "Not a topic name (1 to 64 letters, digits, &#x27;-&#x27; or"),
        ("a b c d e f", "At most 5 other topics."),
    ],
)
def test_bad_topics_are_refused(client: Client, ntfy_url: str, topics: str, error: str):
    response = send(client, message="Deploy", topics=topics)

    assert response.status_code == 422
    assert error in response.content.decode()
    assert not TaskRecord.objects.exists()


@pytest.mark.django_db
def test_a_broadcasts_row_shows_its_progress_and_polls_until_it_changes(
    client: Client, ntfy_url: str
):
    ready = poll_url(send(client, message="Deploy", topics="alerts ops").content.decode())
    record = TaskRecord.objects.get()
    TaskRecord.objects.filter(pk=record.pk).update(
        status="RUNNING", attempt_count=1, worker_id="w1"
    )
    result = broadcast.get_result(str(record.pk))
    conveyor.update_metadata(result, {"progress": {"done": 1, "total": 3}})

    html = client.get(ready, headers=HTMX).content.decode()
    assert '<progress value="1" max="3"' in html
    assert "Sent to 1 of 3 topics: conveyor-test, alerts, ops" in html
    running = poll_url(html)
    assert running.endswith("?seen=RUNNING-1-1")
    assert client.get(running, headers=HTMX).status_code == 204
    conveyor.update_metadata(result, {"progress": {"done": 2, "total": 3}})
    assert "Sent to 2 of 3" in client.get(running, headers=HTMX).content.decode()
