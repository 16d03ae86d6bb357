"""The engine interface: every operation on conveyor's tables, with its contract.

Nothing outside conveyor.store reads or writes conveyor's tables except through these
methods (the admin's read-only changelists aside; tests/unit/test_boundary.py checks it).
Every state change is a compare-and-set: it states what it expects to find, changes only
rows that still match, and reports what it changed. Times are the database's clock.
One implementation per database (postgresql.py, mysql.py, sqlite.py); what they share is in
portable.py, which is a base for engines, not part of this interface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from conveyor.conf import BackendOptions
from conveyor.models import Attempt, TaskRecord, WorkerRecord
from conveyor.store.values import (
    Activity,
    Applied,
    DueCount,
    Gauges,
    LastTick,
    NewTask,
    Outcome,
    QueueCount,
    QueueFilter,
    RateState,
    RetryDecider,
    SlotState,
    Written,
)


class WakeupSource(Protocol):
    """Tells an idle worker that tasks may have arrived, where the database can push."""

    def listen(self, wake: Callable[[], None], stopping: threading.Event) -> None:
        """Call `wake` on every notification until `stopping` is set; raise on a failure
        (the caller reconnects). Calls `wake` once listening, for what came before."""
        ...


class Engine(Protocol):
    """Task state for one backend alias (`backend_name`) on one database alias (`using`)."""

    backend_name: str
    options: BackendOptions
    using: str
    # Decides whether a failed attempt is retried and when (the backend's TaskPolicies: the
    # task's options, then its queue's, then the backend's).
    decider: RetryDecider

    # -- enqueue and results ---------------------------------------------------------------
    def insert(self, tasks: Sequence[NewTask]) -> None:
        """Store new READY tasks, all or none; fill in their ids and times. Listening
        workers wake once they commit."""
        ...

    def insert_controlled(self, tasks: Sequence[NewTask]) -> list[int | None]:
        """Store tasks with flow control, all or none, in order: a unique task whose key a
        live task holds is not stored (its entry is that task's id; None: stored, ids and
        times filled in); a task over its concurrency limit is stored waiting for a slot."""
        ...

    def promote(self, keys: Iterable[str]) -> int:
        """Give the free slots of these concurrency keys to their waiting tasks, highest
        priority first; return how many were promoted. Safe from any number of workers."""
        ...

    def waiting_keys(self) -> list[str]:
        """The concurrency keys that have tasks waiting for a slot."""
        ...

    def slots(self) -> list[SlotState]:
        """Per concurrency key with live tasks: its limit, holders, running and waiting."""
        ...

    def rate_states(self) -> list[RateState]:
        """Per rate-limit key: its latest window's starts, its limit, when the next window
        opens, and how many tasks wait for it."""
        ...

    def task(self, pk: int) -> tuple[TaskRecord, list[Attempt]]:
        """A task of this backend and its ended attempts, oldest first (with their errors);
        raise TaskRecord.DoesNotExist."""
        ...

    def tasks_of(self, task_path: str) -> Iterator[tuple[TaskRecord, list[Attempt]]]:
        """Every task of one path with its attempts, newest first, read in chunks."""
        ...

    def histories(self, ids: Iterable[int]) -> dict[int, list[Attempt]]:
        """The ended attempts (with errors) of these tasks, oldest first; absent: none."""
        ...

    # -- metadata ----------------------------------------------------------------------------
    def metadata(self, pk: int) -> dict[str, Any]:
        """A task's metadata as the database holds it now ({} if none was ever given); raise
        TaskRecord.DoesNotExist."""
        ...

    def save_metadata(
        self,
        pk: int,
        *,
        changed: Mapping[str, Any],
        removed: Iterable[str] = (),
        holder: tuple[str, int] | None = None,
    ) -> bool:
        """Set the `changed` top-level keys of a task's metadata and drop the `removed` ones,
        in one UPDATE that leaves every other key as the row holds it then (so concurrent
        writers of different keys keep each other's writes). With `holder` (worker id,
        attempt) only while that worker still runs that attempt. Report whether the task
        (still held, with a holder) was there; raise ValueError for a key with a quote or a
        backslash, TypeError or ValueError for a value that is not JSON."""
        ...

    # -- the worker's cycle ----------------------------------------------------------------
    def claim(self, *, worker_id: str, queues: QueueFilter, limit: int) -> list[TaskRecord]:
        """Mark up to `limit` due READY tasks RUNNING for this worker, most urgent first
        (see docs/internals.md for the order); no two workers ever get the same attempt.
        Tasks of paused queues are left alone (see pause_queue)."""
        ...

    def next_available_at(self, queues: QueueFilter) -> datetime | None:
        """When the next READY task of these queues becomes due (past if one is due now)."""
        ...

    def finish(self, *, worker_id: str, outcomes: Sequence[Outcome]) -> list[Written]:
        """Record ended attempts of tasks this worker holds, applying the retry policy (decided
        by `decider` before the write); skip (and log) those it no longer holds for that
        attempt (the fence)."""
        ...

    def finish_and_claim(
        self, *, worker_id: str, outcomes: Sequence[Outcome], queues: QueueFilter, limit: int
    ) -> tuple[list[Written], list[TaskRecord]]:
        """finish(outcomes), then claim(limit), as the two would (either may have nothing to
        do); on PostgreSQL in one round trip and one transaction, elsewhere one after the
        other. The claim sees what the finish wrote: a retry due at once may come back."""
        ...

    def release_unheld(self, *, worker_id: str, held: Iterable[int]) -> int:
        """Put back to READY the RUNNING tasks this worker holds but not among `held` (a
        claim whose reply was lost), undoing their attempt; return how many."""
        ...

    def wakeup_source(self) -> WakeupSource | None:
        """What wakes idle workers when tasks arrive, or None: they poll."""
        ...

    def wake_workers(self) -> None:
        """Wake idle workers now, where the database can (no-op elsewhere)."""
        ...

    def cancel_requests(self, worker_id: str) -> dict[int, str]:
        """The RUNNING tasks this worker holds whose cancel was requested, and by whom."""
        ...

    def cancel_source(self) -> WakeupSource | None:
        """What tells a worker at once that a cancel was requested (its `wake` is called),
        or None: the worker reads cancel_requests() every heartbeat interval."""
        ...

    def reset_connection(self) -> None:
        """Drop this thread's connection, after an error left it unusable."""
        ...

    # -- the worker registry and recovery ----------------------------------------------------
    def register_worker(
        self,
        *,
        worker_id: str,
        host: str,
        pid: int,
        queues: QueueFilter,
        take_over: bool = False,
    ) -> None:
        """Add a worker row; raise WorkerIdInUse if a live worker has the id. A stale row
        under the id (or any, with take_over) is replaced and its tasks recovered."""
        ...

    def heartbeat(self, worker_id: str) -> bool:
        """Record that the worker is alive; False if its row is gone (declared dead)."""
        ...

    def report_stuck(self, worker_id: str, stuck_threads: int) -> None:
        """Record how many of the worker's threads still run a task recorded at its timeout
        (conveyor_status shows them; --check fails past a threshold)."""
        ...

    def deregister_worker(self, worker_id: str) -> None:
        """Remove the worker's row (a clean exit)."""
        ...

    def worker(self, worker_id: str) -> WorkerRecord | None:
        """The registry row under an id, if any."""
        ...

    def workers(self) -> list[WorkerRecord]:
        """This backend's registry rows, by worker id."""
        ...

    def recover_lost(self, *, recovered_by: str, only: str | None = None) -> list[Written]:
        """Fail (WorkerLost) the running attempts of dead or unregistered workers, or of
        `only`, and apply retry policies; never the tasks of `recovered_by`. Exactly once,
        however many workers recover at the same time."""
        ...

    # -- operator actions -------------------------------------------------------------------
    def retry(self, ids: Iterable[int]) -> Applied:
        """FAILED -> READY now, with a fresh attempt budget; attempts are kept."""
        ...

    def run_now(self, ids: Iterable[int]) -> Applied:
        """READY tasks not yet due -> due now."""
        ...

    def cancel(self, ids: Iterable[int], *, cancelled_by: str) -> Applied:
        """READY -> FAILED, recorded as an attempt that failed with TaskCancelled."""
        ...

    def request_cancel(self, ids: Iterable[int], *, requested_by: str) -> Applied:
        """Mark RUNNING tasks for their worker to stop, and tell workers where the database
        can (PostgreSQL: NOTIFY). The task's running attempt then decides: a success stands;
        a failure, a snooze, a timeout or a lost worker ends the task FAILED with
        TaskCancelled (never retried). Refuses tasks that are not RUNNING."""
        ...

    def delete(self, ids: Iterable[int]) -> Applied:
        """Delete tasks with their attempts, except RUNNING ones (left to their worker)."""
        ...

    # -- periodic tasks ------------------------------------------------------------------------
    def enqueue_tick(
        self, task: NewTask, *, schedule_name: str, tick: datetime, window: timedelta
    ) -> int | None:
        """Enqueue `task` for one tick of a schedule unless it already was, by any worker:
        the tick's marker (unique per backend, schedule and tick) and the task row, recording
        schedule and tick, are written in one transaction, so exactly one caller ever
        succeeds. Return the task's id, or None when the tick was taken, or is older than
        `window` on the database clock (its marker may be pruned). Prunes this schedule's
        markers older than `window` before the tick."""
        ...

    def run_schedule(self, task: NewTask, *, schedule_name: str) -> int:
        """Enqueue `task` for a schedule now, outside its ticks (no marker); return its id."""
        ...

    def last_ticks(self) -> list[LastTick]:
        """The newest enqueued tick of every schedule with a marker, by schedule name, with
        its task's status."""
        ...

    # -- paused queues ---------------------------------------------------------------------
    def pause_queue(self, queue_name: str) -> bool:
        """Stop claims from a queue of this backend, in every process within a second (at
        once where the database notifies); enqueueing goes on, running tasks finish. Report
        whether it was running (False: already paused)."""
        ...

    def resume_queue(self, queue_name: str) -> bool:
        """Let workers claim from a paused queue again; report whether it was paused."""
        ...

    def paused_queues(self) -> dict[str, datetime]:
        """The paused queues of this backend, by name, with when each was paused."""
        ...

    # -- upkeep ------------------------------------------------------------------------------
    def take_lease(self, name: str, *, holder: str, duration: timedelta) -> bool:
        """Take a named lease that is free, expired or already the holder's, for `duration`;
        report whether the holder has it."""
        ...

    def renew_lease(self, name: str, *, holder: str, duration: timedelta) -> bool:
        """Extend a lease the holder still has and that has not expired."""
        ...

    def count_purgeable(self, *, finished: bool, older_than: timedelta) -> int:
        """How many tasks purge() would delete."""
        ...

    def purge(
        self,
        *,
        finished: bool,
        older_than: timedelta,
        limit: int | None = None,
        batch_size: int = ...,
    ) -> int:
        """Delete, in batches, results finished longer than `older_than` ago (finished), or
        READY tasks enqueued and due that long ago (not finished); return how many."""
        ...

    def roll_up(self, *, lag: timedelta, keep: timedelta, limit: int) -> int:
        """Sum the tasks finished in the whole minutes after this backend's rollup mark, and
        ended at least `lag` ago (a finish commits a little after its finished_at), per
        minute, queue, task path and final status into the rollup, at most `limit` minutes,
        oldest first; then move the mark past them. Starts no earlier than `keep` ago, and
        deletes rolled-up minutes older than that. The minutes' rows are replaced, never
        added to, and the mark moves by compare-and-set in the same transaction, so however
        many workers roll up at once, a minute is counted once. Return how many minutes
        were rolled up (0: up to date, or another worker moved the mark meanwhile)."""
        ...

    # -- reading the state -------------------------------------------------------------------
    def database_now(self) -> datetime:
        """The database's clock."""
        ...

    def due_counts(self) -> list[DueCount]:
        """Per queue: due READY tasks and the oldest one's wait. Reads due rows only."""
        ...

    def status_counts(self) -> list[QueueCount]:
        """Per queue and status: how many tasks (reads every row of the backend)."""
        ...

    def finished_counts(self, *, since: timedelta) -> list[QueueCount]:
        """Per queue and final status: tasks finished within `since`, and within a minute."""
        ...

    def activity(self, *, since: timedelta, bucket: str, top: int) -> Activity:
        """Over the last `since` (database clock, from the start of its first minute): tasks
        finished per `bucket` ("minute" or "hour") and final status, their waits per bucket
        in the fixed buckets of WAIT_BUCKETS_MS, and the `top` task paths with the most
        FAILED tasks. Reads the minutes before the rollup mark from the rollup (see roll_up),
        and only the finished rows after it from the task table (the finished_at index)."""
        ...

    def gauges(self) -> Gauges:
        """Per queue: due, deferred and running tasks and the oldest due one's wait (one
        aggregate over READY and RUNNING rows only); and the workers with a heartbeat
        within worker_timeout. For a metrics scrape: cheap whatever the history's size."""
        ...
