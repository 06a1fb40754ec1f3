"""Throwaway platform + product trees for fuzzing, and the rule every compile outcome must meet.

A :class:`Tree` is a valid starting point (the example platform and shop, or what
``benchmarks/compile.py`` generates) held as file texts, so that a fuzz case can replace one file
by arbitrary bytes, write the tree under a fresh directory and compile it through floe's real entry
point. :func:`compile_case` runs that compile under a hard deadline and holds the outcome to the
rule of issue 5: a result, or a :class:`~floe.errors.FloeError` every problem of which names its
file, and its line whenever that file can be read.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import yaml

from floe.compiler import Compiled, compile_path
from floe.deadline import call_with_deadline
from floe.errors import FloeError
from floe.plugins import EngineRegistry
from floe.schemas import SchemaStore

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
"""Seconds one compile may take before it counts as a hang: far above the slowest case (a few
seconds), so that a loaded machine does not fail the test."""

ROLES = ("enterprise", "domain", "product")
# What a line break is to any reader floe uses (libyaml also breaks at NEL, LS and PS): counting all
# of them bounds the line a problem may name.
_BREAKS = re.compile(rb"\r\n|\r|\n|\xc2\x85|\xe2\x80\xa8|\xe2\x80\xa9")


@dataclass(frozen=True)
class Tree:
    """A platform (enterprise and domain manifest) and a data product, relative to a root."""

    files: Mapping[str, bytes]
    dirs: tuple[str, ...]
    roles: Mapping[str, str]
    """``enterprise``, ``domain``, ``product``: the relative path of each role's file."""

    def path_of(self, role: str) -> str:
        return self.roles[role]

    def with_file(self, role: str, content: bytes | str) -> Tree:
        """This tree with ``role``'s file replaced."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        return replace(self, files={**self.files, self.roles[role]: data})

    def text(self, role: str) -> str:
        return self.files[self.roles[role]].decode("utf-8")

    def product_dir(self) -> str:
        return str(Path(self.roles["product"]).parent)

    def write(self, root: Path) -> None:
        for folder in self.dirs:
            (root / folder).mkdir(parents=True, exist_ok=True)
        for relative, data in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _read_tree(root: Path, roles: Mapping[str, str], product_dir: str) -> Tree:
    files = {rel: (root / rel).read_bytes() for rel in roles.values()}
    models = root / product_dir / "models"
    dirs = tuple(sorted(str(p.relative_to(root)) for p in models.rglob("*") if p.is_dir()))
    return Tree(files, dirs, dict(roles))


@functools.cache
def example_tree() -> Tree:
    """``examples/platform`` and ``examples/shop``, as the repository ships them."""
    roles = {
        "enterprise": "platform/enterprise.yaml",
        "domain": "platform/domains/sales.yaml",
        "product": "shop/floe.yaml",
    }
    return _read_tree(ROOT / "examples", roles, "shop")


@functools.cache
def benchmark_module() -> ModuleType:
    """``benchmarks/compile.py``, loaded from its file (the benchmarks are not a package)."""
    spec = importlib.util.spec_from_file_location(
        "floe_benchmark_compile", ROOT / "benchmarks" / "compile.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def benchmark_tree(size: int = 6) -> Tree:
    """What the compile benchmark's ``write_platform`` and ``write_product`` generate."""
    bench = benchmark_module()
    with tempfile.TemporaryDirectory(prefix="floe-fuzz-bench-") as tmp:
        root = Path(tmp)
        bench.write_platform(root)
        product = bench.write_product(root, size)
        roles = {
            "enterprise": "platform/enterprise.yaml",
            "domain": "platform/domains/bench.yaml",
            "product": str((product / "floe.yaml").relative_to(root)),
        }
        return _read_tree(root, roles, product.name)


def trees() -> dict[str, Tree]:
    return {"examples": example_tree(), "benchmark": benchmark_tree()}


@functools.cache
def engines() -> EngineRegistry:
    """The installed engines, discovered once (discovery is the slow part of a small compile)."""
    return EngineRegistry.discover()


@functools.cache
def schema_store() -> SchemaStore:
    return SchemaStore()


# -- the rule --------------------------------------------------------------------------------------


def readable_bytes(path: Path) -> bytes | None:
    """The content of ``path`` if it is a regular file floe can read, else None."""
    try:
        if not path.is_file():
            return None
        return path.read_bytes()
    except (OSError, ValueError):
        return None


def line_count(data: bytes) -> int:
    """An upper bound of the lines any YAML reader floe uses sees in ``data``."""
    return len(_BREAKS.findall(data)) + 1


def assert_located(error: FloeError, cwd: Path) -> None:
    """Every problem names its file, and a line within it when the file can be read."""
    assert error.problems, f"{type(error).__name__} without problems"
    rendered = error.render()
    assert "Traceback" not in rendered
    lines: dict[str, int | None] = {}  # per file: an error may hold thousands of problems
    for problem in error.problems:
        assert problem.message and problem.message.strip(), problem
        assert problem.file, f"a problem without a file: {problem}"
        if problem.file not in lines:
            assert problem.file in rendered
            data = readable_bytes(cwd / problem.file)
            lines[problem.file] = None if data is None else line_count(data)
        count = lines[problem.file]
        if count is None:
            continue  # a file that is missing or cannot be read has no line to name
        assert problem.line is not None, f"a problem in a readable file without a line: {problem}"
        assert 1 <= problem.line <= count, f"line {problem.line} is not in {problem.file}: {problem}"


@dataclass(frozen=True)
class Outcome:
    compiled: Compiled | None
    error: FloeError | None

    @property
    def ok(self) -> bool:
        return self.compiled is not None


def compile_case(target: Path) -> Outcome:
    """Compile ``target`` in-process as ``floe compile`` does, under :data:`DEADLINE`.

    Anything but a result or a located :class:`FloeError` propagates and fails the test, and so
    does a compile that does not finish in time (:class:`~floe.deadline.DeadlineExceeded`).
    """

    def run() -> Compiled:
        compiled = compile_path(target, engines(), schema_store())
        # what the CLI does with a result must work too
        json.dumps(compiled.to_json())
        yaml.safe_dump(dict(compiled.profiles))
        return compiled

    try:
        return Outcome(call_with_deadline(run, DEADLINE), None)
    except FloeError as exc:
        assert_located(exc, Path.cwd())
        return Outcome(None, exc)


def fast_temp_dir() -> str | None:
    """A memory-backed directory when there is one: cases create and remove thousands of files."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def scratch_root(base: Path | None = None) -> tempfile.TemporaryDirectory[str]:
    """A fresh directory for one case that changes the tree's shape (symlinks, FIFOs, folders)."""
    return tempfile.TemporaryDirectory(prefix="floe-fuzz-", dir=base or fast_temp_dir())


class Workspace:
    """Each valid tree written once; a case writes the files it changed and restores them after."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._written: dict[str, Tree] = {}

    @contextlib.contextmanager
    def case(self, name: str, tree: Tree) -> Iterator[Path]:
        root = self.base / name
        valid = trees()[name]
        if name not in self._written:
            valid.write(root)
            self._written[name] = valid
        changed = [rel for rel, data in tree.files.items() if valid.files.get(rel) != data]
        try:
            for rel in changed:
                (root / rel).write_bytes(tree.files[rel])
            yield root
        finally:
            for rel in changed:
                (root / rel).write_bytes(valid.files[rel])


def environ_without_debug() -> dict[str, str]:
    """The CLI's environment: FLOE_DEBUG would turn an internal error into a traceback on purpose."""
    env = dict(os.environ)
    env.pop("FLOE_DEBUG", None)
    return env
