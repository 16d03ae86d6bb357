"""The benchmark's own environment, .cache/bench-venv/: conveyor (built from this working
tree) and its peers from PyPI, on the project's interpreter, with the same drivers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "bench-venv"
PYTHON = VENV / "bin" / "python"
INSIDE_VARIABLE = "BENCH_INSIDE_VENV"

REQUIREMENTS = (
    "Django>=6.1,<6.2",
    "psycopg[binary]>=3.2",
    "mysqlclient>=2.2",
    "py-spy",
)
# Celery with its Redis client; its RabbitMQ client (py-amqp) comes with kombu.
PEERS = ("django-tasks-db", "django-ox", "celery[redis]")
MEASURED_PACKAGES = (
    "django-conveyor", "django-tasks-db", "django-ox", "celery", "kombu", "redis",
    "Django", "psycopg", "mysqlclient",
)  # fmt: skip


def inside() -> bool:
    return os.environ.get(INSIDE_VARIABLE) == "1"


def find_uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        raise SystemExit("bench: uv not found; run the benchmark as ./dev bench")
    return found


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def prepare(*, upgrade_peers: bool) -> None:
    """Create the environment if needed, and install this working tree's conveyor into it.

    The peers are installed at their latest versions when the environment is created (or
    with upgrade_peers); conveyor is rebuilt from the working tree on every run.
    """
    uv = find_uv()
    interpreter = os.path.realpath(sys.executable)
    if not PYTHON.exists():
        say(f"creating {VENV.relative_to(ROOT)} with {interpreter}")
        subprocess.run([uv, "venv", "--quiet", "--python", interpreter, str(VENV)], check=True)
        upgrade_peers = True
    command = [uv, "pip", "install", "--quiet", "--python", str(PYTHON)]
    command += ["--reinstall-package", "django-conveyor"]
    if upgrade_peers:
        for peer in PEERS:
            command += ["--upgrade-package", peer.split("[")[0]]
    command += [str(ROOT), *REQUIREMENTS, *PEERS]
    say("installing conveyor (this working tree) and the peers into the benchmark environment")
    subprocess.run(command, check=True, cwd=ROOT)


def reexec(argv: list[str]) -> None:
    """Run this command again inside the benchmark environment (never returns)."""
    env = {**os.environ, INSIDE_VARIABLE: "1", "PYTHONPATH": str(ROOT)}
    env.pop("VIRTUAL_ENV", None)
    os.chdir(ROOT)
    os.execve(str(PYTHON), [str(PYTHON), "-m", "benchmarks.run", *argv], env)


def versions() -> dict[str, str]:
    """Versions of the measured packages in this (the benchmark) environment."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in MEASURED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def describe_machine() -> dict[str, str]:
    """CPU, cores, memory and database versions, for the report."""
    info = {"python": sys.version.split()[0], "cores": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    info["kernel"] = os.uname().release
    return info


def dump(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
