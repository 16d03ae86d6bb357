"""Chaos run: workers are killed, frozen and cut off from the database while tasks stream in.

    .venv/bin/python -m scripts.chaos --database postgresql --duration 180

Starts --workers worker processes (short heartbeats, up to 5 attempts per task) on a fresh
database of its own (`chaos`; a temporary file for SQLite). For --duration seconds an
enqueuer streams `record` tasks, which write one Execution row per run, while the script
SIGKILLs a random worker every --kill-interval seconds (some of them get a hurried stop
instead: SIGTERM twice) and restarts it, freezes one (SIGSTOP, then SIGCONT) every
--freeze-interval seconds, and, on PostgreSQL and MariaDB, cuts every worker connection
through a TCP proxy every --cut-interval seconds. The enqueuer connects directly: the
workers are under test, not enqueue.

Then the stream stops, the survivors drain the backlog, and the script prints how many tasks
were enqueued, finished, lost (missing, or not final) and executed more than once, and for
each of those whether its attempts show why: every extra run is an attempt recorded as
FAILED (WorkerLost: its worker died or froze after running it; WorkerInterrupted: a hurried
stop; or the task's own error, e.g. its write hit a cut connection). Exits 1 if a task was
lost, a duplicate is unexplained, a task succeeded without running, or a worker crashed or
logged a traceback (a worker started during a cut exits at start-up; that is counted apart).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scripts import reliability

LABEL = "chaos"
HEARTBEAT_SECONDS = 1.0
WORKER_TIMEOUT_SECONDS = 4.0
WORKER_OPTIONS = {
    "max_attempts": 5,
    "backoff_factor": 1,  # every retry waits 1 s
    "heartbeat_interval": HEARTBEAT_SECONDS,
    "worker_timeout": WORKER_TIMEOUT_SECONDS,
}
ENQUEUE_TICK_SECONDS = 0.1
PROGRESS_EVERY_SECONDS = 15.0
RESTART_DELAY_SECONDS = (0.5, 3.0)
# Shorter than most tasks, so the second signal finds tasks running and interrupts them.
HURRIED_STOP_GAP_SECONDS = (0.0, 0.05)
EXIT_GRACE_SECONDS = 30.0
# Maintenance runs every heartbeat interval with up to 25% jitter.
RECOVERY_BOUND_SECONDS = WORKER_TIMEOUT_SECONDS + 1.25 * HEARTBEAT_SECONDS
LOG_MARKERS = {
    "outages": "Database unavailable",
    "reconnections": "Database is back",
    "recovered tasks": "Recovered task",
    "fenced writes": "no longer held",
    "re-registrations": "declared dead",
    "released claims": "claim reply was lost",
    "tracebacks": "Traceback",
}


def number(kind: type[float] | type[int], minimum: float) -> Any:
    """An argparse type: a number of `kind` no smaller than `minimum`."""

    def parse(text: str) -> float | int:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    seconds = number(float, 0)
    add("--database", choices=reliability.VENDORS, default="postgresql")
    add("--workers", type=number(int, 1), default=4, help="worker processes (%(default)s)")
    add("--concurrency", type=number(int, 1), default=2, help="per worker (%(default)s)")
    add("--duration", type=seconds, default=180.0, help="seconds of chaos (%(default)s)")
    add("--tasks-per-second", type=seconds, default=25.0, help="enqueue rate (%(default)s)")
    add("--task-seconds", type=seconds, default=0.1, help="longest task sleep (%(default)s)")
    add("--kill-interval", type=seconds, default=8.0, help="mean, s; 0: none (%(default)s)")
    add("--stop-share", type=seconds, default=0.25, help="hurried stops among kills (%(default)s)")
    add("--freeze-interval", type=seconds, default=30.0, help="mean, s; 0: none (%(default)s)")
    add("--cut-interval", type=seconds, default=20.0, help="mean, s; 0: none (%(default)s)")
    add("--cut-max", type=number(float, 0.5), default=8.0, help="longest cut, s (%(default)s)")
    add("--drain-timeout", type=seconds, default=300.0, help="seconds (%(default)s)")
    add("--seed", type=int, default=None, help="for the faults and the tasks (random)")
    add("--name", default="chaos", help="the database, dropped and created (%(default)s)")
    add("--logs", type=Path, default=None, help="directory for worker logs (a temporary one)")
    options = parser.parse_args()
    if options.database == "sqlite":
        options.cut_interval = 0.0  # a file, not a server: no connection to cut
    if options.seed is None:
        options.seed = random.randrange(1_000_000)
    return options


# -- the stream of tasks ---------------------------------------------------------------------


class Enqueuer(threading.Thread):
    """Enqueues `record` tasks at a steady rate, on a connection of its own."""

    def __init__(self, rate: float, task_seconds: float, rng: random.Random) -> None:
        super().__init__(name="enqueuer", daemon=True)
        self.rate = rate
        self.task_seconds = task_seconds
        self.rng = rng
        self.ids: list[int] = []
        self.errors = 0
        self.finish = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        from django.db import DatabaseError, connection

        started = time.monotonic()
        try:
            while not self.finish.wait(ENQUEUE_TICK_SECONDS):
                due = int(self.rate * (time.monotonic() - started)) - len(self.ids)
                try:
                    self.enqueue(due)
                except DatabaseError:
                    # Rolled back (SQLite's lock wait ran out); the next tick enqueues them.
                    self.errors += 1
                    connection.close()
        except BaseException as exc:
            self.failure = exc  # the run is void without its stream: the main thread stops
            raise
        finally:
            connection.close()

    def enqueue(self, count: int) -> None:
        from conveyor import enqueue_many
        from tests.tasksapp.tasks import record

        if count <= 0:
            return
        calls = [
            ((), {"label": LABEL, "sleep": round(self.rng.uniform(0, self.task_seconds), 3)})
            for _ in range(count)
        ]
        self.ids.extend(int(result.id) for result in enqueue_many(record, calls))


# -- the workers -----------------------------------------------------------------------------


@dataclass
class Slot:
    """One place in the fleet; each process started in it is a new generation."""

    index: int
    generation: int = 0
    process: reliability.WorkerProcess | None = None
    worker_id: str = ""
    restart_at: float | None = None
    thaw_at: float | None = None
    exit_expected: bool = False


@dataclass
class Fleet:
    size: int
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    rng: random.Random
    slots: list[Slot] = field(default_factory=list)
    kills: dict[str, float] = field(default_factory=dict)  # worker id -> wall-clock time
    # worker id -> wall-clock time it was first killed, stopped or frozen
    faulted: dict[str, float] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)  # exits nobody asked for, hangs
    counts: Counter[str] = field(default_factory=Counter)
    # (wall-clock time, workers up) at every change: who could have run recovery, and when
    up_timeline: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> None:
        self.slots = [Slot(index) for index in range(self.size)]
        for slot in self.slots:
            self.launch(slot)

    def launch(self, slot: Slot) -> None:
        slot.generation += 1
        slot.worker_id = f"chaos-{slot.index}-{slot.generation}"
        slot.process = reliability.WorkerProcess(
            [*self.args, "--id", slot.worker_id],
            log_path=self.log_dir / f"{slot.worker_id}.log",
            env=self.env,
        )
        slot.restart_at, slot.thaw_at, slot.exit_expected = None, None, False

    def available(self) -> list[Slot]:
        """Slots whose worker runs and is not frozen: candidates for the next fault."""
        return [
            s
            for s in self.slots
            if s.process and s.process.alive() and s.thaw_at is None and s.restart_at is None
        ]

    def note_up(self) -> None:
        up = len(self.available())
        if not self.up_timeline or self.up_timeline[-1][1] != up:
            self.up_timeline.append((time.time(), up))

    def nobody_up(self, start: float, end: float) -> bool:
        """Whether at some moment between two wall-clock times no worker was up."""
        before = [up for at, up in self.up_timeline if at <= start][-1:]
        during = [up for at, up in self.up_timeline if start < at < end]
        return 0 in before + during

    def kill(self, slot: Slot, now: float) -> str:
        assert slot.process is not None
        slot.process.signal(signal.SIGKILL)
        self.kills[slot.worker_id] = time.time()
        self.faulted.setdefault(slot.worker_id, time.time())
        self._expect_exit(slot, now)
        self.counts["kills"] += 1
        return f"SIGKILL {slot.worker_id}"

    def hurry(self, slot: Slot, now: float, gap: float) -> str:
        """A hurried stop: SIGTERM, then a second SIGTERM before running tasks can finish."""
        assert slot.process is not None
        slot.process.signal(signal.SIGTERM)
        time.sleep(gap)
        slot.process.signal(signal.SIGTERM)
        self._expect_exit(slot, now)
        self.counts["hurried stops"] += 1
        self.faulted.setdefault(slot.worker_id, time.time())
        return f"SIGTERM x2 {slot.worker_id} ({gap:.2f}s apart)"

    def freeze(self, slot: Slot, until: float, now: float) -> str:
        assert slot.process is not None
        slot.process.signal(signal.SIGSTOP)
        slot.thaw_at = until
        self.counts["freezes"] += 1
        self.faulted.setdefault(slot.worker_id, time.time())
        return f"SIGSTOP {slot.worker_id} for {until - now:.1f}s"

    def _expect_exit(self, slot: Slot, now: float) -> None:
        slot.exit_expected = True
        slot.restart_at = now + self.rng.uniform(*RESTART_DELAY_SECONDS)

    def tick(self, now: float) -> list[str]:
        """Thaw, restart and notice workers that exited on their own; return what happened."""
        events = []
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            if slot.thaw_at is not None and now >= slot.thaw_at:
                process.signal(signal.SIGCONT)
                slot.thaw_at = None
                events.append(f"SIGCONT {slot.worker_id}")
            if not process.alive() and not slot.exit_expected:
                events.append(self.exited(slot))
                self._expect_exit(slot, now)
            overdue = slot.restart_at is not None and now >= slot.restart_at + EXIT_GRACE_SECONDS
            if overdue and process.alive():  # a second SIGTERM must stop a worker at once
                self.crashes.append(f"{slot.worker_id} still running after a hurried stop")
                events.append(f"HUNG {self.crashes[-1]}; SIGKILL")
                process.kill()
            if slot.restart_at is not None and now >= slot.restart_at and not process.alive():
                process.kill()  # reaps it and closes its log
                self.launch(slot)
                events.append(f"start {slot.worker_id}")
        return events

    def exited(self, slot: Slot) -> str:
        """Note a worker that exited unasked: a crash (one started during a cut waits)."""
        assert slot.process is not None
        slot.process.kill()  # reaps it and closes its log
        status = slot.process.popen.returncode
        self.crashes.append(f"{slot.worker_id} exited with {status}")
        return f"CRASH {self.crashes[-1]}"

    def calm(self) -> None:
        """End every fault: thaw frozen workers, start the missing ones now."""
        for slot in self.slots:
            if slot.thaw_at is not None:
                slot.thaw_at = time.monotonic()
            if slot.restart_at is not None:
                slot.restart_at = time.monotonic()
        while any(s.restart_at is not None or s.thaw_at is not None for s in self.slots):
            self.tick(time.monotonic())
            time.sleep(0.05)
        self.wait_registered()

    def wait_registered(self, timeout: float = 60.0) -> None:
        """Wait until every worker has registered, so that it handles SIGTERM by then."""
        from conveyor.models import WorkerRecord

        deadline = time.monotonic() + timeout
        expected = {s.worker_id for s in self.slots}
        while time.monotonic() < deadline:
            self.tick(time.monotonic())
            expected = {s.worker_id for s in self.slots}
            registered = WorkerRecord.objects.filter(worker_id__in=expected).count()
            if registered == len(expected):
                return
            time.sleep(0.1)
        print(f"not all of {sorted(expected)} registered within {timeout:.0f}s", flush=True)

    def stop(self) -> list[int | None]:
        """Stop every worker gracefully (one SIGTERM); return their exit statuses."""
        statuses = []
        for slot in self.slots:
            if slot.process:
                slot.exit_expected = True
                slot.process.signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.process:
                statuses.append(slot.process.wait(timeout=60))
                slot.process.kill()
        return statuses

    def kill_all(self) -> None:
        for slot in self.slots:
            if slot.process:
                slot.process.kill()


# -- the faults ------------------------------------------------------------------------------


@dataclass
class Chaos:
    """Schedules kills, freezes and connection cuts at jittered intervals."""

    options: argparse.Namespace
    fleet: Fleet
    proxy: Any
    rng: random.Random
    started: float
    next_kill: float = 0.0
    next_freeze: float = 0.0
    next_cut: float = 0.0
    restore_at: float | None = None
    cuts: int = 0
    cut_seconds: float = 0.0
    cut_spans: list[tuple[float, float]] = field(default_factory=list)  # wall clock

    def __post_init__(self) -> None:
        now = self.started
        self.next_kill = self.after(now, self.options.kill_interval)
        self.next_freeze = self.after(now, self.options.freeze_interval)
        self.next_cut = self.after(now, self.options.cut_interval)

    def after(self, now: float, interval: float) -> float:
        return now + interval * self.rng.uniform(0.5, 1.5) if interval else float("inf")

    def step(self, now: float) -> list[str]:
        events = self.fleet.tick(now)
        if now >= self.next_kill:
            self.next_kill = self.after(now, self.options.kill_interval)
            events += self.strike(now)
        if now >= self.next_freeze:
            self.next_freeze = self.after(now, self.options.freeze_interval)
            events += self.freeze(now)
        if self.restore_at is not None and now >= self.restore_at:
            events.append(self.restore())
        if now >= self.next_cut and self.restore_at is None:
            self.next_cut = self.after(now, self.options.cut_interval)
            events.append(self.cut(now))
        self.fleet.note_up()
        return events

    def victim(self) -> Slot | None:
        """A random worker that is up, one holding a task if there is one: a fault that hits
        a worker between tasks tests little."""
        from conveyor.models import TaskRecord

        candidates = self.fleet.available()
        holding = set(
            TaskRecord.objects.filter(status="RUNNING").values_list("worker_id", flat=True)
        )
        busy = [s for s in candidates if s.worker_id in holding]
        return self.rng.choice(busy or candidates) if candidates else None

    def strike(self, now: float) -> list[str]:
        slot = self.victim()
        if slot is None:
            return []
        if self.rng.random() < self.options.stop_share:
            return [self.fleet.hurry(slot, now, self.rng.uniform(*HURRIED_STOP_GAP_SECONDS))]
        return [self.fleet.kill(slot, now)]

    def freeze(self, now: float) -> list[str]:
        slot = self.victim()
        if slot is None:
            return []
        # From shorter than worker_timeout (the worker just carries on) to twice as long
        # (it is declared dead, its tasks run elsewhere, and its late writes are fenced).
        length = WORKER_TIMEOUT_SECONDS * self.rng.uniform(0.5, 2.0)
        return [self.fleet.freeze(slot, now + length, now)]

    def cut(self, now: float) -> str:
        length = self.rng.uniform(0.5, self.options.cut_max)
        self.proxy.sever()
        self.restore_at = now + length
        self.cuts += 1
        self.cut_spans.append((time.time(), time.time() + length))
        return f"cut every worker connection for {length:.1f}s"

    def restore(self) -> str:
        assert self.restore_at is not None
        self.proxy.restore()
        self.cut_seconds += self.cut_spans[-1][1] - self.cut_spans[-1][0]
        self.restore_at = None
        return "connections allowed again"

    def end(self) -> None:
        if self.restore_at is not None:
            self.restore()


# -- watching and judging --------------------------------------------------------------------


def task_counts(ids: list[int]) -> Counter[str]:
    from django.db.models import Count

    from conveyor.models import TaskRecord
    from tests.tasksapp.tasks import record

    rows = (
        TaskRecord.objects.filter(task_path=record.module_path)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    counts: Counter[str] = Counter(dict(rows))
    counts["enqueued"] = len(ids)
    counts["final"] = counts["SUCCESSFUL"] + counts["FAILED"]
    return counts


def progress(elapsed: float, counts: Counter[str], fleet: Fleet, chaos: Chaos | None) -> str:
    up = sum(1 for s in fleet.slots if s.process and s.process.alive() and s.thaw_at is None)
    line = (
        f"[{elapsed:5.0f}s] enqueued {counts['enqueued']:6d}  final {counts['final']:6d} "
        f"(failed {counts['FAILED']})  running {counts['RUNNING']:3d}  ready {counts['READY']:5d}"
        f"  | workers up {up}/{fleet.size}"
    )
    if chaos is not None:
        faults = ", ".join(f"{n} {what}" for what, n in sorted(fleet.counts.items()))
        line += f"  | {faults or 'no faults yet'}, {chaos.cuts} cuts"
    return line


def drain(enqueuer: Enqueuer, fleet: Fleet, timeout: float) -> float:
    """Wait until every enqueued task is final (or the timeout); return the seconds waited."""
    started = time.monotonic()
    last_print = started
    while True:
        now = time.monotonic()
        fleet.tick(now)
        counts = task_counts(enqueuer.ids)
        if counts["final"] >= len(enqueuer.ids) or now - started > timeout:
            print(progress(now - started, counts, fleet, None), flush=True)
            return now - started
        if now - last_print >= PROGRESS_EVERY_SECONDS / 3:
            print(progress(now - started, counts, fleet, None), flush=True)
            last_print = now
        time.sleep(0.5)


@dataclass
class Verdict:
    lost: list[int] = field(default_factory=list)
    duplicates: dict[int, str] = field(default_factory=dict)  # id -> why, or "" if unexplained
    unexplained: dict[int, str] = field(default_factory=dict)
    successful_without_run: list[int] = field(default_factory=list)
    failed_attempts: Counter[str] = field(default_factory=Counter)
    recoveries: list[tuple[float, float]] = field(default_factory=list)  # (killed at, delay)
    # Attempts recovery closed although their worker was never killed, stopped or frozen.
    taken_from_live: int = 0


def judge(ids: list[int], fleet: Fleet) -> tuple[Counter[str], Verdict]:
    from conveyor.models import TaskRecord
    from tests.tasksapp.models import Execution
    from tests.tasksapp.tasks import record

    verdict = Verdict()
    statuses = dict(
        TaskRecord.objects.filter(task_path=record.module_path).values_list("pk", "status")
    )
    counts: Counter[str] = Counter(statuses.get(pk, "missing") for pk in ids)
    counts["unexpected rows"] = len(statuses.keys() - set(ids))
    verdict.lost = [pk for pk in ids if statuses.get(pk) not in ("SUCCESSFUL", "FAILED")]
    runs: dict[int, list[int]] = defaultdict(list)
    for result_id, attempt in Execution.objects.filter(label=LABEL).values_list(
        "result_id", "attempt"
    ):
        runs[int(result_id)].append(attempt)
    attempts = attempt_histories()
    for history in attempts.values():
        verdict.failed_attempts.update(cls for status, cls in history if status == "FAILED")
    for pk in ids:
        if statuses.get(pk) == "SUCCESSFUL" and not runs.get(pk):
            verdict.successful_without_run.append(pk)
        if len(runs.get(pk, [])) > 1:
            why, explained = explain(runs[pk], attempts.get(pk, []))
            (verdict.duplicates if explained else verdict.unexplained)[pk] = why
    lost = lost_attempts()
    verdict.recoveries = recovery_delays(lost, fleet.kills)
    verdict.taken_from_live = taken_from_live(lost, fleet.faulted)
    return counts, verdict


def attempt_histories() -> dict[int, list[tuple[str, str]]]:
    """Every task's attempts in order: (status, short exception class or '')."""
    from conveyor.models import Attempt

    histories: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for task_id, status, path in Attempt.objects.order_by("id").values_list(
        "task_id", "status", "error__exception_class_path"
    ):
        histories[task_id].append((status, (path or "").rpartition(".")[2]))
    return histories


