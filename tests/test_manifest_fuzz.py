"""Fuzzing manifests through floe's real entry points: a result or a located floe error, nothing else.

Hypothesis writes a platform (enterprise and domain manifest) and a data product to a fresh
directory, breaks one file or one reference, and compiles through :func:`floe.compiler.compile_path`
exactly as ``floe compile`` does (a sample also through the ``floe`` command itself). Starting points
are the example platform and shop and what ``benchmarks/compile.py`` generates. Breakage:

* random YAML texts; structural mutations of valid manifests (keys dropped, renamed, duplicated,
  values retyped, huge strings, nesting far deeper than any manifest needs);
* text and byte mutations: tabs, byte order marks, NEL/LS/PS, CR and CRLF, anchors, aliases and
  merge keys, tags, directives, second documents, truncation, huge lines, many lines, invalid UTF-8,
  other encodings;
* references on disk: missing parents, directories, valid, dangling and looping symlinks, FIFOs,
  NUL bytes and over-long names, and transform paths that escape the product (``..``, absolute
  paths, symlinks pointing outside).

The rule (:func:`tests.support.fuzz_project.assert_located`): every case ends in a compiled result
or a :class:`~floe.errors.FloeError` each problem of which names its file, and a line within that
file whenever the file is a regular file floe can read; every compile finishes within
:data:`~tests.support.fuzz_project.DEADLINE` seconds. Anything else fails the test. The last test
checks that at least :data:`MIN_CASES` cases ran.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import strictyaml as sy
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strictyaml.ruamel.error import MarkedYAMLError

import tests.test_fastyaml_differential as differential
from floe import fastyaml
from floe.documents import _lines, _parse
from floe.errors import FloeError, ManifestError, Problem
from tests.support.fuzz_project import (
    DEADLINE,
    ROLES,
    Outcome,
    Tree,
    Workspace,
    benchmark_module,
    compile_case,
    environ_without_debug,
    schema_store,
    scratch_root,
    trees,
)
from tests.support.fuzz_strategies import (
    huge_text,
    mutated_bytes,
    mutated_text,
    mutated_tree,
    random_yaml_text,
    rendered,
)

MIN_CASES = 5_000
SCALE = float(os.environ.get("FLOE_FUZZ_SCALE", "1"))
"""``FLOE_FUZZ_SCALE=10`` multiplies the example counts for a longer local run."""
BUDGETS = {
    name: max(1, int(count * SCALE))
    for name, count in {
        "test_random_yaml_in_any_file": 1_000,
        "test_mutated_manifests": 1_700,
        "test_a_dropped_required_key_or_an_unknown_key_is_an_error": 300,
        "test_text_mutations_of_valid_manifests": 1_300,
        "test_byte_mutations_of_valid_manifests": 500,
        "test_references_on_disk": 600,
        "test_huge_inputs_finish": 60,
    }.items()
}
CASES: Counter[str] = Counter()
SLOWEST: dict[str, float] = {}


def budget(name: str) -> settings:
    return settings(
        max_examples=BUDGETS[name],
        deadline=None,  # compile_case has its own hard deadline
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


TREES = st.sampled_from(sorted(trees()))
ENTRY = st.sampled_from(["product_dir", "product_file", "domain", "enterprise"])


def entry_path(root: Path, tree: Tree, entry: str) -> Path:
    """The path a user passes to ``floe compile``."""
    if entry == "product_dir":
        return root / tree.product_dir()
    role = {"product_file": "product"}.get(entry, entry)
    return root / tree.path_of(role)


@pytest.fixture(scope="module")
def workspace() -> Iterator[Workspace]:
    with scratch_root() as tmp:
        yield Workspace(Path(tmp))


def run(
    test: str,
    tree: Tree,
    entry: str,
    prepare: Callable[[Path], None] | None = None,
    workspace: Workspace | None = None,
    name: str = "",
) -> Outcome:
    """Compile ``entry`` of ``tree``; count and time the case.

    With a ``workspace`` the tree is the valid tree ``name`` with some files changed; otherwise it
    is written under a fresh directory, where ``prepare`` may change its shape.
    """
    with contextlib.ExitStack() as stack:
        if workspace is not None:
            root = stack.enter_context(workspace.case(name, tree))
        else:
            root = Path(stack.enter_context(scratch_root())) / "project"
            tree.write(root)
        if prepare is not None:
            prepare(root)
        start = time.perf_counter()
        outcome = compile_case(entry_path(root, tree, entry))
        elapsed = time.perf_counter() - start
    # the deadline thread cannot interrupt C code that holds the GIL (a regex, libyaml): time it too
    assert elapsed < DEADLINE, f"a compile took {elapsed:.1f} s"
    CASES[test] += 1
    SLOWEST[test] = max(SLOWEST.get(test, 0.0), elapsed)
    return outcome


def _valid(name: str) -> Tree:
    return trees()[name]


@functools.cache
def parsed(name: str, role: str) -> Any:
    """The valid file of ``role`` as a plain tree (mutations copy it)."""
    return yaml.load(_valid(name).text(role), Loader=yaml.CSafeLoader)


# -- the valid starting points --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(trees()))
@pytest.mark.parametrize("entry", ["product_dir", "product_file", "domain", "enterprise"])
def test_starting_points_compile(name: str, entry: str) -> None:
    """Mutations start from trees that compile: a failure below is the mutation's doing."""
    outcome = run("starting_points", _valid(name), entry)
    assert outcome.ok, outcome.error and outcome.error.render()
    assert outcome.compiled is not None
    if entry.startswith("product"):
        assert outcome.compiled.transforms


