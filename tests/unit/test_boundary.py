"""The store is the only code that reads or writes conveyor's tables (see store/engine.py).

Checked on the source: outside the modules allowed below, no code reaches a model's manager,
opens a cursor, or runs raw SQL; in the admin, which may read through its changelists, no
code writes through a queryset or a model.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "conveyor"
# Where conveyor's tables may be queried: the store, the models, the migrations, and the
# admin's read-only changelists (which Django's admin builds from querysets).
ALLOWED = ("store/", "models.py", "migrations/", "admin/")
# Attribute names that reach the database directly.
QUERYING = {"objects", "_default_manager", "_base_manager", "cursor", "raw", "extra"}
# Methods that write through a queryset or a model.
WRITING = {"update", "delete", "create", "bulk_create", "bulk_update", "save", "get_or_create"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def attributes(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.lineno, node.attr) for node in ast.walk(tree) if isinstance(node, ast.Attribute)]


def called_methods(path: Path) -> list[tuple[int, str, str]]:
    """Each method call: its line, the method's name, and what it is called on."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.func.attr, ast.unparse(node.func.value))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]


@pytest.mark.parametrize("path", modules(), ids=relative)
def test_only_the_store_queries_conveyors_tables(path: Path) -> None:
    if relative(path).startswith(ALLOWED):
        return
    found = [f"line {line}: .{name}" for line, name in attributes(path) if name in QUERYING]
    assert found == [], f"{relative(path)} queries the database outside the store: {found}"


@pytest.mark.parametrize(
    "path", [p for p in modules() if relative(p).startswith("admin/")], ids=relative
)
def test_the_admin_writes_only_through_the_store(path: Path) -> None:
    # A call on an engine (`store.delete(ids)`, `backend.store.retry(ids)`) is the store's.
    found = [
        f"line {line}: {receiver}.{name}()"
        for line, name, receiver in called_methods(path)
        if name in WRITING and not receiver.endswith("store")
    ]
    assert found == [], f"{relative(path)} writes outside the store: {found}"


def test_the_rules_catch_a_query_and_a_write(tmp_path: Path) -> None:
    offending = tmp_path / "offending.py"
    offending.write_text(
        "from conveyor.models import TaskRecord\n"
        "TaskRecord.objects.all()\n"
        "queryset.filter(pk=1).delete()\n"
    )
    assert (2, "objects") in attributes(offending)
    assert (3, "delete", "queryset.filter(pk=1)") in called_methods(offending)
