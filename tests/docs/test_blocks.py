"""Every fenced block of the README and docs/ carries a check, and the checks that need no
running project: pip, dev, file, source, settings and python blocks."""

from __future__ import annotations

import doctest
import importlib
import json
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.pages import DOCS, ROOT, Block, blocks, checked_pages
from tests.docs.project import Project

ALL_BLOCKS = [block for page in checked_pages() for block in blocks(page)]


def of_kind(kind: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.check is not None and b.check.kind == kind]


def ids(found: list[Block]) -> list[str]:
    return [block.where for block in found]


@pytest.mark.any_database
def test_every_block_is_marked_with_a_known_check() -> None:
    problems = []
    for block in ALL_BLOCKS:
        if block.check is None:
            problems.append(f"{block.where}: no <!-- check: ... --> marker above the block")
        elif reason := block.check.problem():
            problems.append(f"{block.where}: {reason}")
    assert not problems, "\n".join(problems)


@pytest.mark.any_database
def test_the_pages_exist_and_have_blocks() -> None:
    # A page left out of the search would pass every other test here.
    found = {block.page for block in ALL_BLOCKS}
    for page in ("README.md", "docs/quickstart.md", "docs/configuration.md", "docs/worker.md"):
        assert page in found
    assert {"docs/operations.md", "docs/internals.md"} <= found


# Where the pages have the reader's clone of the repository, until conveyor is on PyPI.
CHECKOUT = "/path/to/conveyor"


def installable(project: dict[str, Any]) -> set[str]:
    """What a pip line may name: the package, a clone, or the wheel `uv build` makes there."""
    wheel = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    return {project["name"], CHECKOUT, f"{CHECKOUT}/dist/{wheel}"}


@pytest.mark.any_database
@pytest.mark.parametrize("block", of_kind("pip"), ids=ids(of_kind("pip")))
def test_pip_installs_this_package_with_extras_it_declares(block: Block) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    installs = [line for line in block.text.splitlines() if " pip install " in f" {line} "]
    assert installs, f"{block.where}: no pip install line"
    for line in installs:
        words = shlex.split(line, comments=True)
        requirements = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
        assert requirements, line
        for requirement in requirements:
            match = re.fullmatch(r"([\w./-]+?)(?:\[([\w,-]+)\])?", requirement)
            assert match, f"{block.where}: cannot read {requirement!r}"
            assert match[1] in installable(project), f"{block.where}: installs {match[1]!r}"
            assert set((match[2] or "").split(",")) - {""} <= extras


@pytest.mark.any_database
@pytest.mark.parametrize("block", of_kind("dev"), ids=ids(of_kind("dev")))
def test_dev_subcommands_exist(block: Block) -> None:
    usage = subprocess.run(
        ["bash", str(ROOT / "dev"), "help"], capture_output=True, text=True, check=True
    ).stdout
    known = set(re.findall(r"^  (\w+)", usage, re.MULTILINE))
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "./dev", f"{block.where}: not a ./dev command: {line!r}"
            assert words[1] in known, f"{block.where}: ./dev has no {words[1]!r} ({known})"


@pytest.mark.any_database
@pytest.mark.parametrize("block", of_kind("file"), ids=ids(of_kind("file")))
def test_file_blocks_show_the_file_as_it_is(block: Block) -> None:
    assert block.check is not None
    path = DOCS / block.check.words[0]
    assert path.exists(), f"{block.where}: no file docs/{block.check.words[0]}"
    assert block.text == path.read_text(), f"{block.where}: differs from {path}"


def source_text(value: object) -> str:
    """A SQL constant as the page shows it: dedented, statements of a tuple ended by ';'."""
    if isinstance(value, tuple | list):
        return "\n\n".join(textwrap.dedent(v).strip() + ";" for v in value)
    assert isinstance(value, str)
    return textwrap.dedent(value).strip()


@pytest.mark.any_database
@pytest.mark.parametrize("block", of_kind("source"), ids=ids(of_kind("source")))
def test_source_blocks_show_the_code_as_it_is(block: Block) -> None:
    assert block.check is not None
    module, name = block.check.words
    value = getattr(importlib.import_module(module), name)
    assert block.text.strip() == source_text(value), f"{block.where}: differs from {module}.{name}"


# -- settings -------------------------------------------------------------------------------