def explain(runs: list[int], history: list[tuple[str, str]]) -> tuple[str, bool]:
    """Whether the attempts show every run of a task that ran more than once.

    Attempt rows are written in attempt order (the next attempt is claimed only once the
    previous one is closed), so the n-th row is attempt n. Each run must be a distinct
    attempt that was recorded, and every run but a successful last one must have FAILED.
    """
    shown = [f"{s}{' ' + c if c else ''}" for s, c in history]
    described = f"ran {len(runs)}x (attempts {sorted(runs)}); attempts: {', '.join(shown)}"
    if len(set(runs)) != len(runs):
        return f"{described}; one attempt ran twice", False
    for attempt in runs:
        if attempt > len(history):
            return f"{described}; attempt {attempt} ran but was never recorded", False
    successes = [a for a in runs if history[a - 1][0] == "SUCCESSFUL"]
    if len(successes) > 1:
        return f"{described}; more than one successful run", False
    causes = sorted({history[a - 1][1] for a in runs if history[a - 1][0] == "FAILED"})
    return f"{described}; shown by {', '.join(causes)}", True


def lost_attempts() -> list[tuple[str, float]]:
    """(worker id, wall-clock time recovery closed it) of every attempt closed as WorkerLost;
    the database and the script share the machine's clock."""
    from conveyor.models import Attempt

    closed = Attempt.objects.filter(error__exception_class_path__endswith=".WorkerLost")
    return [(w, at.timestamp()) for w, at in closed.values_list("worker_id", "stopped_at")]


