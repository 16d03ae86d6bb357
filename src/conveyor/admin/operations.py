"""Operator actions from the admin: apply a store action per backend, report, and log."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest

from conveyor.backends import conveyor_backends
from conveyor.conf import BackendOptions
from conveyor.models import TaskRecord
from conveyor.store import Applied, Engine, store_for

logger = logging.getLogger(__name__)

# Ids named in a message; the rest are counted.
MESSAGE_IDS_SHOWN = 10
LOG_BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class Operation:
    """One operator action: how to apply it, and how to speak of it."""

    done: str  # "Retried"
    refusal: str  # why a task is refused: "only FAILED tasks can be retried"
    change_message: str  # the admin log's account of one changed task
    apply: Callable[[Engine, list[int], HttpRequest], Applied]


def perform(
    request: HttpRequest,
    queryset: QuerySet[TaskRecord],
    operation: Operation,
    *,
    quiet_refusals: bool = False,
    changed_before: bool = False,
) -> bool:
    """Apply an operation to the selected tasks; tell the user what was done and refused
    (unless `quiet_refusals`: a first step whose refusals the next step reports); return
    whether anything changed (`changed_before`: a previous step changed something)."""
    backends = conveyor_backends()
    changed: list[int] = []
    refused: list[int] = []
    for alias, ids in sorted(by_backend(queryset).items()):
        backend = backends.get(alias)
        if backend is None:
            messages.error(
                request,
                f"Not applied to {describe(ids)}: backend {alias!r} is not a conveyor "
                "backend in TASKS.",
            )
            continue
        applied = operation.apply(backend.store, ids, request)
        log_changes(request, queryset, applied.changed, operation.change_message)
        changed += applied.changed
        refused += applied.refused
    if changed:
        messages.success(request, f"{operation.done} {describe(changed)}.")
    if refused and not quiet_refusals:
        # "Nothing was changed" only when it is true of the whole selection.
        unchanged = "" if changed or changed_before else " Nothing was changed."
        messages.warning(request, f"Refused {describe(refused)}: {operation.refusal}.{unchanged}")
    return bool(changed)


def delete_tasks(queryset: QuerySet[TaskRecord]) -> None:
    """Delete the selected tasks through their backends' stores (RUNNING ones stay)."""
    backends = conveyor_backends()
    for alias, ids in sorted(by_backend(queryset).items()):
        backend = backends.get(alias)
        # Rows of a backend no longer in TASKS can still be deleted; no policy is involved.
        store = (
            backend.store
            if backend
            else store_for(backend_name=alias, options=BackendOptions(), using=queryset.db)
        )
        store.delete(ids)


def by_backend(queryset: QuerySet[TaskRecord]) -> dict[str, list[int]]:
    """The selected task ids, grouped by backend alias."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for pk, alias in queryset.order_by().values_list("pk", "backend_name"):
        grouped[alias].append(pk)
    return grouped


def log_changes(
    request: HttpRequest, queryset: QuerySet[TaskRecord], ids: Sequence[int], message: str
) -> None:
    """Add the changed tasks, as the changelist reads them, to the admin's history."""
    user_id = getattr(request.user, "pk", None)
    if user_id is None:
        return
    for start in range(0, len(ids), LOG_BATCH_SIZE):
        rows = queryset.filter(pk__in=ids[start : start + LOG_BATCH_SIZE]).only(
            "pk", "task_path", "status"
        )
        LogEntry.objects.log_actions(user_id, rows, CHANGE, change_message=message)


def describe(ids: Sequence[int]) -> str:
    """'task #4', or '3 tasks (#4, #5, #9)', naming at most MESSAGE_IDS_SHOWN ids."""
    ordered = sorted(ids)
    if len(ordered) == 1:
        return f"task #{ordered[0]}"
    shown = ", ".join(f"#{pk}" for pk in ordered[:MESSAGE_IDS_SHOWN])
    more = (
        f" and {len(ordered) - MESSAGE_IDS_SHOWN} more" if len(ordered) > MESSAGE_IDS_SHOWN else ""
    )
    return f"{len(ordered)} tasks ({shown}{more})"
