"""The reference tables of the docs, compared with the code they describe."""

from __future__ import annotations

import ast
import re
from argparse import Action, ArgumentParser
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conveyor import conf, durations, enqueue_many, schedules
from conveyor.admin.tasks import TaskRecordAdmin
from conveyor.backend import DatabaseBackend
from conveyor.compat import TaskResultStatus
from conveyor.conf import RetryPolicy, parse_options
from conveyor.indexes import PartialIndex
from conveyor.management.commands import conveyor_purge, conveyor_status, conveyor_worker
from conveyor.models import (
    Attempt,
    Error,
    Lease,
    MinuteCount,
    PausedQueue,
    RollupMark,
    ScheduleTick,
    TaskRecord,
    WorkerRecord,
)
from conveyor.store import Outcome
from tests.docs.pages import ROOT, UNMARKED_PAGES, checked_pages, code, codes, table
from tests.factories import ALL_QUEUES, claim_all
from tests.tasksapp.tasks import noop

CONFIGURATION = "docs/configuration.md"
OPERATIONS = "docs/operations.md"
INTERNALS = "docs/internals.md"
WORKER = "docs/worker.md"
SOURCE = ROOT / "src" / "conveyor"
QUEUES = frozenset({"default", "emails"})


def literal(text: str) -> object:
    return ast.literal_eval(text)


def word(text: str) -> object:
    """A default as a table cell writes it: a Python literal, or a bare word (a string)."""
    try:
        return literal(text)
    except (ValueError, SyntaxError):
        return text


def defaults() -> conf.BackendOptions:
    return parse_options("default", {}, QUEUES)


@pytest.mark.any_database
class TestOptions:
    def test_every_option_is_listed_with_its_real_default(self) -> None:
        rows = table(CONFIGURATION, "options").records()
        assert {code(r["option"]) for r in rows} == conf._OPTION_KEYS
        for row in rows:
            given = {code(row["option"]): literal(code(row["default"]))}
            assert parse_options("default", given, QUEUES) == defaults(), row

    def test_purge_keys_and_defaults(self) -> None:
        rows = table(CONFIGURATION, "purge").records()
        assert {code(r["key"]) for r in rows} == conf._PURGE_KEYS
        for row in rows:
            key = code(row["key"])
            if "`" in row["default"]:
                assert getattr(defaults().purge, key) == literal(code(row["default"]))
            else:
                assert getattr(defaults().purge, key) is None, row

    def test_periodic_keys_and_defaults(self) -> None:
        rows = table(CONFIGURATION, "periodic").records()
        assert {code(r["key"]) for r in rows} == schedules.SCHEDULE_KEYS
        spec = {"task": "shop.tasks.sync", "cron": "* * * * *"}
        default = schedules.parse_schedule("s", spec, where="s")
        for row in rows:
            if "`" in row["default"]:
                key, value = code(row["key"]), word(code(row["default"]))
                given = schedules.parse_schedule("s", {**spec, key: value}, where="s")
                assert given == default, row

    def test_durations_mean_what_the_table_says(self) -> None:
        for row in table(CONFIGURATION, "durations").records():
            written = code(row["you write"])
            value = eval(written, {"timedelta": timedelta})  # the page's own text
            meant = eval(code(row["it means"]), {"timedelta": timedelta})
            assert durations.parse(value) == meant, row

    def test_retry_delays(self) -> None:
        for row in table(CONFIGURATION, "retry-delays").rows:
            attempts, factor, waits = row
            policy = RetryPolicy(max_attempts=int(attempts), backoff_factor=float(factor))
            delays = []
            n = 1
            while (delay := policy.retry_delay(n)) is not None:
                delays.append(f"{delay.total_seconds():g}")
                n += 1
            assert (", ".join(delays) or "no retry") == waits, row

    def test_every_documented_error_is_the_real_message(self) -> None:
        rows = table(CONFIGURATION, "errors").records()
        assert len(rows) >= 10
        for row in rows:
            with pytest.raises(ImproperlyConfigured) as raised:
                parse_options("default", literal(code(row["OPTIONS"])), QUEUES)
            assert str(raised.value) == code(row["error"])


