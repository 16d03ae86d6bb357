"""The state of a backend's queues and workers, as `manage.py conveyor_status` reports it.

Every age is judged on the database clock: the time is read once from the database and
compared with times the database wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.compat import TaskResultStatus
from conveyor.schedules import Schedule
from conveyor.store import Engine, RateState, SlotState

RECENT_HOUR = timedelta(hours=1)
STATUSES = tuple(TaskResultStatus)


@dataclass(frozen=True, slots=True)
class WorkerState:
    """One row of the worker registry, judged alive or dead."""

    worker_id: str
    host: str
    pid: int
    queues: list[str]
    excluded_queues: list[str]
    started_at: datetime
    last_heartbeat_at: datetime
    alive: bool
    # Threads still running a sync task that was recorded at its timeout.
    stuck_threads: int = 0

    def serves(self, queue: str) -> bool:
        """Whether this worker runs tasks of a queue (no queues listed: every queue but the
        excluded ones)."""
        return (not self.queues or queue in self.queues) and queue not in self.excluded_queues


@dataclass(slots=True)
class QueueState:
    """Counts and ages of one queue of one backend."""

    queue: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    due: int = 0
    oldest_due_age: timedelta | None = None
    finished_last_minute: int = 0
    failed_last_minute: int = 0
    finished_last_hour: int = 0
    failed_last_hour: int = 0
    live_workers: int = 0
    dead_workers: int = 0
    paused_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule of the settings (or one gone from them) and its newest enqueued tick."""

    name: str
    task_path: str | None
    when: str | None
    last_tick: datetime | None
    last_task_id: int | None
    last_status: str | None
    next_tick: datetime | None

    @property
    def gone(self) -> bool:
        """Removed from the settings: it fires no more."""
        return self.when is None


@dataclass(frozen=True, slots=True)
class BackendState:
    """Queues and workers of one backend at one moment of the database clock."""

    backend: str
    database: str
    database_time: datetime
    worker_timeout: timedelta
    queues: list[QueueState]
    workers: list[WorkerState]
    schedules: list[ScheduleState] = field(default_factory=list)
    slots: list[SlotState] = field(default_factory=list)
    rates: list[RateState] = field(default_factory=list)


# The state of a queue by name, created on first use.
QueueLookup = Callable[[str], QueueState]


def backend_state(
    store: Engine, *, configured_queues: set[str], counts: bool = True
) -> BackendState:
    """Read the state of one backend; `counts=False` skips the queries that scan history
    (and the schedules' last results)."""
    now = store.database_now()
    queues: dict[str, QueueState] = {name: QueueState(name) for name in configured_queues}
    for name, since in store.paused_queues().items():
        queues.setdefault(name, QueueState(name)).paused_since = since

    def queue(name: str) -> QueueState:
        return queues.setdefault(name, QueueState(name))

    _add_due(store, now, queue)
    if counts:
        _add_counts(store, queue)
        _add_recent(store, now, queue)
    workers = _workers(store, now)
    for state in queues.values():
        serving = [w for w in workers if w.serves(state.queue)]
        state.live_workers = sum(w.alive for w in serving)
        state.dead_workers = len(serving) - state.live_workers
    return BackendState(
        backend=store.backend_name,
        database=store.using,
        database_time=now,
        worker_timeout=store.options.worker_timeout,
        queues=sorted(queues.values(), key=lambda q: q.queue),
        workers=workers,
        schedules=schedule_states(store, now) if counts else [],
        slots=store.slots() if counts else [],
        rates=store.rate_states() if counts else [],
    )


def schedule_states(store: Engine, now: datetime) -> list[ScheduleState]:
    """The backend's schedules and those gone from its settings that left ticks, by name."""
    configured: dict[str, Schedule] = dict(store.options.periodic)
    last = {row.schedule_name: row for row in store.last_ticks()}
    states = []
    for name in sorted(configured.keys() | last.keys()):
        schedule, row = configured.get(name), last.get(name)
        states.append(
            ScheduleState(
                name=name,
                task_path=None if schedule is None else schedule.task_path,
                when=None if schedule is None else schedule.describe(),
                last_tick=None if row is None else row.tick,
                last_task_id=None if row is None else row.task_id,
                last_status=None if row is None else row.status,
                next_tick=None if schedule is None else schedule.next_tick(now),
            )
        )
    return states


def _add_due(store: Engine, now: datetime, queue: QueueLookup) -> None:
    for row in store.due_counts():
        state = queue(row.queue_name)
        state.due, state.oldest_due_age = row.count, row.oldest_wait


def _add_counts(store: Engine, queue: QueueLookup) -> None:
    for row in store.status_counts():
        queue(row.queue_name).counts[row.status] = row.count