@dataclass(frozen=True)
class Case:
    """One valid tree (by name) with the file of ``role`` replaced by ``data``."""

    name: str
    role: str
    data: bytes

    @property
    def tree(self) -> Tree:
        return _valid(self.name).with_file(self.role, self.data)


def check(test: str, case: Case, entry: str, workspace: Workspace) -> Outcome:
    """Run ``case``; a file the compile does not read cannot fail it (the rest is valid)."""
    outcome = run(test, case.tree, entry, workspace=workspace, name=case.name)
    if not reads(entry, case.role):
        assert outcome.ok, outcome.error and outcome.error.render()
    if outcome.compiled is not None and entry.startswith("product"):
        assert outcome.compiled.transforms  # a product compiles only with its transforms
    return outcome


def reads(entry: str, role: str) -> bool:
    """Whether compiling ``entry`` reads the file of ``role`` (a compile reads only upwards)."""
    top = "product" if entry.startswith("product") else entry
    return ROLES.index(role) <= ROLES.index(top)


# -- random YAML ----------------------------------------------------------------------------------


@st.composite
def random_case(draw: st.DrawFn) -> Case:
    return Case(draw(TREES), draw(st.sampled_from(ROLES)), draw(random_yaml_text()).encode("utf-8"))


@budget("test_random_yaml_in_any_file")
@given(case=random_case(), entry=ENTRY)
def test_random_yaml_in_any_file(case: Case, entry: str, workspace: Workspace) -> None:
    check("test_random_yaml_in_any_file", case, entry, workspace)


# -- structural mutations of valid manifests -------------------------------------------------------


@st.composite
def structurally_mutated(draw: st.DrawFn) -> Case:
    name = draw(TREES)
    role = draw(st.sampled_from(ROLES))
    text = draw(rendered(draw(mutated_tree(parsed(name, role)))))
    if draw(st.integers(0, 3)) == 0:
        text = draw(mutated_text(text, max_changes=2))
    return Case(name, role, text.encode("utf-8"))


@budget("test_mutated_manifests")
@given(case=structurally_mutated(), entry=ENTRY)
def test_mutated_manifests(case: Case, entry: str, workspace: Workspace) -> None:
    check("test_mutated_manifests", case, entry, workspace)


# -- keys the schema requires, and keys it does not know ---------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A mapping of a valid manifest: where it is, the keys its schema requires, whether it is closed."""

    path: tuple[str | int, ...]
    required: tuple[str, ...]
    closed: bool


