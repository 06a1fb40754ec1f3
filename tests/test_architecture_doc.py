"""docs/architecture.md, the map of floe, names only files and modules that exist.

Every backticked repository path (under ``floe/``, ``tests/``, ``docs/``, ``examples/``,
``benchmarks/``, or a file at the root) must exist; a path with a ``<placeholder>`` (where a new
file goes) must have an existing folder. Every backticked dotted name under ``floe`` must import,
as a module or as a name of one.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
FOLDERS = ("floe/", "tests/", "docs/", "examples/", "benchmarks/")
ROOT_FILES = ("README.md", "setup.cfg", "pyproject.toml", "tox.ini")
TOKEN = re.compile(r"`([^`\s]+)`")
DOTTED = re.compile(r"floe(\.[A-Za-z_]\w*)+")
FILE_NAMES = (".yaml", ".yml", ".json", ".md", ".py")
"""Endings of a file's name (``floe.yaml``), which is no dotted module name."""


def tokens() -> list[str]:
    return sorted(set(TOKEN.findall(DOC.read_text(encoding="utf-8"))))


def paths(found: list[str]) -> list[str]:
    return [t for t in found if t.startswith(FOLDERS) or t in ROOT_FILES]


def dotted(found: list[str]) -> list[str]:
    return [t for t in found if DOTTED.fullmatch(t) and not t.endswith(FILE_NAMES)]


def test_the_map_names_the_steps_and_the_changes() -> None:
    found = tokens()
    assert len(paths(found)) >= 40 and len(dotted(found)) >= 10, "the map lost most of its names"
    text = DOC.read_text(encoding="utf-8")
    for heading in (
        "## The data path",
        "**A new built-in engine**",
        "**A new CLI command**",
        "**A new manifest field**",
    ):
        assert heading in text


@pytest.mark.parametrize("path", paths(tokens()))
def test_every_path_it_names_exists(path: str) -> None:
    if "<" in path:  # where a new file goes: its folder exists
        prefix = path[: path.index("<")]
        folder = ROOT / prefix if prefix.endswith("/") else (ROOT / prefix).parent
        assert folder.is_dir(), f"docs/architecture.md puts new files in {folder}, which does not exist"
    else:
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


@pytest.mark.parametrize("name", dotted(tokens()))
def test_every_module_it_names_imports(name: str) -> None:
    try:
        importlib.import_module(name)
        return
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
    module, _, attribute = name.rpartition(".")
    assert hasattr(importlib.import_module(module), attribute), (
        f"docs/architecture.md names {name}, which is not there"
    )