def parser_of(command: type) -> ArgumentParser:
    return command().create_parser("manage.py", "x")  # type: ignore[no-any-return]


def own_actions(parser: ArgumentParser) -> dict[str, Action]:
    """The command's own arguments (not Django's common ones), by their first spelling."""
    common = parser_of(conveyor_purge.Command.__mro__[1])  # BaseCommand
    shared = {s for a in common._actions for s in a.option_strings}
    found = {}
    for action in parser._actions:
        names = action.option_strings or [action.dest]
        if not set(names) & shared:
            found[names[0]] = action
    return found


def check_flags(page: str, name: str, command: type, *, positional: str = "") -> None:
    parser = parser_of(command)
    actions = own_actions(parser)
    rows = table(page, name).records()
    first = next(iter(rows[0]))
    documented = {}
    for row in rows:
        spellings = [c.split()[0] for c in codes(row[first])]
        documented[spellings[0]] = (spellings, row["default"])
    if positional:
        documented[positional] = documented.pop(next(k for k in documented if "-" not in k))
    assert set(documented) == set(actions)
    for flag, (spellings, default) in documented.items():
        action = actions[flag]
        if action.option_strings:
            assert set(spellings) == set(action.option_strings), flag
        if re.fullmatch(r"`[^`]+`", default) and flag != positional:
            value = code(default)
            converted = action.type(value) if callable(action.type) else word(value)
            assert converted == action.default, flag
        elif flag != positional:
            assert action.default in (None, False, []), flag


@pytest.mark.any_database
class TestCommands:
    def test_worker_flags(self) -> None:
        check_flags(CONFIGURATION, "worker-flags", conveyor_worker.Command)

    def test_status_flags(self) -> None:
        check_flags(OPERATIONS, "status-flags", conveyor_status.Command)

    def test_purge_arguments(self) -> None:
        check_flags(OPERATIONS, "purge-flags", conveyor_purge.Command, positional="which")


def source_text() -> str:
    return "\n".join(path.read_text() for path in SOURCE.rglob("*.py"))


@pytest.mark.any_database
class TestLoggingAndThreads:
    def test_loggers_are_module_loggers(self) -> None:
        import importlib
        import logging

        for name in table(CONFIGURATION, "loggers").column("logger"):
            module = importlib.import_module(code(name))
            assert module.logger is logging.getLogger(code(name))

    def test_log_lines_are_the_code_s_messages(self) -> None:
        text = source_text()
        for row in table(CONFIGURATION, "log-lines").records():
            assert f'"{code(row["message"])}"' in text, row

    def test_thread_names(self) -> None:
        text = source_text()
        for cell in table(WORKER, "threads").column("thread"):
            if "`" in cell:
                name = code(cell).removesuffix("N")
                assert f'"{name}' in text or f'f"{name}' in text, name


@pytest.mark.any_database
def test_admin_actions() -> None:
    rows = table(OPERATIONS, "admin-actions").column("action")
    descriptions = [
        getattr(TaskRecordAdmin, name).short_description for name in TaskRecordAdmin.actions
    ]
    assert rows == descriptions


MODELS = {
    m.__name__: m
    for m in (
        TaskRecord,
        Attempt,
        Error,
        WorkerRecord,
        Lease,
        ScheduleTick,
        PausedQueue,
        MinuteCount,
        RollupMark,
    )
}


@pytest.mark.any_database
@pytest.mark.parametrize("name", sorted(MODELS))
def test_data_model_lists_every_field(name: str) -> None:
    fields = {f.name: f.get_internal_type() for f in MODELS[name]._meta.concrete_fields}
    documented = {
        code(r["field"]): code(r["type"]) for r in table(INTERNALS, f"model-{name}").records()
    }
    assert documented == fields


