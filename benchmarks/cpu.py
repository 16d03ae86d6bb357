"""Worker CPU: user and system time of every process in the workers' sessions, from /proc.

A worker process (and, under a supervisor, its children) runs in a session of its own, so
the session holds exactly the drain's worker processes. A process counts its own time and
that of the children it reaped (cutime, cstime), so a child that exited is counted once.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# Reading /proc costs the measuring process CPU of its own: not more often than this.
SAMPLE_INTERVAL_SECONDS = 0.05


def processes() -> list[tuple[int, int, list[str]]]:
    """(pid, session id, the stat fields after the command name) of every readable process."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append((int(entry.name), int(fields[3]), fields))  # field 6 of stat: session id
    return found


def session_cpu(sessions: set[int]) -> float:
    """Seconds of CPU (user + system, with reaped children) of every process in `sessions`."""
    ticks = sum(
        sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        for _, session, fields in processes()
        if session in sessions
    )
    return ticks / TICKS_PER_SECOND


class CpuTrace:
    """CPU of the worker sessions sampled at each completion poll, to leave start-up out:
    the drain's CPU runs from the last sample before the first task started to the end."""

    def __init__(self, sessions: list[int]) -> None:
        self.sessions = set(sessions)
        self.samples: list[tuple[float, float]] = []  # (wall clock time.time(), CPU seconds)

    def sample(self, *, force: bool = False) -> None:
        now = time.time()
        if force or not self.samples or now - self.samples[-1][0] >= SAMPLE_INTERVAL_SECONDS:
            self.samples.append((now, session_cpu(self.sessions)))

    def result(self, first_start: datetime | None, count: int) -> dict[str, Any]:
        """CPU seconds of the drain and of the whole run, and µs per task (drain only)."""
        if not self.samples:
            return {}
        total = self.samples[-1][1]
        start = first_start.astimezone(UTC).timestamp() if first_start else 0.0
        before = [cpu for moment, cpu in self.samples if moment <= start]
        drain = total - (before[-1] if before else 0.0)
        return {
            "cpu_seconds": drain,
            "cpu_seconds_with_startup": total,
            "cpu_us_per_task": 1e6 * drain / count if count else None,
        }