def _slots(value: Any, schema: Any, base: str, path: tuple[str | int, ...]) -> Iterator[Slot]:
    """Every mapping below ``value`` whose schema floe's own files settle without doubt."""
    store = schema_store()
    schema, base = store.deref(schema, base)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "scalar"
        fitting = [a for a in alternatives if (store.deref(a, base)[0].get("type") or "scalar") == kind]
        if len(fitting) == 1:
            yield from _slots(value, fitting[0], base, path)
        return
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        yield Slot(path, tuple(k for k in schema.get("required", ()) if k in value), extra is False)
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _slots(item, sub, base, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _slots(item, schema["items"], base, (*path, i))


@functools.cache
def slots(name: str, role: str) -> list[Slot]:
    kind = "dataproduct" if role == "product" else "manifest"
    uri = f"https://floe.dev/schemas/v1/{kind}.schema.json"
    return list(_slots(parsed(name, role), schema_store().get(uri), uri, ()))


@st.composite
def key_mutations(draw: st.DrawFn) -> tuple[Case, str, str, str]:
    """A valid tree with one required key dropped, or one unknown key added to a closed mapping:
    (case, entry that reads the file, what was done, the key)."""
    import copy

    name = draw(TREES)
    role = draw(st.sampled_from(ROLES))
    op = draw(st.sampled_from(["drop", "add"]))
    candidates = [s for s in slots(name, role) if (s.required if op == "drop" else s.closed)]
    slot = draw(st.sampled_from(candidates))
    tree = copy.deepcopy(parsed(name, role))
    node = functools.reduce(lambda parent, part: parent[part], slot.path, tree)
    if op == "drop":
        key = draw(st.sampled_from(slot.required))
        del node[key]
    else:
        key = draw(st.from_regex(r"x_[a-z0-9_]{1,12}", fullmatch=True))
        node[key] = draw(st.sampled_from(["", "1", "x", "[]", "{a: 1}"])) if draw(st.booleans()) else 1
    entry = draw(
        st.sampled_from(
            [e for e in ["product_dir", "product_file", "domain", "enterprise"] if reads(e, role)]
        )
    )
    text = draw(rendered(tree))
    return Case(name, role, text.encode("utf-8")), entry, op, key


@budget("test_a_dropped_required_key_or_an_unknown_key_is_an_error")
@given(mutation=key_mutations())
def test_a_dropped_required_key_or_an_unknown_key_is_an_error(
    mutation: tuple[Case, str, str, str], workspace: Workspace
) -> None:
    """Not only "compiled, or failed with a located error": a compile that reads the file fails, and
    a problem names the key."""
    case, entry, op, key = mutation
    outcome = check("test_a_dropped_required_key_or_an_unknown_key_is_an_error", case, entry, workspace)
    assert outcome.error is not None, f"{op} {key!r} in {case.role} of {case.name}: compiled"
    assert any(key in f"{p.message} {p.path or ''}" for p in outcome.error.problems), outcome.error.render()


# -- text and byte mutations -----------------------------------------------------------------------


@st.composite
def textually_mutated(draw: st.DrawFn) -> Case:
    name = draw(TREES)
    role = draw(st.sampled_from(ROLES))
    text = draw(mutated_text(_valid(name).text(role)))
    return Case(name, role, text.encode("utf-8"))


@budget("test_text_mutations_of_valid_manifests")
@given(case=textually_mutated(), entry=ENTRY)
def test_text_mutations_of_valid_manifests(case: Case, entry: str, workspace: Workspace) -> None:
    check("test_text_mutations_of_valid_manifests", case, entry, workspace)


@st.composite
def byte_mutated(draw: st.DrawFn) -> Case:
    name = draw(TREES)
    role = draw(st.sampled_from(ROLES))
    return Case(name, role, draw(mutated_bytes(_valid(name).text(role))))


@budget("test_byte_mutations_of_valid_manifests")
@given(case=byte_mutated(), entry=ENTRY)
def test_byte_mutations_of_valid_manifests(case: Case, entry: str, workspace: Workspace) -> None:
    outcome = check("test_byte_mutations_of_valid_manifests", case, entry, workspace)
    try:
        case.data.decode("utf-8")
    except UnicodeDecodeError:
        if reads(entry, case.role):  # a file that is read at all is refused, at the bad byte's line
            assert outcome.error is not None
            assert any("UTF-8" in p.message for p in outcome.error.problems), outcome.error.render()


@st.composite
def huge_case(draw: st.DrawFn) -> Case:
    name = draw(TREES)
    role = draw(st.sampled_from(ROLES))
    return Case(name, role, draw(huge_text(_valid(name).text(role))).encode("utf-8"))


@budget("test_huge_inputs_finish")
@given(case=huge_case(), entry=ENTRY)
def test_huge_inputs_finish(case: Case, entry: str, workspace: Workspace) -> None:
    """A megabyte, tens of thousands of lines, thousands of levels: each case in seconds at most."""
    check("test_huge_inputs_finish", case, entry, workspace)


# -- references on disk --------------------------------------------------------------------------

# How a reference (a manifest's `parent:`, a product's `platform:`) is broken, and whether the
# compile must still succeed (the reference then leads to the same manifest by another way).
REFERENCE_KINDS = {
    "valid": True,
    "symlink": True,
    "absolute": True,
    "outside": True,
    "unicode_name": True,
    "missing": False,
    "directory": False,
    "dangling_symlink": False,
    "symlink_loop": False,
    "self_symlink": False,
    "symlink_to_directory": False,
    "fifo": False,
    "through_a_file": False,
    "nul_byte": False,
    "long_name": False,
    "long_path": False,
    "newline": False,
    "empty_file": False,
    "binary_file": False,
    "to_product": False,
    "to_itself": False,
}
# How a transform's `path:` is broken, and whether the compile must still succeed.
TRANSFORM_KINDS = {
    "valid": True,
    "symlink_inside": True,
    "dot": True,
    "redundant": True,
    "parent_escape": False,
    "deep_escape": False,
    "absolute_outside": False,
    "absolute_root": False,
    "absolute_inside": False,
    "symlink_outside": False,
    "symlink_loop": False,
    "dangling_symlink": False,
    "missing": False,
    "nul_byte": False,
    "long_name": False,
    "long_path": False,
    "models_symlink_outside": False,
}


def _load(text: str) -> Any:
    return yaml.load(text, Loader=yaml.CSafeLoader)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)


