"""``floe compile DIR``: every product below a directory, manifests shared, partial parsing.

Real directories in tmp_path, the real installed engines; sharing is measured by the reads the
:class:`~floe.manifest_cache.ManifestCache` really made, and partial parsing by what each run
compiled and which files it wrote (their inode and mtime).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from floe.compiler import Compiled, artifact_texts, compile_any, compile_path
from floe.platform import (
    COMPILED,
    FAILED,
    UNCHANGED,
    PlatformResult,
    cache_path,
    compile_platform,
    find_products,
)
from floe.plugins import EngineRegistry

ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 4 }
      - name: duckdb-large
        engine: duckdb
        config: { threads: 8 }
    default: duckdb
environments:
  - name: dev
  - name: prod
"""
DOMAIN = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {{name: {name}}}
plugins:
  compute:
    approved:
      - duckdb
      - name: duckdb-large
        config: {{ threads: 6 }}
"""
PRODUCTS = {"products/a/p1": "a", "products/a/p2": "a", "products/b/p3": "b"}


def product_text(name: str, domain: str, compute: str = "duckdb-large", platform: str | None = None) -> str:
    return textwrap.dedent(f"""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {{name: {name}}}
        platform: {platform or f"../../../platform/domains/{domain}.yaml"}
        transforms:
          - {{type: dbt, path: models/staging/, compute: {compute}}}
          - {{type: dbt, path: models/marts/}}
        """)


def write_product(root: Path, relative: str, domain: str, **kwargs: str) -> Path:
    product = root / relative
    for folder in ("models/staging", "models/marts"):
        (product / folder).mkdir(parents=True, exist_ok=True)
    (product / "floe.yaml").write_text(product_text(product.name, domain, **kwargs), encoding="utf-8")
    return product


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """1 enterprise, 2 domains (a, b), 3 products: products/a/p1, products/a/p2, products/b/p3."""
    root = tmp_path / "repo"
    (root / "platform" / "domains").mkdir(parents=True)
    (root / "platform" / "enterprise.yaml").write_text(ENTERPRISE, encoding="utf-8")
    for name in ("a", "b"):
        (root / "platform" / "domains" / f"{name}.yaml").write_text(
            DOMAIN.format(name=name), encoding="utf-8"
        )
    for relative, domain in PRODUCTS.items():
        write_product(root, relative, domain)
    return root


@pytest.fixture(scope="module")
def engines() -> EngineRegistry:
    return EngineRegistry.discover()


def statuses(result: PlatformResult) -> dict[str, str]:
    return {p.name: p.status for p in result.products}


def reads(result: PlatformResult, root: Path) -> dict[str, int]:
    return {p.relative_to(root.resolve()).as_posix(): n for p, n in result.manifests.reads.items()}


def artifact_ids(product: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of each artifact: a rewrite (atomic rename) changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (product / "target/floe").iterdir()}


def compiled_json(product: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((product / "target/floe/compiled.json").read_text())
    return data


def test_compiles_every_product_reading_each_manifest_once(tree: Path, engines: EngineRegistry) -> None:
    result = compile_platform(tree, engines)
    assert statuses(result) == dict.fromkeys(PRODUCTS, COMPILED)
    assert reads(result, tree) == {
        "platform/enterprise.yaml": 1,
        "platform/domains/a.yaml": 1,
        "platform/domains/b.yaml": 1,
    }
    assert result.partial_parse == "no partial parse cache yet"
    for relative in PRODUCTS:
        product = tree / relative
        # exactly what compiling the product alone writes
        alone = artifact_texts(compile_path(product, engines))
        assert {p.name: p.read_text() for p in (product / "target/floe").iterdir()} == {
            p.name: text for p, text in alone.items()
        }
        assert compiled_json(product)["computes"]["duckdb-large"]["config"] == {"threads": 6}  # type: ignore[index]


def test_the_compiler_decides_what_a_path_names(tree: Path, engines: EngineRegistry) -> None:
    """A product (its directory or floe.yaml) and a manifest compile alone, writing nothing; a
    directory without floe.yaml compiles (and writes) every product below it."""
    p1 = tree / "products/a/p1"
    for path in (p1, p1 / "floe.yaml"):
        compiled = compile_any(path, engines=engines)
        assert isinstance(compiled, Compiled) and compiled.name == "p1" and len(compiled.transforms) == 2
    manifest = compile_any(tree / "platform/domains/a.yaml", engines=engines)
    assert isinstance(manifest, Compiled) and manifest.name == "a" and manifest.transforms == ()
    assert not (p1 / "target").exists()
    for folder in (tree, tree / "products"):
        result = compile_any(folder, engines=engines, partial_parse=False)
        assert isinstance(result, PlatformResult), folder
        assert statuses(result) == {
            name.removeprefix("products/") if folder != tree else name: COMPILED for name in PRODUCTS
        }
    assert (p1 / "target/floe/compiled.json").is_file()


def test_finds_products_but_not_in_target_hidden_dirs_or_through_loops(tree: Path) -> None:
    write_product(tree, ".hidden/p9", "a")
    write_product(tree, "target/p9", "a")
    write_product(tree, "products/a/p1/nested", "a")  # a product's own directory is not searched
    (tree / "products" / "loop").symlink_to(tree / "products")  # a loop back up
    (tree / "products" / "again").symlink_to(tree / "products" / "b")  # a second way to p3
    (tree / "dangling").symlink_to(tree / "nowhere")
    found = [p.relative_to(tree).as_posix() for p in find_products(tree)]
    assert found == ["products/a/p1", "products/a/p2", "products/b/p3"]  # not products/again/p3


def test_repeat_compiles_only_the_changed_product(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    before = {relative: artifact_ids(tree / relative) for relative in PRODUCTS}
    (tree / "products/a/p1/floe.yaml").write_text(product_text("p1", "a", compute="duckdb"), encoding="utf-8")
    result = compile_platform(tree, engines)
    assert result.partial_parse is None
    assert statuses(result) == {
        "products/a/p1": COMPILED,
        "products/a/p2": UNCHANGED,
        "products/b/p3": UNCHANGED,
    }
    assert reads(result, tree) == {"platform/enterprise.yaml": 1, "platform/domains/a.yaml": 1}
    assert [t["compute"] for t in compiled_json(tree / "products/a/p1")["transforms"]] == ["duckdb", "duckdb"]  # type: ignore[attr-defined]
    assert artifact_ids(tree / "products/a/p1")["compiled.json"] != before["products/a/p1"]["compiled.json"]
    for relative in ("products/a/p2", "products/b/p3"):
        assert artifact_ids(tree / relative) == before[relative]  # neither compiled nor rewritten
    cache = cache_path(tree).stat()
    nothing = compile_platform(tree, engines)
    assert set(statuses(nothing).values()) == {UNCHANGED} and not nothing.manifests.reads
    assert cache_path(tree).stat().st_ino == cache.st_ino  # nothing changed: not even the cache is rewritten


def test_changed_domain_recompiles_the_products_below_it(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    p3 = artifact_ids(tree / "products/b/p3")
    domain = tree / "platform/domains/a.yaml"
    domain.write_text(domain.read_text().replace("threads: 6", "threads: 7"), encoding="utf-8")  # same size
    result = compile_platform(tree, engines)
    assert statuses(result) == {
        "products/a/p1": COMPILED,
        "products/a/p2": COMPILED,
        "products/b/p3": UNCHANGED,
    }
    assert compiled_json(tree / "products/a/p2")["computes"]["duckdb-large"]["config"] == {"threads": 7}  # type: ignore[index]
    assert artifact_ids(tree / "products/b/p3") == p3
    enterprise = tree / "platform/enterprise.yaml"
    enterprise.write_text(enterprise.read_text().replace("threads: 4", "threads: 3"), encoding="utf-8")
    assert set(statuses(compile_platform(tree, engines)).values()) == {COMPILED}


def test_content_change_behind_a_restored_mtime_is_noticed(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    domain = tree / "platform/domains/b.yaml"
    st = domain.stat()
    domain.write_text(domain.read_text().replace("threads: 6", "threads: 5"), encoding="utf-8")
    os.utime(domain, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the content differs
    result = compile_platform(tree, engines)
    assert statuses(result)["products/b/p3"] == COMPILED
    assert compiled_json(tree / "products/b/p3")["computes"]["duckdb-large"]["config"] == {"threads": 5}  # type: ignore[index]


def test_touched_but_unchanged_files_compile_nothing(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    for path in [tree / "platform/enterprise.yaml", *(tree / r / "floe.yaml" for r in PRODUCTS)]:
        os.utime(path)
    result = compile_platform(tree, engines)
    assert set(statuses(result).values()) == {UNCHANGED} and not result.manifests.reads


def test_deleted_and_added_products_are_noticed(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    shutil.rmtree(tree / "products/a/p2")
    write_product(tree, "products/b/p4", "b")
    result = compile_platform(tree, engines)
    assert statuses(result) == {
        "products/a/p1": UNCHANGED,
        "products/b/p3": UNCHANGED,
        "products/b/p4": COMPILED,
    }
    assert result.removed == ("products/a/p2",)
    assert (tree / "products/b/p4/target/floe/compiled.json").is_file()
    saved = json.loads(cache_path(tree).read_text())["products"]
    assert sorted(saved) == ["products/a/p1", "products/b/p3", "products/b/p4"]


def test_removed_transform_folder_and_deleted_artifact_are_noticed(
    tree: Path, engines: EngineRegistry
) -> None:
    compile_platform(tree, engines)
    (tree / "products/a/p2/target/floe/compiled.json").unlink()
    shutil.rmtree(tree / "products/b/p3/models/marts")
    result = compile_platform(tree, engines)
    assert statuses(result) == {
        "products/a/p1": UNCHANGED,
        "products/a/p2": COMPILED,
        "products/b/p3": FAILED,
    }
    assert (tree / "products/a/p2/target/floe/compiled.json").is_file()
    error = next(p.error for p in result.products if p.error is not None)
    assert "$.transforms[1].path: path 'models/marts/' does not exist" in error.render()
    # a failure is never recorded: reported again, then compiled once fixed
    assert statuses(compile_platform(tree, engines))["products/b/p3"] == FAILED
    (tree / "products/b/p3/models/marts").mkdir()
    assert statuses(compile_platform(tree, engines))["products/b/p3"] == COMPILED


def test_retargeted_symlink_in_the_chain_is_noticed(tree: Path, engines: EngineRegistry) -> None:
    """Same files, but the product's platform: path now resolves to another manifest."""
    shutil.copytree(tree / "platform", tree / "platform-v2")
    v2 = tree / "platform-v2/domains/a.yaml"
    v2.write_text(v2.read_text().replace("threads: 6", "threads: 2"), encoding="utf-8")
    (tree / "current").symlink_to(tree / "platform")
    write_product(tree, "products/a/p1", "a", platform="../../../current/domains/a.yaml")
    compile_platform(tree, engines)
    (tree / "current").unlink()
    (tree / "current").symlink_to(tree / "platform-v2")
    result = compile_platform(tree, engines)
    assert statuses(result)["products/a/p1"] == COMPILED and statuses(result)["products/a/p2"] == UNCHANGED
    assert compiled_json(tree / "products/a/p1")["computes"]["duckdb-large"]["config"] == {"threads": 2}  # type: ignore[index]


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff not json",
        b"[1, 2, 3]",
        b'{"format": "floe-partial-parse/1"}',
        b'{"format": "something-else/9", "key": {}, "products": {}}',
    ],
)
def test_corrupted_cache_is_ignored(tree: Path, engines: EngineRegistry, content: bytes) -> None:
    compile_platform(tree, engines)
    cache_path(tree).write_bytes(content)
    result = compile_platform(tree, engines)
    assert result.partial_parse is not None and result.partial_parse.startswith("cache ignored")
    assert set(statuses(result).values()) == {COMPILED}