def _add_recent(store: Engine, now: datetime, queue: QueueLookup) -> None:
    for row in store.finished_counts(since=RECENT_HOUR):
        state = queue(row.queue_name)
        state.finished_last_hour += row.count
        state.finished_last_minute += row.last_minute
        if row.status == TaskResultStatus.FAILED:
            state.failed_last_hour += row.count
            state.failed_last_minute += row.last_minute


def _workers(store: Engine, now: datetime) -> list[WorkerState]:
    cutoff = now - store.options.worker_timeout
    return [
        WorkerState(
            worker_id=row.worker_id,
            host=row.host,
            pid=row.pid,
            queues=list(row.queues or []),
            excluded_queues=list(row.excluded_queues or []),
            started_at=row.started_at,
            last_heartbeat_at=row.last_heartbeat_at,
            alive=row.last_heartbeat_at >= cutoff,
            stuck_threads=row.stuck_threads,
        )
        for row in store.workers()
    ]


def problems(
    state: BackendState, *, max_age: timedelta | None = None, max_stuck: int | None = None
) -> list[str]:
    """What makes a backend unhealthy, one line each; empty when healthy."""
    found = []
    for worker in state.workers:
        if max_stuck is not None and worker.alive and worker.stuck_threads > max_stuck:
            found.append(
                f"backend={state.backend} worker={worker.worker_id}: {worker.stuck_threads} "
                f"thread(s) stuck in tasks past their timeout (more than {max_stuck})"
            )
    for queue in state.queues:
        where = f"backend={state.backend} queue={queue.queue}"
        if queue.due and not queue.live_workers:
            found.append(f"{where}: {queue.due} due task(s) and no live worker serves the queue")
        age = queue.oldest_due_age
        if max_age is not None and age is not None and age > max_age:
            found.append(
                f"{where}: oldest due task has waited {human_duration(age)} "
                f"(more than {human_duration(max_age)})"
            )
    return found


def as_json(state: BackendState) -> dict[str, Any]:
    """A BackendState as JSON-ready values (times in ISO 8601, ages in seconds)."""
    workers_by_state: dict[str, int] = defaultdict(int)
    for worker in state.workers:
        workers_by_state["live" if worker.alive else "dead"] += 1
    return {
        "backend": state.backend,
        "database": state.database,
        "database_time": state.database_time.isoformat(),
        "worker_timeout_seconds": state.worker_timeout.total_seconds(),
        "queues": [_queue_json(q) for q in state.queues],
        "workers": [_worker_json(w) for w in state.workers],
        "live_workers": workers_by_state["live"],
        "dead_workers": workers_by_state["dead"],
        "schedules": [_schedule_json(s) for s in state.schedules],
        "concurrency_limits": [
            {
                "key": s.key,
                "limit": s.limit,
                "holding": s.holding,
                "running": s.running,
                "waiting": s.waiting,
                "running_holders": list(s.holders),
            }
            for s in state.slots
        ],
        "rate_limits": [
            {
                "key": r.key,
                "limit": r.limit,
                "period_seconds": r.period.total_seconds(),
                "window_start": r.window_start.isoformat(),
                "starts": r.starts,
                "next_window": r.next_window.isoformat(),
                "waiting": r.waiting,
            }
            for r in state.rates
        ],
    }


def _schedule_json(schedule: ScheduleState) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "schedule": schedule.name,
        "task": schedule.task_path,
        "when": schedule.when,
        "gone": schedule.gone,
        "last_tick": iso(schedule.last_tick),
        "last_task_id": schedule.last_task_id,
        "last_status": schedule.last_status,
        "next_tick": iso(schedule.next_tick),
    }


def _queue_json(queue: QueueState) -> dict[str, Any]:
    age = queue.oldest_due_age
    return {
        "queue": queue.queue,
        **{status.lower(): n for status, n in queue.counts.items()},
        "due": queue.due,
        "oldest_due_age_seconds": None if age is None else round(age.total_seconds(), 3),
        "finished_last_minute": queue.finished_last_minute,
        "failed_last_minute": queue.failed_last_minute,
        "finished_last_hour": queue.finished_last_hour,
        "failed_last_hour": queue.failed_last_hour,
        "live_workers": queue.live_workers,
        "dead_workers": queue.dead_workers,
        "paused": queue.paused_since is not None,
        "paused_since": None if queue.paused_since is None else queue.paused_since.isoformat(),
    }


def _worker_json(worker: WorkerState) -> dict[str, Any]:
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "queues": worker.queues,
        "excluded_queues": worker.excluded_queues,
        "started_at": worker.started_at.isoformat(),
        "last_heartbeat_at": worker.last_heartbeat_at.isoformat(),
        "alive": worker.alive,
        "stuck_threads": worker.stuck_threads,
    }


def human_duration(duration: timedelta) -> str:
    """A short, readable duration: '850ms', '42s', '3m 10s', '2h 5m', '4d 3h'."""
    seconds = duration.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // sub_size}{sub}"
    return f"{whole // 60}m {whole % 60}s"
