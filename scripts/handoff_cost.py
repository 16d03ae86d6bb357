"""What handing a task to a waiting thread costs, without Django or a database.

    .venv/bin/python -m scripts.handoff_cost [--items 100000] [--threads 1,16,64]

One thread puts items on a queue.SimpleQueue in rounds of --batch (16, a default worker's
claim) and waits for them to come back, as the worker loop hands claimed tasks to its
execution threads and gathers their outcomes; the threads do nothing else. Prints the CPU
(both sides) and wall time per item for each number of threads.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time


def measure(threads: int, items: int, batch: int) -> tuple[float, float]:
    """Microseconds of process CPU and of wall time per item handed off and back."""
    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[int] = queue.SimpleQueue()

    def work() -> None:
        while (item := jobs.get()) is not None:
            done.put(item)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, items, batch):
        size = min(batch, items - start)
        for item in range(start, start + size):
            jobs.put(item)
        for _ in range(size):
            done.get()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for _ in pool:
        jobs.put(None)
    for thread in pool:
        thread.join()
    return 1e6 * cpu / items, 1e6 * wall / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", default="1,16,64")
    options = parser.parse_args()
    for threads in (int(value) for value in options.threads.split(",")):
        cpu, wall = measure(threads, options.items, options.batch)
        print(f"{threads:>3} threads: {cpu:5.1f} µs CPU, {wall:5.1f} µs wall per item")


if __name__ == "__main__":
    main()
