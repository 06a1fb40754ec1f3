"""floe as a library: the compile a Python user calls, and the typed answers it gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import floe
from floe.model import SecretReference

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "platform", tmp_path / "platform")
    shutil.copytree(EXAMPLES / "shop", tmp_path / "shop", ignore=shutil.ignore_patterns("target", ".floe"))
    return tmp_path / "shop"


def test_compile_accepts_any_path_like(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(shop.parent)
    for path in ("shop", "shop/floe.yaml", shop, str(shop)):
        compiled = floe.compile(path)
        assert compiled.name == "shop"
        assert [level.file for level in compiled.chain][-1] == shop / "floe.yaml"  # absolute, however given


def test_compiled_answers_what_users_ask_with_types(shop: Path) -> None:
    compiled = floe.compile(shop)
    assert isinstance(compiled, floe.Compiled) and "Compiled" in floe.__all__
    assert compiled.name == "shop"
    assert [(level.name, level.kind, level.scope) for level in compiled.chain] == [
        ("acme", "Manifest", "enterprise"),
        ("sales", "Manifest", "domain"),
        ("shop", "DataProduct", None),
    ]
    assert [level.file for level in compiled.chain] == [
        shop.parent / "platform/enterprise.yaml",
        shop.parent / "platform/domains/sales.yaml",
        shop / "floe.yaml",
    ]
    assert all(isinstance(level, floe.ChainLevel) for level in compiled.chain)
    assert [(t.name, t.compute, t.engine) for t in compiled.transforms] == [
        ("staging", "duckdb-large", "duckdb"),
        ("marts", "duckdb", "duckdb"),
    ]
    assert compiled.transform("marts").compute == compiled.default == "duckdb"
    assert compiled.approved == ("duckdb", "duckdb-large") and compiled.environments == ("dev", "prod")
    prod = compiled.settings("prod")
    assert (
        prod["duckdb"].config["schema"] == "analytics"
        and "schema" not in compiled.settings("dev")["duckdb"].config
    )
    assert prod["duckdb-large"].config["threads"] == 6  # the sales domain's refinement of the enterprise's 8
    with pytest.raises(KeyError, match="unknown environment 'production'; known: dev, prod"):
        compiled.settings("production")
    with pytest.raises(KeyError, match="no transform 'nope'"):
        compiled.transform("nope")


def test_secrets_in_settings_are_references(tmp_path: Path, shop: Path) -> None:
    enterprise = shop.parent / "platform/enterprise.yaml"
    enterprise.write_text(
        enterprise.read_text().replace(
            "duckdb: { schema: analytics }",
            "duckdb: { schema: analytics, path: 'md:shop', motherduck_token: {secret_ref: MD_TOKEN} }",
        )
    )
    token = floe.compile(shop).settings("prod")["duckdb"].config["motherduck_token"]
    assert token == SecretReference("MD_TOKEN")