def taken_from_live(lost: list[tuple[str, float]], faulted: dict[str, float]) -> int:
    """How many attempts recovery closed while their worker had not been killed, stopped or
    frozen (yet)."""
    return sum(1 for worker_id, at in lost if at < faulted.get(worker_id, float("inf")))


def recovery_delays(
    lost: list[tuple[str, float]], kills: dict[str, float]
) -> list[tuple[float, float]]:
    """For each task a SIGKILLed worker held: when the worker was killed, and how many seconds
    later recovery closed its attempt."""
    return [
        (kills[worker_id], at - kills[worker_id])
        for worker_id, at in lost
        if worker_id in kills and at >= kills[worker_id]
    ]


def log_counts(fleet: Fleet) -> Counter[str]:
    """How often each LOG_MARKERS line appears in the workers' logs."""
    counts: Counter[str] = Counter()
    for path in sorted(fleet.log_dir.glob("chaos-*.log")):
        text = path.read_text(errors="replace")
        for what, marker in LOG_MARKERS.items():
            counts[what] += text.count(marker)
    return counts


def report(
    options: argparse.Namespace,
    enqueuer: Enqueuer,
    fleet: Fleet,
    chaos: Chaos,
    statuses: list[int | None],
) -> int:
    counts, verdict = judge(enqueuer.ids, fleet)
    logs = log_counts(fleet)
    finished, good, bad = (
        counts["SUCCESSFUL"] + counts["FAILED"],
        counts["SUCCESSFUL"],
        counts["FAILED"],
    )
    twice, explained = len(verdict.duplicates) + len(verdict.unexplained), len(verdict.duplicates)
    print("\n== results")
    print(f"tasks enqueued      {len(enqueuer.ids)}  (enqueue errors retried: {enqueuer.errors})")
    print(f"finished            {finished}  (SUCCESSFUL {good}, FAILED {bad})")
    print(f"lost                {len(verdict.lost)}  (missing {counts['missing']}, "
          f"READY {counts['READY']}, RUNNING {counts['RUNNING']})")  # fmt: skip
    print(f"executed > once     {twice}  (explained {explained}, "
          f"unexplained {len(verdict.unexplained)})")  # fmt: skip
    causes = Counter(why.rpartition("shown by ")[2] for why in verdict.duplicates.values())
    for cause, n in causes.most_common():
        print(f"    shown by {cause}: {n}")
    print(f"successful, no run  {len(verdict.successful_without_run)}")
    print(f"unexpected rows     {counts['unexpected rows']}")
    failed = ", ".join(f"{cls or '?'} {n}" for cls, n in verdict.failed_attempts.most_common())
    print(f"failed attempts     {failed or 'none'}")
    print_recovery(verdict.recoveries, chaos.cut_spans, fleet)
    live = verdict.taken_from_live
    print(f"taken from live     {live} (WorkerLost before its worker was killed, stopped, frozen)")
    faults = ", ".join(f"{n} {what}" for what, n in sorted(fleet.counts.items()))
    print(f"faults              {faults}, {chaos.cuts} cuts ({chaos.cut_seconds:.0f}s cut off)")
    print(f"worker logs         {', '.join(f'{n} {what}' for what, n in logs.items())}")
    print(f"final stop          exit statuses {statuses}")
    print(f"load average        {reliability.load_average()}")
    for line in fleet.crashes:
        print(f"CRASH               {line}")
    for pk, why in sorted(verdict.duplicates.items())[:20]:
        print(f"  duplicate task {pk}: {why}")
    if len(verdict.duplicates) > 20:
        print(f"  ... and {len(verdict.duplicates) - 20} more explained duplicates")
    for pk, why in sorted(verdict.unexplained.items()):
        print(f"  UNEXPLAINED task {pk}: {why}")
    for pk in verdict.lost[:50]:
        print(f"  LOST task {pk}")
    problems = (
        sum(status != 0 for status in statuses)
        + len(verdict.lost)
        + len(verdict.unexplained)
        + len(verdict.successful_without_run)
        + len(fleet.crashes)
        + verdict.taken_from_live
        + logs["tracebacks"]
    )
    print(f"\nverdict: {'PASS' if not problems else 'FAIL'} (logs in {fleet.log_dir})")
    return 1 if problems else 0


