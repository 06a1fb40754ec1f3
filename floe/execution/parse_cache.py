"""The plan's parse, remembered: when nothing dbt reads changed, the last parse's nodes are reused.

``floe plan`` and every ``floe run`` need dbt's graph, and dbt's own partial parse still costs a
process and seconds (a 10,000-model project: ~14 s). What dbt's parse of the plan's project
depends on is known and cheap to check, so floe keeps the last answer with a fingerprint of:

- floe's version, Python's, and every ``sys.path`` folder's modification time (installing,
  upgrading or removing a package, dbt or an adapter, changes its folder);
- the arguments and the environment dbt is given (``env_var()`` may read any variable; the values
  are hashed together, never stored), less the shell's and pytest's bookkeeping
  (:data:`VOLATILE`), which change from one command to the next and no project reads;
- the generated ``dbt_project.yml`` and ``profiles.yml`` and floe's and the engine's macros copied
  into the project (by content: floe writes them) and every other file dbt may read — the project's folders (through their links to
  the product), floe's and the engine's macros, the installed dbt packages — by path, size,
  modification time and inode.

A fingerprint that differs in anything means a fresh ``dbt parse``. A parse whose inputs were
modified in the last :data:`SETTLE_SECONDS` is not remembered: a second change within the same
timestamp tick would go unseen. The answer is kept in ``target/floe_plan_parse.json`` of the
plan's project (private, written atomically); ``FLOE_NO_PARSE_CACHE=1`` turns the reuse off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from floe.artifacts import write_atomic
from floe.execution.projects import MACRO_DIR

CACHE_FILE = Path("target") / "floe_plan_parse.json"
SETTLE_SECONDS = 2.0
DISABLE_VARIABLE = "FLOE_NO_PARSE_CACHE"
CONTENT_FILES = ("dbt_project.yml", "profiles.yml")
SKIPPED = frozenset({"target", "logs", "parse.log", MACRO_DIR})
"""What dbt writes in the plan's project (and what floe does): never an input of the parse."""
VOLATILE = frozenset({"_", "OLDPWD", "SHLVL", "PYTEST_CURRENT_TEST", "COLUMNS", "LINES"})
"""Variables a shell or a test runner changes between commands, left out of the fingerprint."""


def fingerprint(
    project: Path, args: Sequence[str], env: Mapping[str, str], outside: Iterable[Path]
) -> tuple[str, float]:
    """The fingerprint of a parse of ``project`` and the newest modification time among its inputs.

    :param outside: folders beyond the project dbt reads (absolute paths in its project file,
        the dbt packages' folder).
    """
    from floe import __version__

    digest = hashlib.sha256()
    newest = 0.0

    def add(*parts: object) -> None:
        digest.update(repr(parts).encode("utf-8", "surrogateescape"))
        digest.update(b"\0")

    add("floe", __version__, sys.version, sys.executable)
    for entry in sys.path:
        try:
            add("path", entry, os.stat(entry or ".").st_mtime_ns)
        except OSError:
            add("path", entry, None)
    add("args", *args)
    add("env", *sorted((k, v) for k, v in env.items() if k not in VOLATILE))
    for name in CONTENT_FILES:
        try:
            add("content", name, (project / name).read_bytes())
        except OSError:
            add("content", name, None)
    for macro in sorted((project / MACRO_DIR).glob("*.sql")):  # floe's copies, rewritten when they change
        add("macro", macro.name, macro.read_bytes())
    roots = [(project, True)] + [(Path(p), False) for p in sorted({str(p) for p in outside})]
    for root, is_project in roots:
        for path, stat in _files(root, is_project):
            add("file", str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
            newest = max(newest, stat.st_mtime)
    return digest.hexdigest(), newest


def _files(root: Path, is_project: bool) -> list[tuple[Path, os.stat_result]]:
    """Every file under ``root`` (links followed, as dbt follows them), sorted, with its stat; in the
    project, not what dbt and floe write there nor the two files compared by content."""
    found: list[tuple[Path, os.stat_result]] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        try:
            info = os.stat(here)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:  # a link loop: dbt would not read it twice either
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        top = is_project and here == root
        dirs[:] = sorted(d for d in dirs if not (top and d in SKIPPED))
        for name in sorted(files):
            if top and (name in SKIPPED or name in CONTENT_FILES):
                continue
            try:
                found.append((here / name, os.stat(here / name)))
            except OSError:
                continue
    return found


def recall(project: Path, key: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The remembered parse of ``project`` under ``key``; ``None`` when there is none (or it is
    unreadable, or of another fingerprint, or reuse is off)."""
    if env.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return None
    try:
        data = json.loads((project / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("result"), dict):
        return None
    result: dict[str, Any] = data["result"]
    return result


def settled(newest: float, taken: float) -> bool:
    """Whether inputs last modified at ``newest`` had settled when their fingerprint was ``taken``."""
    return taken - newest >= SETTLE_SECONDS


def remember(project: Path, key: str, inputs_settled: bool, result: Mapping[str, Any]) -> bool:
    """Keep a successful parse's ``result`` under ``key``, unless its inputs had not settled when
    the fingerprint was taken (:func:`settled`); whether it was kept."""
    if not result.get("success") or not inputs_settled:
        return False
    write_atomic(project / CACHE_FILE, json.dumps({"key": key, "result": result}))
    return True