@pytest.mark.any_database
def test_indexes() -> None:
    # The rows column names a partial index's condition, or says "all".
    indexes = {
        i.name: (list(i.fields), isinstance(i, PartialIndex)) for i in TaskRecord._meta.indexes
    }
    documented = {
        code(r["index"]): (codes(r["columns"]), r["rows (PostgreSQL, SQLite)"] != "all")
        for r in table(INTERNALS, "indexes").records()
    }
    assert documented == indexes


def count(action: object) -> int:
    with CaptureQueriesContext(connection) as queries:
        action()  # type: ignore[operator]
    return len(queries)


VENDORS = {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}


@pytest.mark.django_db(transaction=True)
def test_statement_counts_on_this_database(backend: DatabaseBackend) -> None:
    rows = {r["database"]: r for r in table(INTERNALS, "statements").records()}
    row = rows[VENDORS[connection.vendor]]
    assert count(noop.enqueue) == int(row["`enqueue()`"])
    assert count(lambda: enqueue_many(noop, [((), {})] * 2500)) == int(
        row["`enqueue_many()` of 2,500"]
    )
    TaskRecord.objects.all().delete()
    for size in (1, 50):
        enqueue_many(noop, [((), {})] * size)
        claimed: list[TaskRecord] = []
        # Claims reuse the paused queues read within the last second: count the steady state.
        backend.store.next_available_at(ALL_QUEUES)
        claim = count(lambda: claimed.extend(claim_all(backend.store, "w", limit=size)))  # noqa: B023
        outcomes = [Outcome(r, TaskResultStatus.SUCCESSFUL) for r in claimed]
        finish = count(lambda: backend.store.finish(worker_id="w", outcomes=outcomes))  # noqa: B023
        assert len(claimed) == size
        assert (claim, finish) == (
            int(row["claim of 1 or 50"]),
            int(row["finish of 1 or 50"]),
        ), size
        enqueue_many(noop, [((), {})] * (2 * size))
        running = claim_all(backend.store, "w", limit=size)
        outcomes = [Outcome(r, TaskResultStatus.SUCCESSFUL) for r in running]
        both = count(
            partial(
                backend.store.finish_and_claim,
                worker_id="w",
                outcomes=outcomes,
                queues=ALL_QUEUES,
                limit=size,
            )
        )
        assert both == int(row["the two at once"]), size


@pytest.mark.any_database
@pytest.mark.parametrize("page", checked_pages())
def test_links_to_files_resolve(page: str) -> None:
    # Pages that other owners are still writing may be linked before they exist.
    expected = {Path(ROOT, p) for p in UNMARKED_PAGES}
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (ROOT / page).read_text()):
        path = ((ROOT / page).parent / target).resolve()
        assert path.exists() or path in expected, f"{page}: broken link {target}"


@pytest.mark.any_database
@pytest.mark.django_db
def test_the_metrics_table_is_what_conveyor_exports() -> None:
    from prometheus_client import REGISTRY

    from conveyor import metrics

    exported = {}
    for collector in (
        metrics.ENQUEUED,
        metrics.STARTED,
        metrics.FINISHED,
        metrics.WAIT,
        metrics.RUN,
    ):
        for family in collector.describe():
            suffix = "_total" if family.type == "counter" else ""
            exported[family.name + suffix] = (family.type, list(collector._labelnames))
    for family in metrics.COLLECTOR.collect():
        labels = ["backend"] if family.name == "conveyor_workers_alive" else ["backend", "queue"]
        exported[family.name] = (family.type, labels)
    documented = {
        code(r["metric"]): (r["type"], codes(r["labels"]))
        for r in table(OPERATIONS, "metrics").records()
    }
    assert documented == exported
    assert metrics.COLLECTOR in REGISTRY._collector_to_names


@pytest.mark.any_database
def test_the_observe_settings_table_is_what_conveyor_reads() -> None:
    from conveyor import observe

    source = Path(observe.__file__).read_text()
    read = set(re.findall(r'getattr\(settings, "(\w+)", (True|False)\)', source))
    documented = {
        (code(r["setting"]), code(r["default"]))
        for r in table(CONFIGURATION, "observe-settings").records()
    }
    assert documented == read