def test_tampered_entry_or_foreign_cache_is_ignored(
    tree: Path, tmp_path: Path, engines: EngineRegistry
) -> None:
    compile_platform(tree, engines)
    good = json.loads(cache_path(tree).read_text())
    bad = json.loads(json.dumps(good))
    bad["products"]["products/a/p1"]["file"][0] = "not a size"
    cache_path(tree).write_text(json.dumps(bad))
    result = compile_platform(tree, engines)
    assert result.partial_parse == "cache ignored: it is corrupted" and set(statuses(result).values()) == {
        COMPILED
    }
    # the same tree elsewhere, with the first tree's cache: written for another directory
    other = tmp_path / "copy"
    shutil.copytree(tree, other, symlinks=True)
    result = compile_platform(other, engines)
    assert result.partial_parse == "cache ignored: it was written for another directory"
    assert set(statuses(result).values()) == {COMPILED}
    assert compiled_json(other / "products/a/p1")["chain_files"][-1] == str(other / "products/a/p1/floe.yaml")  # type: ignore[index]


def test_changed_engines_or_version_invalidate_the_cache(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    fewer = EngineRegistry.discover(environ={**os.environ, "FLOE_DISABLE_PLUGINS": "trino"})
    result = compile_platform(tree, fewer)
    assert result.partial_parse == "cache ignored: the installed engines changed"
    assert set(statuses(result).values()) == {COMPILED}
    data = json.loads(cache_path(tree).read_text())
    data["key"]["floe"] = "0.0.0-older"
    cache_path(tree).write_text(json.dumps(data))
    result = compile_platform(tree, fewer)
    assert result.partial_parse == "cache ignored: floe's version changed"
    assert set(statuses(result).values()) == {COMPILED}


def test_no_partial_parse_compiles_all_and_rewrites_nothing_identical(
    tree: Path, engines: EngineRegistry
) -> None:
    compile_platform(tree, engines)
    before = {relative: artifact_ids(tree / relative) for relative in PRODUCTS}
    result = compile_platform(tree, engines, partial_parse=False)
    assert result.partial_parse == "off (--no-partial-parse)"
    assert set(statuses(result).values()) == {COMPILED}
    assert all(not p.written and p.kept == 2 for p in result.products)
    assert {relative: artifact_ids(tree / relative) for relative in PRODUCTS} == before


def test_unwritable_target_fails_only_that_product(tree: Path, engines: EngineRegistry) -> None:
    (tree / "products/a/p2/target").write_text("a file where target/ should be")  # fails even as root
    result = compile_platform(tree, engines)
    assert statuses(result) == {"products/a/p1": COMPILED, "products/a/p2": FAILED, "products/b/p3": COMPILED}
    error = next(p.error for p in result.products if p.error is not None)
    assert "cannot write the artifacts" in error.render()


def test_each_artifact_folder_is_swept_once_of_what_killed_writers_left(
    tree: Path, engines: EngineRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary files of writers killed mid-write go at the next compile, beside rewritten and
    identical artifacts alike, with one listing per folder however many artifacts it holds; a
    live writer's file stays."""
    compile_platform(tree, engines)
    changed, same = tree / "products/a/p1/target/floe", tree / "products/b/p3/target/floe"
    dead = [
        changed / ".compiled.json.0123456789ab.tmp",
        changed / ".profiles.yml.0123456789ab.tmp",
        same / ".compiled.json.0123456789ab.tmp",
    ]
    live = changed / ".compiled.json.ba9876543210.tmp"
    for path in [*dead, live]:
        path.write_text("half written")
    write_product(tree, "products/a/p1", "a", compute="duckdb")  # both of its artifacts change
    listed: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(os.fspath(path)) or listdir(path))
    with live.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a writer still writing holds it
        result = compile_platform(tree, engines, partial_parse=False)
    monkeypatch.undo()  # Path.iterdir lists too
    outcomes = {p.name: (len(p.written), p.kept) for p in result.products}
    assert outcomes == {"products/a/p1": (2, 0), "products/a/p2": (0, 2), "products/b/p3": (0, 2)}
    assert not [path for path in dead if path.exists()] and live.exists()
    assert sorted(p.name for p in changed.iterdir()) == [live.name, "compiled.json", "profiles.yml"]
    assert listed.count(str(changed)) == 1 and listed.count(str(same)) == 1


def floe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_reports_every_failure_once_and_exits_1(tree: Path) -> None:
    write_product(tree, "products/a/p1", "a", compute="spark")
    domain = tree / "platform/domains/b.yaml"
    domain.write_text(
        domain.read_text().replace("- duckdb\n", "- duckdb\n      - postgresql\n"), encoding="utf-8"
    )
    write_product(tree, "products/b/p4", "b")
    proc = floe("compile", ".", cwd=tree)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        "error: product products/a/p1:\nproducts/a/p1/floe.yaml:6: $.transforms[0].compute: transform "
        "'staging' selects compute 'spark'"
    ) in proc.stderr
    # the broken domain: one report naming both products below it, located in the domain's file
    assert "error: 2 products products/b/p3, products/b/p4:\nplatform/domains/b.yaml:10: " in proc.stderr
    assert proc.stderr.count("'postgresql'") == 1
    assert proc.stdout.splitlines() == [
        "found 4 data product(s) below . (partial parse: no partial parse cache yet; compiling all)",
        "wrote 2 file(s) in 1 product(s)",
        "done: 1 ok (1 compiled, 0 unchanged), 3 failed, 4 total",
    ]
    assert (tree / "products/a/p2/target/floe/compiled.json").is_file()
    again = floe("compile", ".", cwd=tree)  # the failures are reported again, the good one reused
    assert again.returncode == 1 and again.stderr == proc.stderr
    assert "done: 1 ok (0 compiled, 1 unchanged), 3 failed, 4 total" in again.stdout


