"""The demo's task: publish a message to the ntfy topic."""

from __future__ import annotations

import base64
import logging

import httpx
from django.conf import settings
from django.tasks import task

from messagecenter.ntfy import unreachable

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


@task
def send_notification(message: str, title: str | None = None) -> None:
    """Publish a message to settings.NTFY_URL; raise on any HTTP or network error.

    A network error becomes NtfyUnreachable, which names the host; an HTTP error stays
    httpx's HTTPStatusError, which names the status and the URL.

    Raising is what makes the backend's retry policy try again.
    """
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if title:
        headers["Title"] = header_value(title)
    with httpx.Client(timeout=timeout_seconds()) as client:
        try:
            response = client.post(settings.NTFY_URL, content=message.encode(), headers=headers)
        except httpx.TransportError as exc:
            raise unreachable(settings.NTFY_URL, exc) from exc
        response.raise_for_status()
    logger.info("Notification sent url=%s status=%s", settings.NTFY_URL, response.status_code)


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