# Splices `[..., "x"]` into the project's own list, as a reader would.
SETTINGS_TEMPLATE = """\
from mysite.settings import *  # noqa: F403
import mysite.settings as _base

{fragment}

for _name in [n for n in list(globals()) if n.isupper()]:
    _value = globals()[_name]
    if isinstance(_value, list) and Ellipsis in _value:
        _added = [v for v in _value if v is not Ellipsis]
        globals()[_name] = [v for v in getattr(_base, _name) if v not in _added] + _added
"""

# Loads each settings module in a forked child: django.setup() (so LOGGING and
# INSTALLED_APPS), the system checks, every task backend, and every SQLite database.
SETTINGS_CHECKER = """
import json, os, sys
modules = json.loads(sys.argv[1])
KNOWN = {"ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "CONN_MAX_AGE",
         "CONN_HEALTH_CHECKS", "ATOMIC_REQUESTS", "AUTOCOMMIT", "TIME_ZONE", "TEST",
         "DISABLE_SERVER_SIDE_CURSORS"}

def check():
    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.db.utils import load_backend
    from conveyor.compat import task_backends
    servers = [d for d in settings.DATABASES.values() if not d["ENGINE"].endswith("sqlite3")]
    if not servers:  # the checks of a MySQL project ask the server for its version
        call_command("check", stdout=open(os.devnull, "w"))
    for alias in settings.TASKS:
        task_backends[alias]
    for alias, database in settings.DATABASES.items():
        unknown = set(database) - KNOWN
        assert not unknown, f"unknown DATABASES keys {unknown}"
        load_backend(database["ENGINE"])
        if database["ENGINE"].endswith("sqlite3"):
            with connections[alias].cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
            if "journal_mode=WAL" in database.get("OPTIONS", {}).get("init_command", ""):
                assert mode == "wal", mode

failed = 0
for module in modules:
    pid = os.fork()
    if pid == 0:
        os.environ["DJANGO_SETTINGS_MODULE"] = module
        try:
            check()
        except BaseException as exc:
            print(f"{module}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


@pytest.fixture(scope="module")
def settings_results(quickstart: Project) -> Iterator[dict[str, str]]:
    """Check every settings block in one process; map block location -> error ('' if ok)."""
    project = quickstart.copy()
    found = of_kind("settings")
    modules = {}
    for index, block in enumerate(found):
        name = f"docs_settings_{index}"
        project.write(f"{name}.py", SETTINGS_TEMPLATE.format(fragment=block.text))
        modules[name] = block.where
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_CHECKER, json.dumps(list(modules))],
        cwd=project.cwd,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = dict.fromkeys(modules.values(), "")
    for line in done.stdout.splitlines():
        name, _, error = line.partition(": ")
        if name in modules:
            errors[modules[name]] = error
    assert done.returncode == 0 or any(errors.values()), done.stderr
    yield errors
    project.remove()


@pytest.mark.any_database
@pytest.mark.process
@pytest.mark.parametrize("block", of_kind("settings"), ids=ids(of_kind("settings")))
def test_settings_blocks_load_and_pass_the_checks(
    settings_results: dict[str, str], block: Block
) -> None:
    assert settings_results[block.where] == "", f"{block.where}: {settings_results[block.where]}"


# -- python ---------------------------------------------------------------------------------


@pytest.fixture
def any_queue(settings: Any) -> None:
    """A conveyor default backend that accepts any queue, for the pages' own tasks."""
    settings.TASKS = {"default": {"BACKEND": "conveyor.backend.DatabaseBackend", "QUEUES": []}}


def run_python(block: Block, globs: dict[str, Any], package: Path) -> None:
    if block.info == "pycon":
        test = doctest.DocTestParser().get_doctest(block.text, globs, block.where, block.page, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        output: list[str] = []
        runner.run(test, out=output.append)
        assert not runner.failures, "".join(output)
        return
    # A module of its own, so that tasks it defines are importable, as @task requires.
    name = "docs_block_" + re.sub(r"\W", "_", block.where)
    (package / f"{name}.py").write_text(block.text)
    module = importlib.import_module(name)
    globs.update(vars(module))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("any_queue")
@pytest.mark.parametrize("page", sorted({b.page for b in of_kind("python")}), ids=str)
def test_python_blocks_run_against_the_test_database(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    globs: dict[str, Any] = {}
    for block in of_kind("python"):
        if block.page == page:
            run_python(block, globs, tmp_path)
