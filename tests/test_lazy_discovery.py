"""Engines load when first needed (floe/plugins.py): a compile imports the engines its product
names and no other, and what one engine's lookup answers is what loading every plugin answers.
Plugins here are real distributions (dist-info folders) on ``sys.path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe.plugins import EngineRegistry

ROOT = Path(__file__).resolve().parents[1]
ENGINE = "from tests.support.engines import hookimpl_engine\nplugin = hookimpl_engine({name!r})\n"


def distribution(site: Path, dist: str, module: str, points: str, engine: str) -> None:
    (site / f"{module}.py").write_text(ENGINE.format(name=engine), encoding="utf-8")
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(points, encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("acme_")]:
        del sys.modules[name]


def test_one_lookup_answers_what_loading_every_plugin_answers(site: Path) -> None:
    distribution(
        site, "acme_a", "acme_a", "[floe]\nacme_x = acme_a:plugin\nacme_named = acme_a:plugin\n", "acme_x"
    )
    distribution(site, "acme_b", "acme_b", "[floe]\nacme_x = acme_b:plugin\n", "acme_x")
    distribution(site, "acme_c", "acme_c", "[floe]\nacme_c = acme_c:plugin\n", "acme_other")
    lazy = EngineRegistry.discover()
    engine = lazy.get("acme_x")
    assert engine is not None and engine.distribution == "acme-a"
    assert "acme_c" not in sys.modules  # no other plugin was imported
    assert lazy.get("acme_other") is None  # provided only under another entry-point name: refused
    eager = EngineRegistry.discover()
    assert eager.engines["acme_x"].distribution == "acme-a" and "acme_other" not in eager.names()
    assert sorted(eager.names()) == sorted(lazy.names())
    assert engine.get_required_dbt_packages() == ["dbt-acme_x>=1.0,<2.0"]  # still its own plugin's answer
    problems = {(p.plugin, p.distribution): p.message for p in eager.problems if p.plugin.startswith("acme_")}
    assert problems == {
        (p.plugin, p.distribution): p.message for p in lazy.problems if p.plugin.startswith("acme_")
    }
    assert "already registered as 'acme_x' (from acme-a)" in problems[("acme_x", "acme-b")]
    assert "the entry point 'acme_named' provides engine 'acme_x'" in problems[("acme_named", "acme-a")]
    assert "the entry point 'acme_c' provides engine 'acme_other'" in problems[("acme_c", "acme-c")]


def test_a_broken_plugin_is_reported_by_the_lookup_that_needs_it(site: Path) -> None:
    (site / "acme_broken.py").write_text("raise ImportError('missing driver')\n")
    info = site / "acme_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[floe]\nacme_broken = acme_broken:plugin\n")
    registry = EngineRegistry.discover()
    assert registry.get("acme_broken") is None
    assert [p.message for p in registry.problems_of("acme_broken")] == [
        "cannot be imported: ImportError: missing driver"
    ]


def test_a_compile_imports_only_the_engines_its_product_names(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_loud.py").write_text("raise ImportError('imported although no compute names it')\n")
    info = site / "acme_loud-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-loud\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[floe]\nacme_loud = acme_loud:plugin\n")
    platform = tmp_path / "enterprise.yaml"
    platform.write_text(
        textwrap.dedent("""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {name: acme}
        plugins:
          compute:
            approved: [duckdb]
            default: duckdb
        """)
    )
    product = tmp_path / "product"
    (product / "models" / "orders").mkdir(parents=True)
    (product / "floe.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: orders}
        platform: ../enterprise.yaml
        transforms:
          - type: dbt
            path: models/orders/
        """)
    )
    probe = (
        "import json, runpy, sys\n"
        "sys.argv = ['floe', 'compile', sys.argv[1]]\n"
        "from floe.cli import main\n"
        "status = main()\n"
        "print(json.dumps([status, sorted(m for m in sys.modules if m.startswith(('floe.engines.', 'acme_', "
        "'floe_engine_')))]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(product)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status, loaded = json.loads(done.stdout.splitlines()[-1])
    engines = sorted(
        {m.split(".")[2] for m in loaded if m.startswith("floe.engines.")}
        | {m for m in loaded if not m.startswith("floe.")}
    )
    assert status == 0 and engines == ["duckdb"], loaded  # DuckDB's package, and no other engine's module
    engines = subprocess.run(
        [sys.executable, "-m", "floe", "engines"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "plugin 'acme_loud' (from acme-loud): cannot be imported: ImportError" in engines.stderr


def test_a_registry_built_from_engines_holds_exactly_them() -> None:
    from tests.support.engines import hookimpl_engine

    engine = EngineRegistry.discover(extra=[("acme_made", hookimpl_engine("acme_made"))]).engines["acme_made"]
    registry = EngineRegistry({"acme_made": engine}, [], ["duckdb"])
    assert registry.names() == ["acme_made"] and registry.get("acme_made") is engine
    assert registry.get("duckdb") is None and registry.problems == [] and registry.disabled == ["duckdb"]
