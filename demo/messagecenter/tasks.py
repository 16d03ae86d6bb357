"""The demo's tasks: publish a message to the ntfy topic, or to several in turn."""

from __future__ import annotations

import base64
import logging

import httpx
from django.conf import settings

from conveyor.compat import TaskContext, task
from conveyor.context import conveyor_context
from messagecenter.ntfy import Subscription, unreachable

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


@task
def send_notification(message: str, title: str | None = None) -> None:
    """Publish a message to settings.NTFY_URL; raise on any HTTP or network error.

    A network error becomes NtfyUnreachable, which names the host; an HTTP error stays
    httpx's HTTPStatusError, which names the status and the URL.

    Raising is what makes the backend's retry policy try again.
    """
    publish(settings.NTFY_URL, message, title)


@task(takes_context=True)
def broadcast(
    context: TaskContext[..., int], message: str, topics: list[str], title: str | None = None
) -> int:
    """Publish a message to several topics of settings.NTFY_URL's server, one after another;
    return how many. Progress is saved after each topic, for the page's progress bar.

    The topics already sent to are kept in the task's metadata, so a retry after a failure
    sends only to the others.
    """
    conveyor = conveyor_context(context)
    server = Subscription.of(settings.NTFY_URL).server
    sent: list[str] = list(conveyor.metadata.get("sent", []))
    conveyor.set_progress(len(sent), len(topics))
    for topic in topics:
        if topic in sent:
            continue
        publish(f"{server}/{topic}", message, title)
        sent.append(topic)
        conveyor.metadata["sent"] = sent
        conveyor.set_progress(len(sent), len(topics))
    return len(sent)


def publish(url: str, message: str, title: str | None) -> None:
    """Post a message to one ntfy topic URL; raise on any HTTP or network error."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if title:
        headers["Title"] = header_value(title)
    with httpx.Client(timeout=timeout_seconds()) as client:
        try:
            response = client.post(url, content=message.encode(), headers=headers)
        except httpx.TransportError as exc:
            raise unreachable(url, exc) from exc
        response.raise_for_status()
    logger.info("Notification sent url=%s status=%s", url, response.status_code)


def timeout_seconds() -> float:
    """How long one request may take: connecting, sending and waiting for the answer."""
    return float(getattr(settings, "NTFY_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))


def header_value(text: str) -> str:
    """Text as an HTTP header value: ASCII as it is, anything else as an RFC 2047 word.

    Header values are bytes a server may read as Latin-1; ntfy decodes RFC 2047 words.
    """
    if text.isascii():
        return text
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
