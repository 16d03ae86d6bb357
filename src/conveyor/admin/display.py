"""How the admin writes values for people: times with seconds, humane durations, short
paths and ids with the whole value in a tooltip, and statuses as coloured badges."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from conveyor.compat import TaskResultStatus
from conveyor.context import progress_of

# Worker ids longer than this many characters are shortened; the tooltip has them whole.
WORKER_ID_SHOWN = 16
# An error excerpt is the last line of the traceback, at most this long.
ERROR_EXCERPT_LENGTH = 200
EMPTY = "-"

_MINUTE, _HOUR, _DAY = 60, 3600, 86400
# The module of an exception's class at the start of a traceback's last line.
_EXCEPTION_MODULE = re.compile(r"^(?:\w+\.)+(?=\w+(?::|$))")


def duration(value: timedelta) -> str:
    """'7 ms', '2.3 s', '42 s', '1 min 5 s', '2 h 5 min', '3 d 4 h'.

    Two units at most: an operator reads how long, not to the millisecond. A negative
    duration (clocks of two hosts) reads as zero.
    """
    seconds = max(value.total_seconds(), 0.0)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    return _coarse(round(seconds))


def _coarse(seconds: int) -> str:
    for unit, name, smaller, smaller_name in (
        (_DAY, "d", _HOUR, "h"),
        (_HOUR, "h", _MINUTE, "min"),
        (_MINUTE, "min", 1, "s"),
    ):
        if seconds >= unit:
            whole, rest = divmod(seconds, unit)
            part = rest // smaller
            return f"{whole} {name} {part} {smaller_name}" if part else f"{whole} {name}"
    return f"{seconds} s"


def until(moment: datetime, now: datetime) -> str:
    """'now' once `moment` has come, else 'in 40 s', 'in 2 h 5 min' (whole seconds)."""
    left = moment - now
    if left <= timedelta(0):
        return "now"
    return f"in {_coarse(max(round(left.total_seconds()), 1))}"


def ago(elapsed: timedelta) -> str:
    """'3 s ago', '2 h 5 min ago'; 'now' below a second."""
    if elapsed < timedelta(seconds=1):
        return "now"
    return f"{_coarse(round(elapsed.total_seconds()))} ago"


def local(value: datetime) -> datetime:
    return timezone.localtime(value) if settings.USE_TZ and timezone.is_aware(value) else value


def exact(value: datetime) -> str:
    """'2026-11-30 21:04:07', in the current time zone."""
    return local(value).strftime("%Y-%m-%d %H:%M:%S")


def time(value: datetime | None) -> SafeString | str:
    """A time to the second, date and time of day in separate spans so that a narrow column
    wraps between them; the machine-readable form in <time datetime>."""
    if value is None:
        return EMPTY
    day, clock = exact(value).split(" ")
    return format_html(
        '<time datetime="{}"><span class="conveyor-date">{}</span> <span>{}</span></time>',
        value.isoformat(),
        day,
        clock,
    )


def shortened(text: str, limit: int) -> str:
    """The start and end of a long text around an ellipsis: worker ids differ at both ends
    (host first, pid and a random part last)."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 2
    head = limit - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


def with_tooltip(text: str, limit: int) -> SafeString | str:
    if not text:
        return EMPTY
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}</span>', text, shortened(text, limit))


def task_path(path: str) -> SafeString:
    """'tests.tasksapp.tasks.echo' -> 'tests.t.tasks.echo': the packages between the first
    and the module shrink to initials, the same way in every row. A narrow column may wrap
    the path after a dot, and nowhere else."""
    parts = path.split(".")
    if len(parts) > 3:
        parts = [parts[0], *(part[:1] for part in parts[1:-2]), *parts[-2:]]
    return mark_safe(".<wbr>".join(conditional_escape(part) for part in parts))


def badge(status: str) -> SafeString:
    """A status as a coloured badge; the colour is conveyor.css's, the word is the status."""
    known = status in TaskResultStatus.values
    css = status.lower() if known else "unknown"
    return format_html('<span class="conveyor-badge conveyor-badge--{}">{}</span>', css, status)


def error_excerpt(traceback: str) -> str:
    """The line of a traceback that says what went wrong: its last non-blank line, which
    Python writes as 'ExceptionClass: message'."""
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= ERROR_EXCERPT_LENGTH else last[: ERROR_EXCERPT_LENGTH - 1] + "…"


def without_module(line: str) -> str:
    """'httpx.ConnectError: refused' -> 'ConnectError: refused': the class name says enough
    in a narrow column."""
    return _EXCEPTION_MODULE.sub("", line, count=1)


def progress(metadata: dict[str, Any]) -> SafeString | str:
    """A progress bar with 'done of total' (or 'done' when the total is unknown), from
    metadata that follows the progress convention; '' when it does not."""
    found = progress_of(metadata)
    if found is None:
        return ""
    done, total = found
    if total is None or total <= 0:
        return format_html('<span class="conveyor-progress-text">{} done</span>', done)
    shown = min(max(done, 0), total)
    return format_html(
        '<span class="conveyor-progress"><progress value="{}" max="{}">{} of {}</progress>'
        '<span class="conveyor-progress-text">{} of {}</span></span>',
        shown,
        total,
        done,
        total,
        done,
        total,
    )
