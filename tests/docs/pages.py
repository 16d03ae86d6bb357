"""The documentation pages, their fenced blocks and the check each block is marked with.

Every fenced block in README.md and docs/ is preceded by an HTML comment that names how it
is checked, for example:

    <!-- check: project run -->
    ```console
    python manage.py migrate
    ```

The kinds:

    none (REASON)          not run; the reason is required
    pip                    pip install lines name this package and extras it declares
    dev                    ./dev subcommands exist
    settings               a settings fragment, loaded into a project and validated
    python                 run in the test process against the test database
    project run [exit=N]   shell commands, run in the page's throwaway project
    project start          all lines but the last run; the last is started, must become
                           ready, and must stop cleanly on SIGTERM
    project serve          `manage.py runserver`, started in the background on a free port
                           until the page ends; later blocks reach it at 127.0.0.1:8000
    project shell          a >>> session, run as a doctest in `manage.py shell`
    project write PATH     the block becomes that file of the project
    project append PATH    the block is appended to that file of the project
    project output         the output of the preceding `project run` block
    file PATH              the block equals docs/PATH (which has its own tests)
    source MODULE NAME     the block equals that string constant of the code

A `project` block marked `django=5.2,6.0` is performed on those Django versions only (the
wheel test replays the quickstart on each supported Django); the others, on every one.

Tables are marked `<!-- table: NAME -->` when a test compares them with the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"

# Pages written and checked by their owners elsewhere; their blocks are not held to the
# markers yet. Remove a page from here once its blocks carry markers.
UNMARKED_PAGES = frozenset({"docs/performance.md", "docs/reliability.md"})

KINDS = frozenset({"none", "pip", "dev", "settings", "python", "project", "file", "source"})
PROJECT_ACTIONS = frozenset({"run", "start", "serve", "shell", "write", "append", "output"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*check:\s*(?P<body>.*?)\s*-->\s*$")
_TABLE_MARKER = re.compile(r"^\s*<!--\s*table:\s*(?P<name>[\w-]+)\s*-->\s*$")


@dataclass(frozen=True, slots=True)
class Check:
    """How a block is checked: a kind and its words (`project write emails/tasks.py`)."""

    kind: str
    words: tuple[str, ...]
    reason: str = ""

    @classmethod
    def parse(cls, body: str) -> Check:
        if body.startswith("none"):
            match = re.fullmatch(r"none\s*\((?P<reason>.+)\)", body)
            return cls("none", (), match["reason"].strip() if match else "")
        kind, *words = body.split()
        return cls(kind, tuple(words))

    def problem(self) -> str:  # noqa: PLR0911 - one early return per rule
        """Why this marker is malformed, or an empty string."""
        if self.kind not in KINDS:
            return f"unknown check kind {self.kind!r} (expected one of {sorted(KINDS)})"
        if self.kind == "none" and not self.reason:
            return "'none' needs a reason in parentheses: <!-- check: none (why) -->"
        if self.kind == "project":
            if not self.words or self.words[0] not in PROJECT_ACTIONS:
                return f"'project' needs one of {sorted(PROJECT_ACTIONS)}"
            plain = [word for word in self.words if "=" not in word]
            if self.words[0] in ("write", "append") and len(plain) != 2:
                return f"'project {self.words[0]}' needs one path"
        if self.kind == "file" and len(self.words) != 1:
            return "'file' needs one path under docs/"
        if self.kind == "source" and len(self.words) != 2:
            return "'source' needs a module and a name"
        return ""

    @property
    def action(self) -> str:
        return self.words[0] if self.kind == "project" else ""

    def applies_to(self, django: str) -> bool:
        """Whether the block is performed on this Django version ("6.1")."""
        versions = self.option("django")
        return not versions or django in versions.split(",")

    def option(self, name: str, default: str = "") -> str:
        """The value of a `name=value` word, e.g. exit=1."""
        for word in self.words:
            key, _, value = word.partition("=")
            if key == name and value:
                return value
        return default


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    info: str  # the language after the fence
    text: str
    check: Check | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True, slots=True)
class Table:
    """A Markdown table marked <!-- table: NAME -->: header cells and rows of cells."""

    page: str
    line: int
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def column(self, title: str) -> list[str]:
        index = self.header.index(title)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.header, row, strict=True)) for row in self.rows]


def pages() -> list[str]:
    """README.md and every Markdown page under docs/, relative to the repository root."""
    found = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [str(path.relative_to(ROOT)) for path in found]


def checked_pages() -> list[str]:
    return [page for page in pages() if page not in UNMARKED_PAGES]


def read(page: str) -> list[str]:
    return (ROOT / page).read_text().splitlines()


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a page, each with the marker on the line above (if any)."""
    lines = read(page)
    found = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body, end = [], index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        found.append(
            Block(
                page=page,
                line=index + 1,
                info=opening["info"].strip(),
                text="\n".join(body) + "\n",
                check=_marker_above(lines, index),
            )
        )
        index = end + 1
    return found


def _marker_above(lines: list[str], index: int) -> Check | None:
    above = index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    match = _MARKER.match(lines[above]) if above >= 0 else None
    return Check.parse(match["body"]) if match else None


def tables(page: str) -> dict[str, Table]:
    """The marked tables of a page, by name."""
    lines = read(page)
    found = {}
    for index, line in enumerate(lines):
        marker = _TABLE_MARKER.match(line)
        if not marker:
            continue
        start = index + 1
        while not lines[start].strip():
            start += 1
        rows = []
        for row in lines[start:]:
            if not row.strip().startswith("|"):
                break
            rows.append(tuple(_cells(row)))
        header, _, *body = rows
        found[marker["name"]] = Table(page, start + 1, marker["name"], header, tuple(body))
    return found


def table(page: str, name: str) -> Table:
    try:
        return tables(page)[name]
    except KeyError:
        raise AssertionError(f"{page} has no table marked <!-- table: {name} -->") from None


def _cells(row: str) -> list[str]:
    # Split on pipes that are not escaped (\|) and not inside `code`.
    cells, current, in_code, previous = [], "", False, ""
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code and previous != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        previous = char
    cells.append(current.strip())
    return [cell.replace("\\|", "|") for cell in cells]


def code(cell: str) -> str:
    """The text of the first `code` span of a table cell; fail if there is none."""
    match = re.search(r"`([^`]+)`", cell)
    if not match:
        raise AssertionError(f"expected `code` in table cell {cell!r}")
    return match[1]


def codes(cell: str) -> list[str]:
    """Every `code` span of a table cell."""
    return re.findall(r"`([^`]+)`", cell)
