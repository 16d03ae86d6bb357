"""Where notifications go: the ntfy topic URL, from NTFY_URL or a random topic made once."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.core.exceptions import ImproperlyConfigured

PUBLIC_SERVER = "https://ntfy.sh"
TOPIC_PREFIX = "conveyor-demo-"
TOPIC_RANDOM_BYTES = 8
# ntfy's own rule for topic names.
TOPIC_PATTERN = re.compile(r"[-_A-Za-z0-9]{1,64}")


def topic_url(environ: Mapping[str, str], *, topic_file: Path) -> str:
    """NTFY_URL from the environment, else a random ntfy.sh topic kept in topic_file."""
    configured = environ.get("NTFY_URL", "").strip()
    if configured:
        return validated_url(configured)
    return f"{PUBLIC_SERVER}/{kept_topic(topic_file)}"


def validated_url(url: str) -> str:
    """The URL without a trailing slash; ImproperlyConfigured if it names no topic."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or not parts.path.strip("/"):
        raise ImproperlyConfigured(
            f"NTFY_URL must be the http(s) URL of an ntfy topic, like {PUBLIC_SERVER}/my-topic; "
            f"got {url!r}"
        )
    return url.rstrip("/")


def kept_topic(topic_file: Path) -> str:
    """The topic saved in topic_file; make and save a random one first if there is none."""
    if not topic_file.exists():
        save_once(topic_file, TOPIC_PREFIX + secrets.token_hex(TOPIC_RANDOM_BYTES))
    topic = topic_file.read_text(errors="replace").strip()
    if not TOPIC_PATTERN.fullmatch(topic):
        raise ImproperlyConfigured(
            f"{topic_file} does not hold an ntfy topic (1 to 64 letters, digits, '-' or '_'): "
            f"{topic[:70]!r}; delete the file to make a new topic"
        )
    return topic


def save_once(path: Path, text: str) -> None:
    """Write text to path unless path exists: processes that start together keep one topic."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text + "\n")
    try:
        # A hard link appears whole and never replaces a file another process saved first.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


@dataclass(frozen=True, slots=True)
class Subscription:
    """How to receive what is published to a topic URL."""

    url: str
    server: str
    topic: str

    @classmethod
    def of(cls, url: str) -> Subscription:
        parts = urlsplit(url)
        return cls(
            url=url,
            server=f"{parts.scheme}://{parts.netloc}",
            topic=parts.path.rstrip("/").rsplit("/", 1)[-1],
        )

    @property
    def on_public_server(self) -> bool:
        return self.server == PUBLIC_SERVER

    @property
    def curl_command(self) -> str:
        return f"curl -s {self.url}/json"

    def instructions(self) -> list[str]:
        """The ways to subscribe, one line each, for a terminal."""
        app = f"ntfy app: subscribe to topic {self.topic}"
        if not self.on_public_server:
            app += f" on server {self.server}"
        return [app, f"web: open {self.url}", f"terminal: {self.curl_command}"]


class NtfyUnreachable(Exception):
    """The ntfy server could not be reached, or did not answer."""


def unreachable(url: str, error: httpx.TransportError) -> NtfyUnreachable:
    """The error for a request to url that failed on the network: it names the host, and
    what to change when it is the public server the demo picked by itself."""
    host = urlsplit(url).netloc
    connecting = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
    what = f"Could not reach {host}" if connecting else f"{host} did not answer"
    if Subscription.of(url).on_public_server:
        advice = (
            "Is this machine offline? To send to another ntfy server, set NTFY_URL "
            "(see demo/README.md)."
        )
    else:
        advice = "Is the ntfy server that NTFY_URL names running, and reachable from here?"
    return NtfyUnreachable(f"{what}: {str(error) or type(error).__name__}. {advice}")