def _set(text: str, change: Callable[[dict[str, Any]], None]) -> str:
    data = _load(text)
    change(data)
    return _dump(data)


def _reference(kind: str, folder: Path, real: Path, outside: Path, product: Path) -> str:
    """Make the filesystem objects a broken reference needs in ``folder``; return the reference."""
    if kind == "valid":
        return os.path.relpath(real, folder)
    if kind == "symlink":
        (folder / "link.yaml").symlink_to(os.path.relpath(real, folder))
        return "link.yaml"
    if kind == "absolute":
        return str(real)
    if kind == "outside":  # a copy of the manifest outside the project tree
        copy = outside / f"copy-{real.name}"
        copy.write_bytes(real.read_bytes())
        return str(copy)
    if kind == "unicode_name":
        copy = real.with_name("pärent 𝄞.yaml")
        copy.write_bytes(real.read_bytes())
        return os.path.relpath(copy, folder)
    if kind == "missing":
        return "nowhere/manifest.yaml"
    if kind == "directory":
        return "."
    if kind == "dangling_symlink":
        (folder / "dangling.yaml").symlink_to("gone.yaml")
        return "dangling.yaml"
    if kind == "symlink_loop":
        (folder / "loop-a.yaml").symlink_to("loop-b.yaml")
        (folder / "loop-b.yaml").symlink_to("loop-a.yaml")
        return "loop-a.yaml"
    if kind == "self_symlink":
        (folder / "self.yaml").symlink_to("self.yaml")
        return "self.yaml"
    if kind == "symlink_to_directory":
        (folder / "dir.yaml").symlink_to(".")
        return "dir.yaml"
    if kind == "fifo":
        os.mkfifo(folder / "fifo.yaml")
        return "fifo.yaml"
    if kind == "through_a_file":
        return os.path.relpath(real, folder) + "/more.yaml"
    if kind == "nul_byte":
        return "a\x00b.yaml"
    if kind == "long_name":
        return "x" * 300 + ".yaml"
    if kind == "long_path":
        return "a/" * 2100 + "m.yaml"
    if kind == "newline":
        return os.path.relpath(real, folder) + "\n"
    if kind == "empty_file":
        (folder / "empty.yaml").write_bytes(b"")
        return "empty.yaml"
    if kind == "binary_file":
        (folder / "binary.yaml").write_bytes(bytes(range(256)))
        return "binary.yaml"
    if kind == "to_product":
        return os.path.relpath(product, folder)
    if kind == "to_itself":
        return "SELF"
    raise AssertionError(kind)


