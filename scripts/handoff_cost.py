"""What handing a task to a waiting thread costs, without Django or a database.

    .venv/bin/python -m scripts.handoff_cost [--items 64000] [--threads 1,16,64] [--work 0]

One thread hands items over in rounds of --batch (16, a default worker's claim) and waits
for them to come back, as the worker loop hands claimed tasks to its execution threads and
gathers their outcomes; each thread spins --work microseconds per item (a task's own Python).
Compares a queue.SimpleQueue, one put per item (conveyor before the group hand-off), with
conveyor.worker.handoff.Handoff, one put per round. Prints per item the CPU of the whole
process, the CPU of the handing thread alone, and the wall time.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.worker.handoff import Handoff


@dataclass
class Queues:
    """One way to hand items over: put a round, and take one."""

    put_round: Callable[[list[int | None]], None]
    get: Callable[[], int | None]


def simple_queue() -> Queues:
    items: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def put_round(round_: list[int | None]) -> None:
        for item in round_:
            items.put(item)

    return Queues(put_round, items.get)


def group_handoff() -> Queues:
    items: Handoff[int | None] = Handoff()
    return Queues(items.put_all, items.get)


KINDS: dict[str, Callable[[], Queues]] = {"simplequeue": simple_queue, "handoff": group_handoff}


def measure(
    kind: str, threads: int, items: int, batch: int, work_us: float
) -> tuple[float, float, float]:
    """Microseconds per item: process CPU, the handing thread's CPU, wall time."""
    jobs = KINDS[kind]()
    done: queue.SimpleQueue[int] = queue.SimpleQueue()

    def work() -> None:
        while (item := jobs.get()) is not None:
            until = time.perf_counter() + work_us / 1e6
            while time.perf_counter() < until:
                pass
            done.put(item)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    handing = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, items, batch):
        round_: list[int | None] = list(range(start, min(start + batch, items)))
        before = time.thread_time()
        jobs.put_round(round_)
        handing += time.thread_time() - before
        for _ in round_:
            done.get()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    jobs.put_round([None] * threads)
    for thread in pool:
        thread.join()
    return 1e6 * cpu / items, 1e6 * handing / items, 1e6 * wall / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", default="1,16,64")
    parser.add_argument("--work", type=float, default=0.0, help="microseconds per item")
    options = parser.parse_args()
    for threads in (int(value) for value in options.threads.split(",")):
        for kind in KINDS:
            cpu, handing, wall = measure(kind, threads, options.items, options.batch, options.work)
            print(
                f"{threads:>3} threads, {kind:<11}: {cpu:5.1f} µs CPU, {handing:4.2f} µs "
                f"handing, {wall:5.1f} µs wall per item"
            )


if __name__ == "__main__":
    main()