def test_cli_summary_partial_parse_and_flag(tree: Path) -> None:
    first = floe("compile", "repo", cwd=tree.parent)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "done: 3 ok (3 compiled, 0 unchanged), 0 failed, 3 total"
    second = floe("compile", "repo", cwd=tree.parent)
    assert (
        second.stdout.splitlines()
        == [
            "found 3 data product(s) below repo (partial parse: 3 unchanged, 0 to compile)",
            "wrote 0 file(s) in 0 product(s)",
            "done: 3 ok (0 compiled, 3 unchanged), 0 failed, 3 total",
        ]
        and second.stderr == ""
    )
    full = floe("compile", "repo", "--no-partial-parse", cwd=tree.parent)
    assert full.returncode == 0 and full.stdout.splitlines() == [
        "found 3 data product(s) below repo (partial parse: off (--no-partial-parse); compiling all)",
        "wrote 0 file(s) in 0 product(s); 6 compiled but identical, not rewritten",
        "done: 3 ok (3 compiled, 0 unchanged), 0 failed, 3 total",
    ]
    # a product directory (or its floe.yaml) is still compiled alone, as before
    alone = floe("compile", "repo/products/a/p1", cwd=tree.parent)
    assert alone.returncode == 0 and alone.stdout.startswith("ok: acme → a → p1: 2 transform(s)")


