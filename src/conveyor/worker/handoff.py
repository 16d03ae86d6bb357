"""Handing claimed tasks to the execution threads, a claim's tasks at a time.

Waking a sleeping thread is most of what a hand-off costs (scripts/handoff_cost.py). A
queue that wakes one thread per item makes the worker loop, which every claim waits on, pay
for all of a claim's wake-ups before it can claim again. Here the loop wakes one thread per
group; each thread that takes an item wakes the next sleeper while items remain, before it
runs its own. Every item still finds a thread at once: a thread that is not asleep looks at
the items before it sleeps, and a sleeper is woken for as long as any are left.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable


class Handoff[T]:
    """A FIFO from one or more producers to many consumer threads (thread-safe)."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._sleeping = 0

    def put_all(self, items: Iterable[T]) -> None:
        """Add items in order and wake one sleeping consumer; it wakes the next."""
        with self._ready:
            self._items.extend(items)
            if self._items and self._sleeping:
                self._ready.notify()

    def get(self) -> T:
        """The oldest item, waiting for one; wakes another sleeper if more are left."""
        with self._ready:
            while not self._items:
                self._sleeping += 1
                try:
                    self._ready.wait()
                finally:
                    self._sleeping -= 1
            item = self._items.popleft()
            if self._items and self._sleeping:
                self._ready.notify()
            return item

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)
