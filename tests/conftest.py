"""Shared fixtures: a place to write manifests, and engine registries."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.engines import registry_with

ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 8 }
      - name: spark
        config: { cluster: "spark.svc" }
      - snowflake
      - bigquery
    default: duckdb
"""

Writer = Callable[[str, str], Path]


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test (and every floe it starts) keeps its user cache in a temporary folder, not ~/.cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    cache = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write dedented ``text`` to ``tmp_path/relative`` and return the path."""

    def _write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def engines():  # type: ignore[no-untyped-def]
    """Installed engines plus plain-hookimpl engines for the spec's other compute names."""
    return registry_with("spark", "snowflake", "bigquery")


def product(
    write: Writer, transforms: str, platform: str = "platform/enterprise.yaml", extra: str = ""
) -> Path:
    """Write a data product with ``transforms`` (YAML list items) and their model folders."""
    text = (
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: orders}\n"
        f"platform: ../{platform}\ntransforms:\n{textwrap.dedent(transforms)}{textwrap.dedent(extra)}"
    )
    path = write("product/floe.yaml", text)
    for line in text.splitlines():
        if "path:" in line:
            folder = line.split("path:")[1].split(",")[0].strip().strip("}").strip()
            (path.parent / folder).mkdir(parents=True, exist_ok=True)
    return path.parent


def pytest_unconfigure(config: pytest.Config) -> None:
    """Name every thread still alive when the session ends, with where it is.

    A daemon thread left inside an engine's native code when the interpreter exits can abort the
    process after every test passed (DuckDB: "terminate called without an active exception",
    exit 134): this says which fixture or check left it behind.
    """
    import sys
    import threading
    import traceback

    frames = sys._current_frames()
    alive = [t for t in threading.enumerate() if t is not threading.main_thread() and t.ident in frames]
    if not alive:
        return
    where: dict[str, list[str]] = {}  # the same place, many threads (idle keep-alive connections…)
    for thread in alive:
        stack = "".join(traceback.format_stack(frames[thread.ident])[-4:])  # type: ignore[index]
        where.setdefault(stack, []).append(f"{thread.name} (daemon={thread.daemon})")
    lines = [f"\n{len(alive)} thread(s) still alive at the end of the session:"]
    for stack, names in where.items():
        lines.append(f"- {len(names)} at: {', '.join(names[:3])}{' …' if len(names) > 3 else ''}\n{stack}")
    sys.stderr.write("\n".join(lines) + "\n")
