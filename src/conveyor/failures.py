"""How failures are described: one-line messages, and the TaskErrors stored for them."""

from __future__ import annotations

import traceback

from conveyor.compat import TaskError


def class_path(kind: type[BaseException]) -> str:
    """The dotted path Django's TaskError names an exception class by."""
    return f"{kind.__module__}.{kind.__qualname__}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its class name when it has none."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def last_line(text: str) -> str:
    """The last line of a traceback: the exception's class and message."""
    return (text.strip().splitlines() or [""])[-1]


def error_from_exception(exc: BaseException) -> TaskError:
    """The TaskError of an exception a task raised, with its full traceback."""
    return TaskError(
        exception_class_path=class_path(type(exc)),
        traceback="".join(traceback.format_exception(exc)),
    )


def error_from_message(kind: type[BaseException], message: str) -> TaskError:
    """The TaskError of a failure conveyor records on a task's behalf (no traceback to show)."""
    return TaskError(
        exception_class_path=class_path(kind), traceback=f"{class_path(kind)}: {message}\n"
    )


def cancelled_while_running(requested_by: str, own: TaskError | None) -> TaskError:
    """The error of an attempt that ended (failed, snoozed, lost) after a cancel was
    requested: the task stops there, its own error kept above. PostgreSQL's FINISH_SQL writes
    the same text."""
    from conveyor.exceptions import TaskCancelled

    kept = f"{own.traceback.rstrip(chr(10))}\n\n" if own is not None else ""
    return TaskError(
        exception_class_path=class_path(TaskCancelled),
        traceback=(
            f"{kept}{class_path(TaskCancelled)}: The task was cancelled "
            f"(requested by {requested_by} while the attempt ran)\n"
        ),
    )
