from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

import conveyor
from conveyor.worker import runner
from messagecenter.ntfy import NtfyUnreachable
from messagecenter.tasks import broadcast, send_notification
from tests.demo.ntfy_server import TOPIC, NtfyServer
from tests.factories import claim_all


def test_send_notification_posts_the_message_to_the_topic(ntfy_server: NtfyServer, ntfy_url):
    send_notification.call("Hello from conveyor")

    [received] = ntfy_server.received
    assert (received.method, received.path, received.body) == (
        "POST",
        f"/{TOPIC}",
        "Hello from conveyor",
    )
    assert received.title is None


def test_send_notification_puts_the_title_in_the_title_header(ntfy_server: NtfyServer, ntfy_url):
    send_notification.call(message="Body", title="Greeting")

    assert ntfy_server.received[0].raw_title == "Greeting"


def test_a_title_beyond_ascii_arrives_intact(ntfy_server: NtfyServer, ntfy_url):
    send_notification.call(message="Body", title="Grüße aus Köln 🎉")

    received = ntfy_server.received[0]
    assert received.raw_title is not None
    assert received.raw_title.isascii()
    assert received.title == "Grüße aus Köln 🎉"


def test_send_notification_raises_on_an_http_error(ntfy_server: NtfyServer, ntfy_url):
    ntfy_server.status = 500

    with pytest.raises(httpx.HTTPStatusError, match="500 Internal Server Error"):
        send_notification.call("lost")
    assert len(ntfy_server.received) == 1


def test_send_notification_raises_when_the_connection_is_refused(settings: Any):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    settings.NTFY_URL = f"http://127.0.0.1:{port}/{TOPIC}"

    with pytest.raises(NtfyUnreachable, match=f"^Could not reach 127.0.0.1:{port}: ") as caught:
        send_notification.call("nobody listens")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "NTFY_URL" in str(caught.value)


def test_send_notification_gives_up_after_its_timeout(
    ntfy_server: NtfyServer, ntfy_url, settings: Any
):
    settings.NTFY_TIMEOUT = 0.5
    ntfy_server.hold()
    started = time.monotonic()

    with pytest.raises(
        NtfyUnreachable, match=f"^127.0.0.1:{ntfy_server.port} did not answer: timed out"
    ) as caught:
        send_notification.call("slow server")
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    # Bounded by the timeout, far below the 60 s the server would hold the answer.
    assert time.monotonic() - started < 30


@pytest.mark.django_db
def test_broadcast_sends_to_each_topic_in_turn_saving_its_progress(
    ntfy_server: NtfyServer, ntfy_url, backend
):

    result = broadcast.enqueue("Deploy", ["conveyor-test", "alerts", "ops"])
    (claimed,) = claim_all(backend.store)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "close_old_connections", lambda: None)  # keep the test's data
        outcome = runner.run_sync(claimed, [])

    assert outcome.return_value == 3
    assert [r.path for r in ntfy_server.received] == ["/conveyor-test", "/alerts", "/ops"]
    assert conveyor.metadata(result) == {
        "progress": {"done": 3, "total": 3},
        "sent": ["conveyor-test", "alerts", "ops"],
    }


@pytest.mark.django_db
def test_a_retried_broadcast_sends_only_to_the_topics_it_has_not_reached(
    ntfy_server: NtfyServer, ntfy_url, backend
):

    result = conveyor.enqueue(
        broadcast, "Deploy", ["conveyor-test", "alerts"], metadata={"sent": ["conveyor-test"]}
    )
    (claimed,) = claim_all(backend.store)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "close_old_connections", lambda: None)
        outcome = runner.run_sync(claimed, [])

    assert outcome.return_value == 2
    assert [r.path for r in ntfy_server.received] == ["/alerts"]
    assert conveyor.metadata(result)["progress"] == {"done": 2, "total": 2}
