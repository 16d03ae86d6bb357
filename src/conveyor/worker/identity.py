"""Who a worker is: a unique id, its host and its process."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from django.utils.crypto import get_random_string


@dataclass(frozen=True, slots=True)
class Identity:
    worker_id: str
    host: str
    pid: int


def make_identity(worker_id: str | None = None) -> Identity:
    """This process's identity; the default id is host, pid and a random part."""
    host = socket.gethostname()
    pid = os.getpid()
    if not worker_id:
        # The random part keeps ids unique when a pid is reused on the same host.
        worker_id = f"{host[:80]}-{pid}-{get_random_string(8)}"
    return Identity(worker_id=worker_id, host=host, pid=pid)
