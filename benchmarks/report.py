"""Figures from raw samples: medians, ratios conveyor/peer, and the Markdown table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.systems import CONVEYOR


@dataclass(frozen=True)
class Row:
    """One line of the table: a measurement on one database, a value per system."""

    database: str
    measurement: str
    unit: str
    higher_is_better: bool
    values: dict[str, float | None]
    # Per-repeat values, to pair conveyor's repeat i with a peer's repeat i.
    samples: dict[str, list[float]]
    note: str = ""


def median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def pair_ratio(conveyor: list[float], peer: list[float]) -> float | None:
    """conveyor/peer: the median of ratios of repeats run side by side (repeat i with
    repeat i); with fewer peer repeats, every conveyor repeat meets the nearest peer one."""
    if not conveyor or not peer:
        return None
    ratios = [c / peer[min(i, len(peer) - 1)] for i, c in enumerate(conveyor) if peer]
    return statistics.median(ratios) if ratios else None


def rows(results: dict[str, Any], systems: list[str]) -> list[Row]:
    """Every row of the table, from the raw results of one run."""
    found: list[Row] = []
    for database, measured in results["databases"].items():
        for entry in measured.values():
            samples = {
                name: [s for s in entry["samples"].get(name, []) if s is not None]
                for name in systems
            }
            found.append(
                Row(
                    database=database,
                    measurement=entry["label"],
                    unit=entry["unit"],
                    higher_is_better=entry["higher_is_better"],
                    values={name: median(samples[name]) for name in systems},
                    samples=samples,
                    note=entry.get("note", ""),
                )
            )
    return found


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(table: list[Row], systems: list[str], comparisons: dict[str, str]) -> str:
    """One Markdown table; `comparisons` maps a conveyor-only measurement to the peers' one
    it is compared with (same number of worker processes)."""
    peers = [name for name in systems if name != CONVEYOR]
    header = ["database", "measurement", "unit", *systems, *(f"conveyor/{p}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_label = {(row.database, row.measurement): row for row in table}
    for row in table:
        cells = [row.database, row.measurement + (f" ({row.note})" if row.note else "")]
        cells.append(row.unit + (" ↑" if row.higher_is_better else " ↓"))
        cells += [number(row.values.get(name)) for name in systems]
        reference = by_label.get((row.database, comparisons.get(row.measurement, "")), row)
        for peer in peers:
            conveyor_samples = row.samples.get(CONVEYOR, [])
            # A peer measured at this very size (Celery's threads pool) is compared here.
            peer_samples = row.samples.get(peer) or reference.samples.get(peer, [])
            cells.append(ratio_text(pair_ratio(conveyor_samples, peer_samples)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_markdown(profiles: dict[str, Any], *, top: int = 8) -> str:
    """The profile summaries: per profiled drain, the busy threads' buckets and self time."""
    lines = []
    for name, profile in profiles.items():
        drain = profile.get("drain", {})
        rate = drain["count"] / drain["seconds"] if drain.get("seconds") else 0.0
        lines.append(f"\nProfile {name}: {drain.get('count', 0):,} tasks, {rate:,.0f} tasks/s")
        for thread, summary in profile.get("threads", {}).items():
            waiting = summary["self_time"][0]["percent"] if summary["self_time"] else 0.0
            if waiting >= 95.0:
                continue  # a thread that only waited (idle pool threads, heartbeat, listener)
            buckets = ", ".join(f"{k} {v:.0f}%" for k, v in summary["buckets"].items())
            lines.append(f"- {thread} ({summary['samples']:,} samples): {buckets}")
            for frame in summary["self_time"][:top]:
                lines.append(f"    - {frame['percent']:.1f}% {frame['frame']}")
    return "\n".join(lines)