def _transform_path(kind: str, product_dir: Path, valid: str, outside: Path) -> str:
    models = product_dir / "models"
    if kind == "valid":
        return valid
    if kind == "symlink_inside":
        (models / "alias").symlink_to(Path(valid).name if (models / Path(valid).name).exists() else ".")
        return "models/alias/"
    if kind == "dot":
        return "."
    if kind == "redundant":
        return "./models/../" + valid
    if kind == "parent_escape":
        return "../"
    if kind == "deep_escape":
        return "models/../../../../../../../../../../../../etc"
    if kind == "absolute_outside":
        return str(outside)
    if kind == "absolute_root":
        return "/"
    if kind == "absolute_inside":
        return str(product_dir / valid)
    if kind == "symlink_outside":
        (models / "out").symlink_to(outside)
        return "models/out/"
    if kind == "symlink_loop":
        (models / "loop-a").symlink_to("loop-b")
        (models / "loop-b").symlink_to("loop-a")
        return "models/loop-a/"
    if kind == "dangling_symlink":
        (models / "gone").symlink_to("nothing-here")
        return "models/gone/"
    if kind == "missing":
        return "models/nothing/"
    if kind == "nul_byte":
        return "models/a\x00b/"
    if kind == "long_name":
        return "models/" + "m" * 300 + "/"
    if kind == "long_path":
        return "models/" + "m/" * 2100
    if kind == "models_symlink_outside":
        return "models_out/"
    raise AssertionError(kind)


@st.composite
def reference_case(draw: st.DrawFn) -> tuple[str, str, str, tuple[str, ...], bool]:
    """(tree, platform kind, parent kind, transform kinds, whether the compile must succeed)."""
    name = draw(TREES)
    count = len(parsed(name, "product")["transforms"])
    slots = draw(st.sets(st.sampled_from(["platform", "parent", "transform"]), min_size=1))
    platform = draw(st.sampled_from(sorted(REFERENCE_KINDS))) if "platform" in slots else "valid"
    parent = draw(st.sampled_from(sorted(REFERENCE_KINDS))) if "parent" in slots else "valid"
    which = draw(st.integers(0, count - 1))
    broken = draw(st.sampled_from(sorted(TRANSFORM_KINDS))) if "transform" in slots else "valid"
    transforms = tuple(broken if i == which else "valid" for i in range(count))
    # a copy of the domain manifest outside the tree finds its parent only by an absolute path
    platform_ok = REFERENCE_KINDS[platform] and (platform != "outside" or parent in ("absolute", "outside"))
    ok = platform_ok and REFERENCE_KINDS[parent] and all(TRANSFORM_KINDS[t] for t in transforms)
    return name, platform, parent, transforms, ok


def build_references(root: Path, tree: Tree, platform: str, parent: str, transforms: tuple[str, ...]) -> None:
    outside = root.parent / "outside"
    (outside / "models").mkdir(parents=True, exist_ok=True)
    product_file = root / tree.path_of("product")
    domain_file = root / tree.path_of("domain")
    enterprise_file = root / tree.path_of("enterprise")
    product_dir = product_file.parent
    (product_dir / "models_out").symlink_to(outside / "models")

    def point(file: Path, key: str, kind: str, real: Path) -> None:
        ref = _reference(kind, file.parent, real, outside, product_file)
        if ref == "SELF":
            ref = file.name
        file.write_text(
            _set(file.read_text(encoding="utf-8"), lambda d: d.__setitem__(key, ref)), encoding="utf-8"
        )

    point(domain_file, "parent", parent, enterprise_file)
    point(product_file, "platform", platform, domain_file)
    data = _load(product_file.read_text(encoding="utf-8"))
    for item, kind in zip(data["transforms"], transforms, strict=True):
        item["path"] = _transform_path(kind, product_dir, item["path"], outside)
    product_file.write_text(_dump(data), encoding="utf-8")


@budget("test_references_on_disk")
@given(case=reference_case(), via=st.sampled_from(["product_dir", "product_file"]))
def test_references_on_disk(case: tuple[str, str, str, tuple[str, ...], bool], via: str) -> None:
    name, platform, parent, transforms, ok = case
    tree = _valid(name)
    outcome = run(
        "test_references_on_disk",
        tree,
        via,
        lambda root: build_references(root, tree, platform, parent, transforms),
    )
    assert outcome.ok == ok, outcome.error.render() if outcome.error else "compiled"
    if not ok and (platform, parent) == ("valid", "valid"):  # only a transform's path is broken
        assert outcome.error is not None
        paths = [p.path or "" for p in outcome.error.problems]
        assert all(p.startswith("$.transforms[") for p in paths), outcome.error.render()