def print_recovery(
    recoveries: list[tuple[float, float]], cuts: list[tuple[float, float]], fleet: Fleet
) -> None:
    if not recoveries:
        print("recovery after kill none measured (no killed worker held a task)")
        return
    delays = [delay for _, delay in recoveries]
    late = [(at, delay) for at, delay in recoveries if delay > RECOVERY_BOUND_SECONDS]
    # After an outage, workers wait a full worker_timeout before judging others.
    near_cut = [
        (at, delay)
        for at, delay in late
        if any(start < at + delay and end + WORKER_TIMEOUT_SECONDS > at for start, end in cuts)
    ]
    alone = [(at, d) for at, d in late if (at, d) not in near_cut and fleet.nobody_up(at, at + d)]
    print(
        f"recovery after kill {len(delays)} tasks: median {statistics.median(delays):.1f}s, "
        f"max {max(delays):.1f}s; {len(delays) - len(late)} within worker_timeout + "
        f"1.25 x heartbeat ({RECOVERY_BOUND_SECONDS:.2f}s), {len(late)} later "
        f"({len(near_cut)} around a cut, {len(alone)} while no worker was up)"
    )


# -- the run ---------------------------------------------------------------------------------


def main() -> int:
    options = parse_arguments()
    reliability.setup(options.database, options.name, WORKER_OPTIONS)
    reliability.recreate_database()
    reliability.exit_on_sigterm()
    print(f"chaos on {reliability.describe_machine()}; load {reliability.load_average()}")
    print(f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {reliability.revision()}")
    print(
        f"{options.workers} workers x {options.concurrency}, {options.duration:.0f}s at "
        f"{options.tasks_per_second:g} tasks/s; {describe_faults(options)}; "
        f"seed {options.seed}; OPTIONS {WORKER_OPTIONS}",
        flush=True,
    )
    log_dir = options.logs or Path(tempfile.mkdtemp(prefix="conveyor-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    proxy, env = start_proxy(options.database)
    fleet = Fleet(
        size=options.workers,
        args=["--concurrency", str(options.concurrency), "--shutdown-timeout", "10"],
        env=env,
        log_dir=log_dir,
        rng=random.Random(options.seed + 1),
    )
    try:
        return run(options, fleet, proxy)
    finally:
        fleet.kill_all()
        if proxy is not None:
            proxy.close()


def describe_faults(options: argparse.Namespace) -> str:
    def every(interval: float, what: str) -> str:
        return f"{what} every ~{interval:g}s" if interval else f"no {what}"

    return ", ".join(
        (
            every(options.kill_interval, "kill")
            + f" ({options.stop_share:.0%} of them hurried stops)",
            every(options.freeze_interval, "freeze"),
            every(options.cut_interval, "cut") + f" (up to {options.cut_max:g}s)"
            if options.cut_interval
            else "no cuts",
        )
    )


def start_proxy(vendor: str) -> tuple[Any, dict[str, str]]:
    """A proxy in front of the database server, and the environment that sends workers to it."""
    if vendor not in reliability.PORT_VARIABLES:
        return None, {}
    from django.db import connection

    from tests.faults import TcpProxy

    settings = connection.settings_dict
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"]))
    return proxy, {reliability.PORT_VARIABLES[vendor]: str(proxy.port)}


def run(options: argparse.Namespace, fleet: Fleet, proxy: Any) -> int:
    rng = random.Random(options.seed)
    enqueuer = Enqueuer(options.tasks_per_second, options.task_seconds, random.Random(rng.random()))
    fleet.start()
    enqueuer.start()
    started = time.monotonic()
    chaos = Chaos(options, fleet, proxy, rng, started)
    last_print = started
    while (now := time.monotonic()) < started + options.duration:
        if enqueuer.failure is not None:
            raise SystemExit(f"the enqueuer failed: {enqueuer.failure!r}")
        for event in chaos.step(now):
            print(f"[{now - started:5.1f}s] {event}", flush=True)
        if now - last_print >= PROGRESS_EVERY_SECONDS:
            print(progress(now - started, task_counts(enqueuer.ids), fleet, chaos), flush=True)
            last_print = now
        time.sleep(0.05)
    enqueuer.finish.set()
    enqueuer.join()
    chaos.end()
    fleet.calm()
    print(f"\n== stream stopped; {len(enqueuer.ids)} tasks enqueued; draining", flush=True)
    waited = drain(enqueuer, fleet, options.drain_timeout)
    print(f"drained in {waited:.0f}s; stopping the workers", flush=True)
    statuses = fleet.stop()
    return report(options, enqueuer, fleet, chaos, statuses)


if __name__ == "__main__":
    sys.exit(main())
