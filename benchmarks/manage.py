"""manage.py of the benchmark processes (settings: benchmarks.settings)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script: the repository root holds the benchmarks package.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