# -- the command line ------------------------------------------------------------------------------

CLI_EXAMPLES = 12


def floe_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ_without_debug(),
        check=False,
    )


@settings(
    max_examples=CLI_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(
    case=st.one_of(textually_mutated(), structurally_mutated()),
    command=st.sampled_from(["compile", "compile", "compile", "validate"]),
)
def test_cli_reports_what_compile_path_reports(case: Case, command: str) -> None:
    """``floe compile``/``floe validate`` exit 0 or 1, with exactly the in-process error on stderr."""
    tree = case.tree
    with scratch_root() as tmp:
        root = Path(tmp) / "project"
        tree.write(root)
        target = root / tree.product_dir()
        outcome = compile_case(target)
        done = floe_cli(command, str(target))
    CASES["cli"] += 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    if outcome.error is not None:
        assert done.returncode == 1, output
        assert done.stderr.strip() == outcome.error.render().strip()
    elif command == "compile":
        assert done.returncode == 0, output
    else:
        assert done.returncode in (0, 1), output


# -- regressions: what the fuzzing found -------------------------------------------------------------


def _write_case(tmp_path: Path, role: str, content: str | bytes, name: str = "examples") -> tuple[Path, Tree]:
    tree = _valid(name).with_file(role, content)
    root = tmp_path / "project"
    tree.write(root)
    return root, tree


def _error(target: Path) -> FloeError:
    outcome = compile_case(target)
    assert outcome.error is not None, "expected a floe error"
    return outcome.error


def _only(error: FloeError) -> Problem:
    (problem,) = error.problems
    return problem


def _shop_with(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    """The example shop with ``old`` replaced by ``new`` in its floe.yaml: (product dir, file)."""
    root, tree = _write_case(tmp_path, "product", _valid("examples").text("product").replace(old, new))
    return root / tree.product_dir(), root / tree.path_of("product")


@pytest.mark.parametrize(
    ("old", "new", "path", "says"),
    [
        ("path: models/marts/", 'path: "models/a\\0b/"', "$.transforms[1].path", "NUL character"),
        (
            "path: models/marts/",
            "path: models/" + "m" * 300 + "/",
            "$.transforms[1].path",
            "file name too long",
        ),
        ("path: models/marts/", "path: models/loop/", "$.transforms[1].path", "symlink loop"),
        ("platform: ../platform/domains/sales.yaml", 'platform: "a\\0b.yaml"', "$.platform", "NUL character"),
        (
            "platform: ../platform/domains/sales.yaml",
            "platform: " + "p" * 300 + ".yaml",
            "$.platform",
            "file name too long",
        ),
        ("platform: ../platform/domains/sales.yaml", "platform: loop.yaml", "$.platform", "symlink loop"),
    ],
)
def test_paths_the_system_refuses_are_located(
    tmp_path: Path, old: str, new: str, path: str, says: str
) -> None:
    """Found by fuzzing: pathlib's ValueError (NUL), OSError (name too long) and RuntimeError
    (symlink loop) escaped as tracebacks from the parent and transform path checks."""
    product, file = _shop_with(tmp_path, old, new)
    (product / "models" / "loop").symlink_to("loop")
    (product / "loop.yaml").symlink_to("loop.yaml")
    problem = _only(_error(product))
    assert (problem.file, problem.path) == (str(file), path)
    assert problem.line == 5 if path == "$.platform" else problem.line == 11
    assert says in problem.message and "cannot be used" in problem.message


def test_a_fifo_is_refused_not_read_forever(tmp_path: Path) -> None:
    """Found by fuzzing: reading a FIFO blocked forever (compile as a path, or as a parent)."""
    fifo = tmp_path / "floe.yaml"
    os.mkfifo(fifo)
    problem = _only(_error(fifo))
    assert problem.file == str(fifo) and "not a regular file" in problem.message


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"apiVersion: floe.dev/v1\nkind: Manifest\x00\n", 2),
        (b"kind: Manifest\n# note \x1b\n", 2),
        (b"kind: Manifest\r\nscope:\t\x07enterprise\n", 2),
    ],
)
def test_control_characters_are_located(tmp_path: Path, data: bytes, line: int) -> None:
    """Found by fuzzing: strictyaml failed on its own ReaderError, so floe reported no line."""
    root, tree = _write_case(tmp_path, "enterprise", data)
    problem = _only(_error(root / tree.path_of("enterprise")))
    assert problem.line == line and "unacceptable character" in problem.message


