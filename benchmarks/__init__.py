"""Runnable comparisons of conveyor with its peers; see docs/performance.md."""
