"""The life of a child process of the process isolation mode (see children.py): set Django
up, then run the sync tasks the parent's slot sends, one at a time, until it sends None.

Apart from children.py because a spawned child imports this module before Django is set up:
nothing here may import models at the top.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from multiprocessing.connection import Connection

READY_MESSAGE = "ready"


def child_main(conn: Connection) -> None:
    """Set Django up, say so, then run tasks until None (or until the parent goes away)."""
    import django
    from django.db import connections

    # The parent decides when a child stops: a Ctrl-C to the process group is its to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    django.setup()
    from conveyor.worker.runner import run_sync

    conn.send(READY_MESSAGE)
    try:
        while (job := conn.recv()) is not None:
            record, history = job
            outcome = run_sync(record, history)
            # The exception object may not pickle; the stored error has its traceback.
            conn.send(replace(outcome, exception=None, result=None))
    except EOFError:
        pass  # the parent went away
    finally:
        connections.close_all()
