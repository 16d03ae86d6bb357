"""The hand-off from the worker loop to the execution threads: a group wakes one sleeper,
which wakes the next while items are left, and every item still finds a free thread at
once; nothing is lost or handed out twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from conveyor.worker.handoff import Handoff

WAIT = 10.0  # seconds: only a broken hand-off comes near it


@pytest.fixture
def consumers() -> Iterator[Callable[[Handoff[object], int, Callable[[object], None]], None]]:
    """Start threads that take items and run `each` on them until they take None."""
    started: list[tuple[Handoff[object], threading.Thread]] = []

    def start(handoff: Handoff[object], count: int, each: Callable[[object], None]) -> None:
        def consume() -> None:
            while (item := handoff.get()) is not None:
                each(item)

        for _ in range(count):
            thread = threading.Thread(target=consume, daemon=True)
            thread.start()
            started.append((handoff, thread))

    yield start
    for handoff, _ in started:
        handoff.put_all([None])
    for _, thread in started:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_items_come_out_in_the_order_they_went_in() -> None:
    handoff: Handoff[int] = Handoff()
    handoff.put_all([1, 2])
    handoff.put_all([3])
    assert [handoff.get() for _ in range(3)] == [1, 2, 3]
    assert len(handoff) == 0


def test_a_group_runs_on_as_many_sleeping_threads_at_once(consumers: Callable[..., None]) -> None:
    handoff: Handoff[object] = Handoff()
    # Each item waits until all of its group run together: only if every item found a
    # thread of its own, without waiting for another item to end, does the barrier open.
    group = 16
    together = threading.Barrier(group, timeout=WAIT)
    passed: list[object] = []
    lock = threading.Lock()
    all_passed = threading.Event()

    def run(item: object) -> None:
        together.wait()
        with lock:
            passed.append(item)
            if len(passed) == group:
                all_passed.set()

    consumers(handoff, group, run)
    handoff.put_all(range(group))
    assert all_passed.wait(WAIT)
    assert sorted(map(str, passed)) == sorted(map(str, range(group)))


def test_an_item_put_while_every_thread_is_busy_goes_to_the_first_one_free(
    consumers: Callable[..., None],
) -> None:
    handoff: Handoff[object] = Handoff()
    release = threading.Event()
    busy = threading.Semaphore(0)
    late_ran = threading.Event()
    ran: list[object] = []

    def run(item: object) -> None:
        if item == "block":
            busy.release()
            assert release.wait(WAIT)
        ran.append(item)
        if item == "late":
            late_ran.set()

    consumers(handoff, 2, run)
    handoff.put_all(["block", "block"])
    assert busy.acquire(timeout=WAIT)
    assert busy.acquire(timeout=WAIT)
    handoff.put_all([])  # an empty group changes nothing
    handoff.put_all(["late"])
    assert len(handoff) == 1  # no thread was free to take it
    release.set()
    assert late_ran.wait(WAIT)
    assert Counter(map(str, ran)) == {"block": 2, "late": 1}


def test_many_producers_and_consumers_lose_and_repeat_nothing(
    consumers: Callable[..., None],
) -> None:
    handoff: Handoff[object] = Handoff()
    taken: list[object] = []
    lock = threading.Lock()
    all_taken = threading.Event()
    producers, groups, size = 4, 200, 7
    expected = producers * groups * size

    def run(item: object) -> None:
        with lock:
            taken.append(item)
            if len(taken) == expected:
                all_taken.set()

    consumers(handoff, 8, run)

    def produce(producer: int) -> None:
        for group in range(groups):
            handoff.put_all((producer, group, index) for index in range(size))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert all_taken.wait(WAIT)
    assert len(taken) == expected
    assert len(set(taken)) == expected
