"""The order of a run: per database, every measurement, systems interleaved per repeat so
that drift of the machine touches every system alike."""

from __future__ import annotations

import argparse
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import iobound, profiling, report, scale
from benchmarks.celerybench import CeleryHarness
from benchmarks.databases import Server, server
from benchmarks.environment import say
from benchmarks.measurements import Harness, Variant, variants
from benchmarks.processes import BenchError
from benchmarks.systems import CONVEYOR, SYSTEMS, System

OUTPUT = Path(__file__).resolve().parent.parent / ".cache" / "bench"
PROFILE_TASKS = 5_000


class Entry:
    """One row of results: a measurement's per-system samples (one per repeat)."""

    def __init__(self, label: str, unit: str, *, higher_is_better: bool, note: str = "") -> None:
        self.label = label
        self.unit = unit
        self.higher_is_better = higher_is_better
        self.note = note
        self.samples: dict[str, list[float | None]] = defaultdict(list)
        self.raw: dict[str, list[Any]] = defaultdict(list)

    def add(self, system: str, value: float | None, raw: Any = None) -> None:
        self.samples[system].append(value)
        self.raw[system].append(raw)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "note": self.note,
            "samples": dict(self.samples),
            "raw": dict(self.raw),
        }


class Run:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.systems = [SYSTEMS[name] for name in options.systems]
        self.variants = variants(options.concurrency)
        self.entries: dict[str, dict[str, Entry]] = {}
        self.errors: list[str] = []
        self.profiles: dict[str, Any] = {}
        self.curve: dict[str, list[dict[str, Any]]] = {}
        self.server_versions: dict[str, str] = {}
        self.skipped: list[str] = []
        self.logs = OUTPUT / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.celery = CeleryHarness(self.logs)
        # Celery keeps no table: it is measured once, beside this database's rows.
        databases = options.databases
        self.celery_vendor = "postgresql" if "postgresql" in databases else databases[0]

    # -- bookkeeping ------------------------------------------------------------------------

    def entry(self, vendor: str, key: str, label: str, unit: str, **kwargs: Any) -> Entry:
        table = self.entries.setdefault(vendor, {})
        if key not in table:
            table[key] = Entry(label, unit, **kwargs)
        return table[key]

    def attempt(self, what: str, action: Callable[..., Any], *args: Any) -> Any:
        """Run one step; a failure is recorded and the run goes on without its figure."""
        try:
            return action(*args)
        except (BenchError, OSError, ValueError, KeyError) as exc:
            message = f"{what}: {exc}"
            say(f"FAILED {message}")
            self.errors.append(message + "\n" + traceback.format_exc(limit=3))
            return None

    def results(self) -> dict[str, Any]:
        return {
            "databases": {
                vendor: {key: entry.as_json() for key, entry in table.items()}
                for vendor, table in self.entries.items()
            },
            "database_versions": self.server_versions,
            "profiles": self.profiles,
            "scale": self.curve,
            "errors": self.errors,
            "skipped": self.skipped,
        }

    def table(self) -> str:
        names = [system.name for system in self.systems]
        comparisons = {
            v.label + self.drain_suffix(): self.variant(v.compare_with).label + self.drain_suffix()
            for v in self.variants
            if v.compare_with
        }
        notes = [f"bulk enqueue: {s.name} uses {s.bulk_api}" for s in self.systems]
        if any(s.is_celery for s in self.systems):
            notes.append(
                f"Celery uses no database; it is measured once, beside the {self.celery_vendor} "
                "rows: solo pool for 1 process, prefork for 2, threads for --concurrency; "
                "results kept in Redis, as conveyor keeps every outcome, unless the row says not"
            )
        notes += self.skipped
        notes += [
            "ratios are conveyor/peer, the median of repeats paired within this run; "
            "conveyor-only rows are compared with the peers' row with as many processes",
            "↑ higher is better, ↓ lower is better",
        ]
        table = report.markdown(report.rows(self.results(), names), names, comparisons)
        text = table + "\n\n" + "\n".join(f"- {note}" for note in notes)
        text += "\n" + report.profile_markdown(self.profiles)
        return text + "\n" + scale.markdown(self.curve)

    def variant(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)

    def drain_suffix(self) -> str:
        tasks, peer_tasks = self.options.tasks, self.options.peer_tasks
        if tasks == peer_tasks or self.systems == [SYSTEMS[CONVEYOR]]:
            return f", {tasks:,} tasks"
        return f", {tasks:,} tasks (peers {peer_tasks:,})"

    def tasks_for(self, system: System) -> int:
        return int(self.options.tasks if system.name == CONVEYOR else self.options.peer_tasks)

    # -- the run ------------------------------------------------------------------------------

    def all(self) -> None:
        for vendor in self.options.databases:
            srv = server(vendor)
            self.server_versions[vendor] = self.attempt(f"{vendor} version", srv.version) or "?"
            systems = [s for s in self.systems if vendor in s.vendors]
            systems = [s for s in systems if not s.is_celery or vendor == self.celery_vendor]
            harness = Harness(srv, self.logs)
            ready = [s for s in systems if self.ready(vendor, harness, s)]
            self.database(vendor, harness, ready)
            for system in ready:
                if not system.is_celery:
                    self.attempt(f"{vendor} cleanup", self.cleanup, srv, system)

    def ready(self, vendor: str, harness: Harness, system: System) -> bool:
        """Migrate a database system; check that Celery's broker answers (or say why not)."""
        if not system.is_celery:
            return bool(self.attempt(f"{vendor} {system.name} migrate", harness.prepare, system))
        try:
            return self.celery.prepare(system)
        except BenchError as exc:
            say(str(exc))
            self.skipped.append(str(exc))
            return False

    def harness(self, harness: Harness, system: System) -> Any:
        """The harness that measures `system`: its database's, or Celery's."""
        return self.celery if system.is_celery else harness

    def database(self, vendor: str, harness: Harness, systems: list[System]) -> None:
        only = self.options.only
        tabled = [s for s in systems if not s.is_celery]
        if "statements" in only:
            for system in tabled:
                self.statements(vendor, harness, system)
        if "enqueue" in only or "drain" in only:
            for repeat in range(self.options.repeats):
                self.repeat(vendor, harness, systems, repeat)
        if "latency" in only:
            for system in systems:
                self.latency(vendor, harness, system)
        if "history" in only:
            self.history(vendor, harness, tabled)
        if "io" in only and any(s.name == CONVEYOR for s in systems):
            iobound.measure(self, vendor, harness)
        # The profile is of conveyor's worker, on the database of the latency target.
        profiled = vendor == "postgresql" or "postgresql" not in self.options.databases
        if "profile" in only and profiled and any(s.name == CONVEYOR for s in systems):
            self.profile(vendor, harness, SYSTEMS[CONVEYOR])
        # The curve counts PostgreSQL's connections and backends.
        if "scale" in only and vendor == "postgresql" and any(s.name == CONVEYOR for s in systems):
            self.scale(harness, SYSTEMS[CONVEYOR])

    def cleanup(self, srv: Server, system: System) -> None:
        """Leave nothing behind on the servers (SQLite files stay in .cache/bench/)."""
        if srv.vendor != "sqlite":
            for target in {srv.working(system.slug), srv.template(system.slug)}:
                srv.drop(target)

    def runs_peers(self, repeat: int) -> bool:
        return repeat < int(self.options.peer_repeats)

    def repeat(self, vendor: str, harness: Harness, systems: list[System], repeat: int) -> None:
        o = self.options
        if "enqueue" in o.only:
            entry = self.entry(
                vendor,
                "enqueue",
                f"enqueue one by one ({o.enqueue_count:,})",
                "tasks/s",
                higher_is_better=True,
            )
            for system in systems:
                found = self.attempt(
                    f"{vendor} {system.name} enqueue",
                    self.harness(harness, system).enqueue,
                    system,
                    o.enqueue_count,
                )
                entry.add(system.name, rate(found), found)
                say(f"{vendor} {system.name} enqueue #{repeat + 1}: {rate_text(found)}")
        if "drain" not in o.only:
            return
        bulk = self.entry(
            vendor,
            "bulk",
            "bulk enqueue (one call per drain)",
            "tasks/s",
            higher_is_better=True,
        )
        for variant in self.variants:
            entry = self.entry(
                vendor,
                variant.key,
                variant.label + self.drain_suffix(),
                "tasks/s",
                higher_is_better=True,
            )
            for system in systems:
                if not variant.applies_to(system):
                    continue
                if system.name != CONVEYOR and not self.runs_peers(repeat):
                    continue
                found = self.attempt(
                    f"{vendor} {system.name} {variant.key}",
                    self.harness(harness, system).drain,
                    system,
                    variant,
                    o.tasks,
                )
                entry.add(system.name, rate(found), found)
                self.cpu_entry(vendor, variant, entry).add(system.name, cpu_per_task(found))
                if found:
                    bulk.add(system.name, rate(found["bulk"]), found["bulk"])
                if any(s.is_celery for s in systems):
                    # Celery starts faster than Django; this row leaves start-up out.
                    busy = self.entry(
                        vendor,
                        variant.key + "_busy",
                        variant.label + ", first start to last finish",
                        "tasks/s",
                        higher_is_better=True,
                    )
                    busy.add(system.name, busy_rate(found))
                cpu = cpu_per_task(found)
                cpu_text = "" if cpu is None else f", {cpu:,.0f} µs CPU per task"
                what = f"{vendor} {system.name} {variant.key} #{repeat + 1}"
                say(f"{what}: {rate_text(found)}{cpu_text}")
            if self.runs_peers(repeat):
                self.without_results(vendor, systems, variant, entry)

    def cpu_entry(self, vendor: str, variant: Variant, drain: Entry) -> Entry:
        """The row of a drain's worker CPU per task (user + system, start-up left out)."""
        label = drain.label + ", worker CPU per task"
        return self.entry(vendor, variant.key + "_cpu", label, "µs", higher_is_better=False)

    def without_results(
        self, vendor: str, systems: list[System], variant: Variant, kept: Entry
    ) -> None:
        """Celery's drain with no result backend, beside conveyor's (which keeps results)."""
        celery = [s for s in systems if s.is_celery]
        if not celery:
            return
        entry = self.entry(
            vendor,
            variant.key + "_no_results",
            kept.label + ", Celery keeping no results",
            "tasks/s",
            higher_is_better=True,
        )
        conveyor = kept.samples.get(CONVEYOR, [])
        if conveyor:
            entry.add(CONVEYOR, conveyor[-1])
        for system in celery:
            found = self.attempt(
                f"{vendor} {system.name} {variant.key} without results",
                lambda s=system: self.celery.drain(s, variant, self.options.tasks, results=False),
            )
            entry.add(system.name, rate(found), found)
            say(f"{vendor} {system.name} {variant.key} no results: {rate_text(found)}")

    def latency(self, vendor: str, harness: Harness, system: System) -> None:
        n = self.options.latency_samples
        found = self.attempt(
            f"{vendor} {system.name} latency", self.harness(harness, system).latency, system, n
        )
        latencies = [1000 * x for x in found["latencies"]] if found else []
        for name, pick in (("p50", 0.50), ("p95", 0.95), ("max", 1.0)):
            entry = self.entry(
                vendor,
                f"latency_{name}",
                f"enqueue→start latency {name} ({n})",
                "ms",
                higher_is_better=False,
            )
            entry.add(
                system.name,
                report.percentile(latencies, pick) if latencies else None,
                found if name == "p50" else None,
            )
        if latencies:
            say(
                f"{vendor} {system.name} latency p50 {report.percentile(latencies, 0.5):.1f} ms "
                f"p95 {report.percentile(latencies, 0.95):.1f} ms max {max(latencies):.1f} ms"
            )

    def history(self, vendor: str, harness: Harness, systems: list[System]) -> None:
        o = self.options
        ready = []
        for system in systems:
            found = self.attempt(
                f"{vendor} {system.name} history rows",
                harness.prepare_history,
                system,
                o.history_rows,
                o.history_deferred,
            )
            if found:
                ready.append(system)
                say(
                    f"{vendor} {system.name}: {o.history_rows:,} history rows and "
                    f"{o.history_deferred:,} deferred tasks in "
                    f"{found['seconds']:.1f}s"
                )
        n = f"{o.history_tasks:,} tasks"
        rows = f"{o.history_rows:,}"
        plain = self.entry(
            vendor,
            "history_plain",
            f"drain, 1 process, {n}, empty table",
            "tasks/s",
            higher_is_better=True,
        )
        entry = self.entry(
            vendor,
            "history",
            f"drain, 1 process, {n}, on {rows} finished rows and "
            f"{o.history_deferred:,} deferred tasks",
            "tasks/s",
            higher_is_better=True,
        )
        slowdown = self.entry(
            vendor,
            "history_slowdown",
            "history slowdown: busy rate empty / with history",
            "ratio",
            higher_is_better=False,
        )
        for repeat in range(o.repeats):
            for system in ready:
                if system.name != CONVEYOR and not self.runs_peers(repeat):
                    continue
                self.history_pair(vendor, harness, system, repeat, (plain, entry, slowdown))
        for system in ready:
            self.attempt(f"{vendor} {system.name} drop history", harness.drop_history, system)

    def history_pair(
        self,
        vendor: str,
        harness: Harness,
        system: System,
        repeat: int,
        entries: tuple[Entry, Entry, Entry],
    ) -> None:
        """A plain drain and, right after it, the history drain: both meet the machine in
        the same state."""
        plain, entry, slowdown = entries
        count = self.options.history_tasks
        what = f"{vendor} {system.name}"
        without = self.attempt(
            f"{what} plain drain", harness.drain, system, self.variant("drain_1"), count
        )
        found = self.attempt(f"{what} history drain", harness.history_drain, system, count)
        plain.add(system.name, rate(without), without)
        entry.add(system.name, rate(found), found)
        before, after = busy_rate(without), busy_rate(found)
        ratio = before / after if before and after else None
        slowdown.add(system.name, ratio)
        say(
            f"{what} history #{repeat + 1}: {rate_text(without)} empty, {rate_text(found)} "
            "with history" + (f", slowdown {ratio:.2f}" if ratio else "")
        )

    def statements(self, vendor: str, harness: Harness, system: System) -> None:
        o = self.options
        found = self.attempt(
            f"{vendor} {system.name} statements",
            harness.statements,
            system,
            o.statement_tasks,
            o.concurrency,
        )
        rows = (
            ("statements_enqueue", "SQL statements per enqueue", "enqueue"),
            ("statements_bulk", "SQL statements per bulk-enqueued task", "bulk"),
            ("statements_drain", "SQL statements per drained task (1 process)", "drain"),
            (
                "statements_drain_threads",
                f"SQL statements per drained task, conveyor --concurrency {o.concurrency}",
                "drain_threads",
            ),
        )
        for key, label, part in rows:
            entry = self.entry(vendor, key, label, "statements", higher_is_better=False)
            value = found.get(part) if found else None
            if value is not None or part != "drain_threads":
                entry.add(system.name, value["total"] if value else None, value)
        if vendor == "postgresql":
            entry = self.entry(
                vendor,
                "transactions_drain",
                "transactions per drained task (1 process, pg_stat_database)",
                "transactions",
                higher_is_better=False,
            )
            drain = found.get("drain") if found else None
            entry.add(system.name, drain.get("transactions") if drain else None)
        parts = [f"{k} {v['total']:.2f}" for k, v in (found or {}).items()]
        say(f"{vendor} {system.name} statements per task: {', '.join(parts) or 'failed'}")

    def scale(self, harness: Harness, system: System) -> None:
        """The scaling curve: the steps interleaved within each repeat."""
        o = self.options
        sizes = [
            scale.Step(processes, concurrency)
            for concurrency in o.scale_concurrency
            for processes in o.scale_processes
        ]
        for repeat in range(o.repeats):
            for step in sizes:
                found = self.attempt(
                    f"postgresql scale {step.key}", scale.drain, harness, system, step, o.tasks
                )
                if found:
                    label = f"{step.processes} x {step.concurrency}"
                    self.curve.setdefault(label, []).append(found)
                    figures = scale.summary(found)
                    say(
                        f"postgresql scale {label} #{repeat + 1}: {rate_text(found)}, "
                        f"{figures['connections']} connections, "
                        f"{figures['busy_cores']:.2f} cores busy"
                    )

    def profile(self, vendor: str, harness: Harness, system: System) -> None:
        """py-spy on one conveyor worker during a drain, per worker configuration."""
        count = min(self.options.tasks, PROFILE_TASKS)
        for variant in (self.variant("drain_1"), self.variant("drain_1_threads")):
            raw = self.logs / f"{vendor}-profile-{variant.key}.txt"
            found = self.attempt(
                f"{vendor} profile {variant.key}",
                harness.profiled_drain,
                system,
                variant,
                count,
                raw,
            )
            if found:
                summary = profiling.summarise(raw)
                self.profiles[f"{vendor}/{variant.key}"] = {"drain": found, **summary}
                say(
                    f"{vendor} profile {variant.key}: {summary['threads']['MainThread']['buckets']}"
                )


def rate(found: dict[str, Any] | None) -> float | None:
    if not found or not found.get("seconds"):
        return None
    return float(found["count"]) / float(found["seconds"])


def cpu_per_task(found: dict[str, Any] | None) -> float | None:
    """Microseconds of the workers' CPU per task, from the first start to the drain's end."""
    value = found.get("cpu_us_per_task") if found else None
    return None if value is None else float(value)


def rate_text(found: dict[str, Any] | None) -> str:
    value = rate(found)
    return "failed" if value is None else f"{value:,.0f} tasks/s"


def busy_rate(found: dict[str, Any] | None) -> float | None:
    """Tasks per second between the first start and the last finish (no start-up)."""
    if not found or not found.get("busy_seconds"):
        return None
    return (float(found["count"]) - 1) / float(found["busy_seconds"])