@pytest.mark.parametrize(
    "text",
    [
        "kind: Manifest\nx: " + "[" * 5_000 + "\n",  # past libyaml's own limit of 1000 levels
        "kind: Manifest\nx: " + "[" * 300_000 + "\n",
        "# \t\nkind: Manifest\nx: " + "[" * 300_000 + "\n",  # strictyaml's path: a tab
        "\ufeffkind: Manifest\n\ufeffx: " + "[" * 300_000 + "\n",  # a byte order mark past the start
        "kind: Manifest\nx:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(2_000)),
        "#\t\nkind: Manifest\nx:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(2_000)),
    ],
)
def test_deep_nesting_is_refused_at_its_line_at_once(tmp_path: Path, text: str) -> None:
    """Found by fuzzing: strictyaml's scanner takes seconds per line of ``[`` (its work per token
    grows with the open flow collections) and its composer runs out of stack: a floe error
    without a line, after up to minutes. Now refused at the first level past 40, in milliseconds."""
    root, tree = _write_case(tmp_path, "enterprise", text)
    start = time.perf_counter()
    problem = _only(_error(root / tree.path_of("enterprise")))
    assert time.perf_counter() - start < 10
    assert problem.message == "invalid YAML: nesting deeper than 40 levels"
    assert problem.line == (2 if "[" in text else 42) + text.startswith("#")


def test_strictyaml_path_is_linear_in_list_length_and_mapping_width(tmp_path: Path) -> None:
    """Found by fuzzing: with one tab (which sends a file to strictyaml), a product of 1,500
    transforms took about 12 s and one with 6,000 unknown keys more than 30 s: strictyaml's
    validation deep-copies the tree (each list copying its attributes once per item) and searches
    a mapping's keys linearly for each key. Both now take about a second."""
    bench = benchmark_module()
    bench.write_platform(tmp_path)
    product = bench.write_product(tmp_path, 1_500)
    file = product / "floe.yaml"
    file.write_text("# a tab\t\n" + file.read_text(encoding="utf-8"), encoding="utf-8")
    start = time.perf_counter()
    outcome = compile_case(product)
    assert outcome.compiled is not None and len(outcome.compiled.transforms) == 1_500
    file.write_text(
        file.read_text(encoding="utf-8") + "".join(f"k{i}: v\n" for i in range(6_000)), encoding="utf-8"
    )
    error = _error(product)
    assert len(error.problems) == 6_000 and error.problems[0].message == "unknown key 'k0'"
    assert time.perf_counter() - start < 25


@pytest.mark.parametrize(
    ("text", "says", "line"),
    [
        ("#\t\nkind: Manifest\n[a]: x\n", "invalid YAML: a list cannot be a mapping key", 3),
        ("#\t\nkind: Manifest\n? - a\n  - b\n: x\n", "invalid YAML: a list cannot be a mapping key", 3),
        ("#\t\nkind: Manifest\n?\n- ?\n", "invalid YAML: a list cannot be a mapping key", 4),
        (
            "kind: Manifest\n'1' : [ ]\nk-1:\n# c\n#\n-  #c\n  # indented note\n  null : [\n   k:v,\n   'b\n\n"
            "     ~\n\n     null',]\n  # indented note\n",
            "overlap in comment",
            None,
        ),
    ],
)
def test_strictyaml_failures_without_a_position_are_located(
    tmp_path: Path, text: str, says: str, line: int | None
) -> None:
    """Found by fuzzing: strictyaml fails on lists as keys (an assertion in its validator) and
    ruamel's comment handling on some texts (NotImplementedError) with no position: floe gave
    no line. Lists as keys are now refused at their line, other failures where ruamel stopped."""
    root, tree = _write_case(tmp_path, "enterprise", text)
    problem = _only(_error(root / tree.path_of("enterprise")))
    assert says in problem.message and problem.line is not None
    assert line is None or problem.line == line


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (
            "config: { threads: 4 }",
            "config: {secret_ref: PASSWORD}",
            "$.plugins.compute.approved[0].config.secret_ref",
        ),
        (
            "duckdb: { schema: analytics }",
            "duckdb: {secret_ref: PASSWORD}",
            "$.environments[1].overrides.duckdb.secret_ref",
        ),
        (
            "memory_limit: 8GB",
            "memory_limit: {secret_ref: PASSWORD}",
            "$.plugins.compute.approved[1].config.memory_limit",
        ),
    ],
)
def test_secret_references_where_settings_belong_are_located(
    tmp_path: Path, old: str, new: str, path: str
) -> None:
    """Found by fuzzing: settings that were a whole ``{secret_ref: X}`` became a SecretReference
    and crashed governance (TypeError, AttributeError); a reference as DuckDB's memory_limit
    reached the engine, whose error named no file."""
    root, tree = _write_case(tmp_path, "enterprise", _valid("examples").text("enterprise").replace(old, new))
    problem = _only(_error(root / tree.product_dir()))
    assert (problem.file, problem.path) == (str(root / tree.path_of("enterprise")), path)
    assert problem.line is not None


