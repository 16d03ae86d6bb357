"""conveyor's task context: Django's TaskContext with the task's metadata.

Shaped after django/new-features issue 141: a task declared with `takes_context=True` reads
and changes `context.metadata` (a dict) and saves it with `context.save_metadata()` (or
`await context.asave_metadata()`); what is left unsaved is saved when the attempt ends. A
save writes only the keys the task changed or removed since its last save, merged into the
row by key, so keys that someone else wrote meanwhile (an operator's note) are kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from conveyor.compat import TaskContext, normalize_json

if TYPE_CHECKING:  # django-stubs make TaskContext generic (and not a frozen dataclass)
    from conveyor.store import Engine

    ContextBase = TaskContext[..., Any]
else:
    ContextBase = TaskContext

logger = logging.getLogger(__name__)

# The progress convention: metadata[PROGRESS_KEY] = {"done": int, "total": int | None}.
PROGRESS_KEY = "progress"


@dataclass(slots=True)
class MetadataWriter:
    """Saves one attempt's metadata changes, fenced by the worker and the attempt."""

    store: Engine
    pk: int
    holder: tuple[str, int]
    # Per key, the JSON text last saved (or read at the start), to find what changed.
    saved: dict[str, str] = field(default_factory=dict)

    def changes(self, metadata: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        current = {key: as_json(key, value) for key, value in metadata.items()}
        changed = {k: json.loads(v) for k, v in current.items() if self.saved.get(k) != v}
        removed = [key for key in self.saved if key not in current]
        return changed, removed

    def save(self, metadata: dict[str, Any]) -> bool:
        changed, removed = self.changes(metadata)
        if not changed and not removed:
            return True
        held = self.store.save_metadata(
            self.pk, changed=changed, removed=removed, holder=self.holder
        )
        if not held:
            logger.warning("Task id=%s metadata not saved: the attempt is no longer held", self.pk)
            return False
        self.saved = {key: as_json(key, value) for key, value in metadata.items()}
        return True


def as_json(key: object, value: Any) -> str:
    """A metadata value as JSON text; raise TypeError naming the key if it is not JSON."""
    if not isinstance(key, str):
        raise TypeError(f"Task metadata keys must be strings, got {key!r}")
    try:
        return json.dumps(normalize_json(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Task metadata {key!r} must be JSON-serialisable: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorTaskContext(ContextBase):  # type: ignore[misc]
    """The context a conveyor worker passes to tasks declared with takes_context=True."""

    # The task's metadata: what the enqueuer gave, as the task has changed it since.
    metadata: dict[str, Any]
    writer: MetadataWriter | None = field(default=None, repr=False, compare=False)

    def save_metadata(self) -> bool:
        """Save the metadata's changes now; return False if this attempt no longer holds the
        task (recovered as lost), so nothing was saved."""
        if self.writer is None:
            return False
        return self.writer.save(self.metadata)

    async def asave_metadata(self) -> bool:
        """See save_metadata()."""
        return await sync_to_async(self.save_metadata, thread_sensitive=False)()

    def set_progress(self, done: int, total: int | None = None) -> bool:
        """Record how far along the task is (`done` of `total` steps) and save it."""
        self.metadata[PROGRESS_KEY] = {"done": done, "total": total}
        return self.save_metadata()

    async def aset_progress(self, done: int, total: int | None = None) -> bool:
        """See set_progress()."""
        self.metadata[PROGRESS_KEY] = {"done": done, "total": total}
        return await self.asave_metadata()


def conveyor_context(context: ContextBase) -> ConveyorTaskContext:
    """The context a task received, typed as conveyor's (django-stubs type a task's first
    parameter as Django's TaskContext); raise TypeError if another backend ran the task."""
    if not isinstance(context, ConveyorTaskContext):
        raise TypeError(
            f"{type(context).__name__} has no metadata: the task was not run by a conveyor worker"
        )
    return context


def progress_of(metadata: dict[str, Any]) -> tuple[int, int | None] | None:
    """(done, total) from metadata that follows the progress convention, else None."""
    value = metadata.get(PROGRESS_KEY)
    if not isinstance(value, dict):
        return None
    done, total = value.get("done"), value.get("total")
    if not isinstance(done, int) or not (total is None or isinstance(total, int)):
        return None
    return done, total
