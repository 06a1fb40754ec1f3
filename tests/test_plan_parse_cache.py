"""The plan's parse is reused when nothing dbt reads changed, and redone when anything did.

Each test plans a copy of the shop example with the real CLI. Whether dbt ran is read from the
plan project's ``parse.log``, which each ``dbt parse`` rewrites: a reused parse leaves it as it
was. The inputs' clocks are moved back (``os.utime``) instead of waiting for them to settle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def plan(root: Path, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "floe", "plan", str(root), "--env", "dev", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return result


def settle(root: Path) -> None:
    """Date every file of the product a minute back, as if written long before this plan."""
    past = time.time() - 60
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, (past, past))


def parse_log(root: Path) -> int:
    return (root / "target" / "floe" / "plan" / "parse.log").stat().st_mtime_ns


def nodes(result: dict) -> dict[str, list[str]]:  # type: ignore[type-arg]
    return {
        t["name"]: sorted(n["name"] if isinstance(n, dict) else n for n in t["nodes"])
        for t in result["transforms"]
    }


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    for name in ("shop", "platform"):
        shutil.copytree(ROOT / "examples" / name, tmp_path / name)
    root = tmp_path / "shop"
    settle(tmp_path)
    first = plan(root)
    settle(tmp_path)
    second = plan(root)  # the first parse's inputs had not settled when it ran: parsed again, kept
    assert nodes(second) == nodes(first)
    return root


def test_nothing_changed_reuses_the_parse_and_the_same_plan(shop: Path) -> None:
    before = parse_log(shop)
    again = plan(shop)
    assert parse_log(shop) == before, "dbt parsed again although nothing changed"
    assert (shop / "target" / "floe" / "plan" / "target" / "floe_plan_parse.json").stat().st_mode & 0o077 == 0
    assert again["transforms"] and all(t["nodes"] for t in again["transforms"])


def test_a_new_model_is_seen(shop: Path) -> None:
    before = parse_log(shop)
    folder = next(p for p in (shop / "models").iterdir() if p.is_dir())
    (folder / "brand_new_model.sql").write_text("select 1 as id\n")
    after = plan(shop)
    assert parse_log(shop) != before
    assert any("brand_new_model" in str(t["nodes"]) for t in after["transforms"]), after["transforms"]


def test_an_edited_model_and_a_changed_variable_are_seen(shop: Path) -> None:
    model = next((shop / "models").rglob("*.sql"))
    before = parse_log(shop)
    model.write_text(model.read_text() + "\n-- edited\n")
    plan(shop)
    assert parse_log(shop) != before, "an edited model did not make dbt parse again"
    settle(shop.parent)
    plan(shop)
    kept = parse_log(shop)
    plan(shop, {"FLOE_TEST_SOME_VARIABLE": "x"})  # env_var() may read any variable
    assert parse_log(shop) != kept, "a changed environment did not make dbt parse again"


def test_reuse_can_be_turned_off_and_a_corrupt_record_is_ignored(shop: Path) -> None:
    before = parse_log(shop)
    plan(shop, {"FLOE_NO_PARSE_CACHE": "1"})
    assert parse_log(shop) != before
    record = shop / "target" / "floe" / "plan" / "target" / "floe_plan_parse.json"
    record.write_text("{not json")
    settle(shop.parent)
    kept = parse_log(shop)
    result = plan(shop)
    assert parse_log(shop) != kept and all(t["nodes"] for t in result["transforms"])