def test_cli_directory_without_products(tmp_path: Path) -> None:
    (tmp_path / "empty" / "target" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "target" / "x" / "floe.yaml").write_text("kind: DataProduct\n")
    proc = floe("compile", "empty", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(
        "empty: no data product found below empty\n  expected: directories holding a floe.yaml"
    )


def test_cli_directory_compile_imports_no_engine_clients(tree: Path) -> None:
    heavy = {
        "dbt",
        "pyspark",
        "pyiceberg",
        "snowflake",
        "databricks",
        "redshift_connector",
        "trino",
        "duckdb",
        "agate",
        "kubernetes",
        "psycopg2",
        "strictyaml",
    }
    code = (
        f"import sys, floe.cli; rc = floe.cli.main(['compile', {str(tree)!r}]); "
        f"print(rc, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr


def test_a_product_narrowing_computes_is_governed_on_its_own(tree: Path, engines: EngineRegistry) -> None:
    """Governance is shared by the products below the same manifests only when they add nothing."""
    p2 = tree / "products/a/p2/floe.yaml"
    p2.write_text(p2.read_text() + "plugins:\n  compute:\n    approved: [duckdb]\n", encoding="utf-8")
    result = compile_platform(tree, engines)
    assert statuses(result) == {"products/a/p1": COMPILED, "products/a/p2": FAILED, "products/b/p3": COMPILED}
    error = next(p.error for p in result.products if p.error is not None)
    assert (
        "selects compute 'duckdb-large', which is not in the effective approved list [duckdb]"
        in error.render()
    )
    assert len(result.manifests.governed) == 2  # domains a and b, each governed once


def test_cache_pointing_at_unusable_paths_is_stale_not_a_crash(tree: Path, engines: EngineRegistry) -> None:
    compile_platform(tree, engines)
    data = json.loads(cache_path(tree).read_text())
    entry = data["products"]["products/a/p1"]
    entry["chain"][-1][0] = "bad\u0000path.yaml"  # a NUL: os.path.realpath raises ValueError
    entry["folders"] = ["models/\u0000x/"]
    cache_path(tree).write_text(json.dumps(data))
    result = compile_platform(tree, engines)
    assert statuses(result) == {
        "products/a/p1": COMPILED,
        "products/a/p2": UNCHANGED,
        "products/b/p3": UNCHANGED,
    }
