"""Start a worker process on the operations scripts' settings and this process's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def start_worker(
    concurrency: int, *flags: str, options: dict[str, object] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m django conveyor_worker --concurrency N FLAGS` on scripts.operations_settings,
    with `options` (when given) merged into the backend's OPTIONS."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # The database this process resolved, which the settings' default may have chosen.
        "CONVEYOR_OPERATIONS_DATABASE_NAME": settings.DATABASES["default"]["NAME"],
    }
    if options is not None:
        env["CONVEYOR_OPERATIONS_OPTIONS"] = json.dumps(options)
    command = [sys.executable, "-m", "django", "conveyor_worker"]
    command += ["--settings=scripts.operations_settings", "--concurrency", str(concurrency)]
    return subprocess.Popen([*command, *flags], env=env, cwd=ROOT)
