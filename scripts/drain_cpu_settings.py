"""The benchmark's settings with metrics and tracing off (scripts.drain_cpu): neither extra is
installed in the benchmark's environment, and the project's may have both."""

from __future__ import annotations

from benchmarks.settings import *  # noqa: F403

CONVEYOR_METRICS = False
CONVEYOR_TRACING = False
