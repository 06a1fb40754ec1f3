"""``floe/execution/`` (what ``floe plan`` and ``floe run`` do) names no engine and imports none.

What an engine needs to run is asked of the engine through its hooks; these tests read the code
of every module of the package (its syntax tree, not a grep) so that a branch on an engine's name,
or an import of a built-in engine's internals, cannot come back.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "floe" / "execution"
MODULES = sorted(PACKAGE.rglob("*.py"))
ENGINE_WORD = re.compile(
    r"(?i)(?<![a-z])(duckdb|spark|pyspark|snowflake|bigquery|databricks|redshift|trino|postgres)(?![a-z])"
)


def docstrings(tree: ast.Module) -> set[int]:
    """The ids of the constant nodes that are docstrings (prose, which may mention engines)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_the_package_has_modules() -> None:
    assert {
        "runner.py",
        "worker.py",
        "workers.py",
        "forkserver.py",
        "scheduler.py",
        "catalog.py",
        "plan.py",
        "parse.py",
    } <= {m.name for m in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_no_import_of_an_engine(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
            imported += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
    offending = [name for name in imported if name.startswith("floe.engines") or ENGINE_WORD.search(name)]
    assert not offending, f"{module.name} imports {offending}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_no_engine_named_in_code(module: Path) -> None:
    """No string, identifier or attribute in the code (docstrings aside) names an engine."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    prose = docstrings(tree)
    named = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            text = node.name
        elif isinstance(node, ast.arg):
            text = node.arg
        else:
            continue
        if ENGINE_WORD.search(text.replace("_", " ")):
            named.append((getattr(node, "lineno", 0), text[:80]))
    assert not named, f"{module.name} names an engine at: {named}"
