from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from messagecenter.ntfy import TOPIC_PATTERN, Subscription, save_once, topic_url, unreachable


def test_ntfy_url_from_the_environment_is_used_as_it_is(tmp_path: Path):
    topic_file = tmp_path / ".ntfy-topic"

    url = topic_url({"NTFY_URL": "https://ntfy.example.org/alerts/"}, topic_file=topic_file)

    assert url == "https://ntfy.example.org/alerts"
    assert not topic_file.exists()


@pytest.mark.parametrize(
    "value", ["ntfy.sh/alerts", "ftp://ntfy.sh/alerts", "https://ntfy.sh/", "https:///alerts"]
)
def test_an_ntfy_url_that_names_no_topic_is_refused(tmp_path: Path, value: str):
    topic_file = tmp_path / ".ntfy-topic"

    with pytest.raises(
        ImproperlyConfigured, match=r"^NTFY_URL must be the http\(s\) URL of an ntfy topic"
    ) as caught:
        topic_url({"NTFY_URL": value}, topic_file=topic_file)
    assert repr(value) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not topic_file.exists()


def test_without_ntfy_url_a_random_topic_is_made_and_kept(tmp_path: Path):
    topic_file = tmp_path / ".ntfy-topic"

    first = topic_url({}, topic_file=topic_file)
    second = topic_url({"NTFY_URL": ""}, topic_file=topic_file)

    topic = topic_file.read_text().strip()
    assert TOPIC_PATTERN.fullmatch(topic)
    assert first == second == f"https://ntfy.sh/{topic}"
    assert [p.name for p in tmp_path.iterdir()] == [".ntfy-topic"]


def test_every_new_topic_is_different(tmp_path: Path):
    urls = {topic_url({}, topic_file=tmp_path / f"topic-{n}") for n in range(5)}

    assert len(urls) == 5


def test_a_kept_topic_is_never_replaced(tmp_path: Path):
    topic_file = tmp_path / ".ntfy-topic"

    save_once(topic_file, "first-topic")
    save_once(topic_file, "second-topic")

    assert topic_file.read_text() == "first-topic\n"
    assert [p.name for p in tmp_path.iterdir()] == [".ntfy-topic"]


def test_a_topic_file_without_a_topic_gets_a_clear_error(tmp_path: Path):
    topic_file = tmp_path / ".ntfy-topic"
    topic_file.write_text("not a topic!\n")

    with pytest.raises(ImproperlyConfigured, match="does not hold an ntfy topic") as caught:
        topic_url({}, topic_file=topic_file)
    assert str(topic_file) in str(caught.value)
    assert "delete the file" in str(caught.value)
    assert topic_file.read_text() == "not a topic!\n"


def test_subscription_to_a_topic_on_ntfy_sh():
    subscription = Subscription.of("https://ntfy.sh/conveyor-demo-1234")

    assert subscription.topic == "conveyor-demo-1234"
    assert subscription.on_public_server
    assert subscription.instructions() == [
        "ntfy app: subscribe to topic conveyor-demo-1234",
        "web: open https://ntfy.sh/conveyor-demo-1234",
        "terminal: curl -s https://ntfy.sh/conveyor-demo-1234/json",
    ]


def test_subscription_to_a_topic_on_another_server_names_the_server():
    subscription = Subscription.of("http://10.0.0.5:8080/alerts")

    assert not subscription.on_public_server
    assert (
        subscription.instructions()[0]
        == "ntfy app: subscribe to topic alerts on server http://10.0.0.5:8080"
    )


def network_error(kind: type[httpx.TransportError], url: str, text: str) -> httpx.TransportError:
    return kind(text, request=httpx.Request("POST", url))


def test_when_ntfy_sh_is_unreachable_the_error_names_it_and_points_to_ntfy_url():
    url = "https://ntfy.sh/conveyor-demo-1234"
    error = network_error(
        httpx.ConnectError, url, "[Errno -3] Temporary failure in name resolution"
    )

    assert str(unreachable(url, error)) == (
        "Could not reach ntfy.sh: [Errno -3] Temporary failure in name resolution. "
        "Is this machine offline? To send to another ntfy server, set NTFY_URL "
        "(see demo/README.md)."
    )


def test_when_another_server_is_unreachable_the_error_names_it_and_ntfy_url():
    url = "http://10.0.0.5:8080/alerts"
    error = network_error(httpx.ConnectTimeout, url, "timed out")

    assert str(unreachable(url, error)) == (
        "Could not reach 10.0.0.5:8080: timed out. "
        "Is the ntfy server that NTFY_URL names running, and reachable from here?"
    )


def test_a_server_that_stops_answering_is_named():
    url = "https://ntfy.sh/alerts"
    error = network_error(httpx.RemoteProtocolError, url, "")

    assert str(unreachable(url, error)).startswith(
        "ntfy.sh did not answer: RemoteProtocolError. Is this machine offline?"
    )