def test_the_cli_reports_what_used_to_be_a_traceback(tmp_path: Path) -> None:
    product, file = _shop_with(tmp_path, "path: models/marts/", 'path: "models/a\\0b/"')
    done = floe_cli("compile", str(product))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"{file}:11: $.transforms[1].path: the path 'models/a\\x00b/' cannot be used"
    )


def _strictyaml(text: str) -> tuple[str, Any, Any]:
    """strictyaml's own reading: ("accepted", tree, lines) or ("rejected", message, line)."""
    try:
        doc = sy.dirty_load(text, sy.Any(), label=differential.LABEL, allow_flow_style=True)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").strip()
        return "rejected", fastyaml.problem_message(what), mark.line + 1 if mark is not None else None
    except Exception:  # noqa: BLE001 - strictyaml's bare failures (floe must still give a line)
        return "rejected", None, None
    return "accepted", _comparable(doc.data), _lines(doc)


def _comparable(value: Any) -> Any:
    """:func:`differential.canonical`, with ruamel's tagged scalars (``=`` and ``<<`` as values)
    compared by tag and value, since each parse makes its own object."""
    if type(value).__name__ == "TaggedScalar":
        return ("tagged", str(value.tag.value), str(value.value))
    if isinstance(value, dict):
        return ("map", tuple((_comparable(k), _comparable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("seq", tuple(_comparable(v) for v in value))
    return differential.canonical(value)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(differential.yaml_texts(), differential.mutated()))
def test_strictyaml_path_reads_as_strictyaml_does(text: str) -> None:
    """floe reads what fastyaml leaves to strictyaml with strictyaml's loader but without its
    (quadratic) validation: the tree, the lines and the refusals must still be strictyaml's."""
    verdict, what, where = _strictyaml(text)
    try:
        tree, lines = _parse(text, differential.LABEL)
    except ManifestError as exc:
        problem = _only(exc)
        assert problem.line is not None, problem  # even where strictyaml gives none
        if problem.message == "invalid YAML: nesting deeper than 40 levels":
            return  # floe refuses what strictyaml reads only slowly, or not at all
        assert verdict == "rejected", f"{text!r}: floe refused, strictyaml accepts"
        if what is not None:
            assert (problem.message, problem.line) == (what, where), text
        return
    assert verdict == "accepted", f"{text!r}: floe accepted, strictyaml refuses"
    assert (_comparable(tree), lines) == (what, where), text


def test_count_of_cases() -> None:
    """At least MIN_CASES fuzz cases ran (hypothesis may stop early when a space is exhausted)."""
    ran = {name: CASES[name] for name in BUDGETS if CASES[name]}
    short = {name: (count, BUDGETS[name]) for name, count in ran.items() if count < BUDGETS[name]}
    assert not short, f"fewer cases than budgeted: {short}"
    if len(ran) == len(BUDGETS) and SCALE >= 1:
        assert sum(ran.values()) >= MIN_CASES, f"{sum(ran.values())} cases: {dict(CASES)}"
    print(
        f"\nmanifest fuzz: {sum(CASES.values())} cases {dict(CASES)}; slowest (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in SLOWEST.items())
    )
