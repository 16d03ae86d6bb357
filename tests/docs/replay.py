"""Replay the `project` blocks of a page, in order, in a throwaway project."""

from __future__ import annotations

import re
import shlex

from django import VERSION as django_version

from tests.docs.pages import Block, blocks
from tests.docs.project import (
    WORKER_READY,
    Project,
    kill_group,
    matches,
    stop_gracefully,
    wait_for_lines,
)

QUICKSTART = "docs/quickstart.md"
# The Django of the test process, as the pages' `django=` options spell it.
DJANGO = "{}.{}".format(*django_version[:2])


def project_blocks(page: str) -> list[Block]:
    return [b for b in blocks(page) if b.check is not None and b.check.kind == "project"]


def replay(project: Project, page: str, *, django: str = DJANGO) -> None:
    """Perform every `project` block of a page that applies to this Django version; fail
    naming the block that went wrong.

    A development server the page started is stopped at its end.
    """
    try:
        for block in project_blocks(page):
            assert block.check is not None
            if block.check.applies_to(django):
                perform(project, block)
    finally:
        project.stop_server()


def perform(project: Project, block: Block) -> None:
    assert block.check is not None
    action = block.check.action
    if action == "write":
        project.write(block.check.words[1], block.text)
    elif action == "append":
        project.append(block.check.words[1], block.text)
    elif action == "run":
        expected = int(block.check.option("exit", "0"))
        ran = project.run(project.local(script_of(block)))
        assert ran.status == expected, f"{block.where}: expected exit {expected}\n{ran.describe()}"
    elif action == "output":
        assert project.last is not None, f"{block.where}: no command ran before this output"
        assert matches(block.text, project.last.output), (
            f"{block.where}: the output differs from the page\n--- page ---\n{block.text}"
            f"\n--- actual ---\n{project.last.describe()}"
        )
    elif action == "shell":
        ran = project.doctest(block)
        assert ran.status == 0, f"{block.where}: the session differs\n{ran.describe()}"
    elif action == "start":
        start_and_stop(project, block)
    elif action == "serve":
        (command,) = commands_of(block)
        assert command == "python manage.py runserver", f"{block.where}: serves only runserver"
        project.serve(command)
    else:
        raise AssertionError(f"{block.where}: unknown project action {action!r}")


def script_of(block: Block) -> str:
    """The commands of a console block: prompts ($ ) removed, comments kept for bash."""
    return "\n".join(line.removeprefix("$ ") for line in block.text.splitlines())


def commands_of(block: Block) -> list[str]:
    """The command lines of a console block, without prompts, blank lines or comments."""
    lines = [line.removeprefix("$ ").strip() for line in block.text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def start_and_stop(project: Project, block: Block) -> str:
    """Run all lines but the last; start the last (a worker), wait until every process it
    runs has started, then stop it with one SIGTERM and expect a clean exit."""
    *setup, command = commands_of(block)
    if setup:
        ran = project.run("\n".join(setup))
        assert ran.status == 0, f"{block.where}: set-up failed\n{ran.describe()}"
    return start_worker_and_stop(project, command, where=block.where)


def start_worker_and_stop(project: Project, command: str, *, where: str) -> str:
    process = project.start(command)
    try:
        lines = wait_for_lines(process, WORKER_READY, processes_of(command))
        output = "\n".join(lines) + "\n" + stop_gracefully(process)
    finally:
        kill_group(process)
    assert process.returncode == 0, f"{where}: exit {process.returncode}\n{output}"
    assert "Traceback" not in output, f"{where}:\n{output}"
    return output


def processes_of(command: str) -> int:
    """How many worker processes a conveyor_worker command line starts (--processes/-p)."""
    words = shlex.split(command)
    for index, word in enumerate(words):
        if word in ("--processes", "-p"):
            return int(words[index + 1])
        if word.startswith("--processes="):
            return int(word.split("=", 1)[1])
    return 1


def check_the_admin_lists_the_quickstart_tasks(project: Project) -> None:
    """Log in as the superuser the quickstart created and read the admin's task list."""
    page = "\n".join(block.text for block in project_blocks(QUICKSTART))
    password = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", page)
    username = re.search(r"--username (\S+)", page)
    assert password, f"{QUICKSTART} gives the superuser no password"
    assert username, f"{QUICKSTART} gives the superuser no username"
    shown = project.admin_page(
        "/admin/conveyor/taskrecord/", username=username[1], password=password[1]
    )
    assert shown.status == 0, shown.describe()
    assert shown.stdout.startswith("200\n"), shown.describe()
    assert shown.stdout.count("send_welcome_email") >= 2, shown.describe()
