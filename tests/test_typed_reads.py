"""floe reads what a manifest means from its typed values (``Document.spec``), never by key from the
parsed tree: a field renamed or retyped in the schemas then breaks where it is typed, once.

Only ``floe/documents.py`` reads the tree by key: it structures the typed values from it, checks
environment parity on it before it is validated, and answers ``Document.written_at`` (what a file
writes at a located path, such as engine settings, which only their engine types).
"""

from __future__ import annotations

import ast
from pathlib import Path

FLOE = Path(__file__).resolve().parents[1] / "floe"

READER = FLOE / "documents.py"
LEFT_FOR_THE_RUN_SIDE = {FLOE / "execution" / "plan.py": 4}
"""Reads that the run side's restructuring replaces (``_secret_origin``, ``approval_chain``): how many."""


def reads_by_key(path: Path) -> list[str]:
    """``x.data[…]``, ``x.data.get(…)`` and ``… in x.data`` in the module at ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "data"
        ):
            found.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "data"
        ):
            found.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
            and any(isinstance(c, ast.Attribute) and c.attr == "data" for c in node.comparators)
        ):
            found.append(ast.unparse(node))
    return found


def test_reads_by_key_are_found() -> None:
    assert reads_by_key(READER)  # parity is checked on the tree before it is validated


def test_no_module_reads_manifest_fields_by_key() -> None:
    found = {}
    for path in sorted(FLOE.rglob("*.py")):
        reads = reads_by_key(path)
        if path != READER and len(reads) > LEFT_FOR_THE_RUN_SIDE.get(path, 0):
            found[str(path.relative_to(FLOE.parent))] = reads
    assert found == {}
