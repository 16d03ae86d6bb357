"""Readers for the deployment files: systemd units, Procfiles, Containerfiles, and the
subset of YAML that docs/deploy/kubernetes.yaml is written in."""

from __future__ import annotations

import json
import re
from typing import Any

# Instructions of the Dockerfile/Containerfile format.
CONTAINER_INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)


def systemd_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file: section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in _joined(text):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting outside any section: {line!r}"
        key, equals, value = line.partition("=")
        assert equals, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def procfile(text: str) -> dict[str, str]:
    """Process types of a Procfile: name -> command."""
    processes = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(\S.*)", line)
        assert match, f"not a Procfile line: {line!r}"
        processes[match[1]] = match[2]
    return processes


def container_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Containerfile, continuation lines joined."""
    found = []
    for raw in _joined(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        found.append((instruction, arguments.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD (or of HEALTHCHECK's CMD)."""
    start = arguments.index("[")
    value = json.loads(arguments[start:])
    assert isinstance(value, list), arguments
    assert all(isinstance(v, str) for v in value), arguments
    return value


def _joined(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def yaml_subset(text: str) -> Any:
    """Read block mappings and sequences of scalars, ints and JSON-style flow lists: the
    YAML that the deployment examples use. Anything else is an error, not a guess."""
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    value, end = _node(lines, 0, lines[0][0])
    assert end == len(lines), f"unread YAML from line {lines[end][1]!r}"
    return value


def _node(lines: list[tuple[int, str]], index: int, indent: int) -> tuple[Any, int]:
    if lines[index][1].startswith("- "):
        return _sequence(lines, index, indent)
    return _mapping(lines, index, indent)


def _sequence(lines: list[tuple[int, str]], index: int, indent: int) -> tuple[list[Any], int]:
    items = []
    while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("- "):
        # "- key: value" opens a mapping whose keys sit two columns further in.
        rest = lines[index][1][2:]
        lines[index] = (indent + 2, rest)
        if ":" in rest and not rest.startswith(("[", '"')):
            item, index = _mapping(lines, index, indent + 2)
        else:
            item, index = _scalar(rest), index + 1
        items.append(item)
    return items, index


def _mapping(lines: list[tuple[int, str]], index: int, indent: int) -> tuple[dict[str, Any], int]:
    mapping: dict[str, Any] = {}
    while index < len(lines) and lines[index][0] == indent:
        key, colon, rest = lines[index][1].partition(":")
        assert colon, f"expected 'key: value', got {lines[index][1]!r}"
        rest = rest.strip()
        index += 1
        if rest:
            mapping[key] = _scalar(rest)
        else:
            assert index < len(lines), f"empty value for {key!r}"
            assert lines[index][0] > indent, f"empty value for {key!r}"
            mapping[key], index = _node(lines, index, lines[index][0])
    return mapping, index


def _scalar(text: str) -> Any:
    if text.startswith(("[", '"')):
        return json.loads(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text
