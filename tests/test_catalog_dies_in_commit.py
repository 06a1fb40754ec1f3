"""The catalog dies while it handles a commit of a real ``floe run``: embedded, and SeaweedFS.

A chain of three transforms on two DuckDB computes (``one`` → ``two`` → ``three``) builds one table
each; a first run builds them (round 1), a second run replaces their rows (round 2: one
``DELETE`` + ``INSERT`` commit per table) and the catalog dies inside one of the commits of ``one``
or ``two``, chosen at random (seeded: ``FLOE_FAULT_SEED``), so a later transform always needs the
dead catalog too:

- **embedded**: the test watches the tables' metadata folders of the embedded catalog's warehouse
  and SIGKILLs the catalog's process a random 0–5 ms after the commit's new metadata file appears:
  the process dies while it writes the file, between the file and the SQLite swap, or just after;
- **SeaweedFS** (:mod:`tests.test_rest_catalog_dies_in_commit`, which shares this module's
  product and helpers): ``weed`` killed at a commit ``POST``, before it lands or after it landed
  and before DuckDB hears the answer.

Either way the run fails naming the compute, the transform and the catalog; every table is whole
at its round-1 or its round-2 version (pyiceberg loads and scans it; its snapshot id says which);
once the catalog is back on the same data, the next run succeeds with nothing cleaned up.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import fault_random, fault_rounds
from tests.support.seaweed import Seaweed
from tests.test_run import enterprise, iceberg, write
from tests.test_run_robustness import CATALOG_LINE, wait_for, workers

NAMESPACE = "commits_dev"
TABLES = ("one", "two", "three")
SECRET_ENV = "FLOE_TEST_LAKE_SECRET"
COMMIT = re.compile(r"(/namespaces/[^/]+/tables/[^/?]+|/transactions/commit)$")
"""An Iceberg REST commit: ``POST …/namespaces/{ns}/tables/{table}`` or ``…/transactions/commit``."""

TRANSFORMS = """\
  - {type: dbt, name: one, path: models/one/, compute: duckdb-b}
  - {type: dbt, name: two, path: models/two/, compute: duckdb}
  - {type: dbt, name: three, path: models/three/, compute: duckdb-b}
"""
MODELS = {
    "models/one/one.sql": "select {{ var('round') }} as round, 1 as step\n",
    "models/two/two.sql": "select round, step + 1 as step from {{ ref('one') }}\n",
    "models/three/three.sql": "select round, step + 1 as step from {{ ref('two') }}\n",
}


def write_product(root: Path, platform: str) -> Path:
    write(
        root,
        {
            "platform.yaml": platform,
            "floe.yaml": "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: commits}\n"
            f"platform: platform.yaml\ntransforms:\n{TRANSFORMS}",
            **MODELS,
        },
    )
    set_round(root, 1)
    return root


def set_round(root: Path, round_: int) -> None:
    (root / "dbt_project.yml").write_text(
        f"name: commits\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\nvars: {{round: {round_}}}\n"
        "models:\n  commits:\n    +materialized: table\n"
    )


def expected(round_: int) -> dict[str, list[dict[str, int]]]:
    return {name: [{"round": round_, "step": step}] for step, name in enumerate(TABLES, 1)}


def start(root: Path) -> tuple[subprocess.Popen[str], Path]:
    output = root.parent / "run.out"
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--no-wait"],
            cwd=root.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return proc, output


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


State = dict[str, tuple[int | None, list[dict[str, Any]]]]
"""Each table's current snapshot id and rows."""


def state_of(catalog: Any) -> State:
    """Every table of the namespace loaded and scanned whole: a half-committed one fails here."""
    found: State = {}
    for _, name in catalog.list_tables(NAMESPACE):
        table = catalog.load_table((NAMESPACE, name))
        snapshot = table.current_snapshot()
        found[name] = (snapshot.snapshot_id if snapshot else None, table.scan().to_arrow().to_pylist())
    return found


def settled_state(server: Seaweed, timeout: float = 60.0) -> State:
    """:func:`state_of` SeaweedFS restarted: its volumes serve their files a moment after its
    catalog answers (``GetObject`` fails with ``INTERNAL_FAILURE`` until then), so a read is
    retried for ``timeout`` seconds; a table still unreadable then is broken."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return state_of(lake(server))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def assert_old_or_new(before: State, after: State) -> None:
    """Each table at its round-1 snapshot and rows, or at a newer snapshot with round 2's rows."""
    assert sorted(after) == sorted(TABLES), after
    old, new = expected(1), expected(2)
    for name, (snapshot, data) in after.items():
        if snapshot == before[name][0]:
            assert data == old[name], (name, after)
        else:
            assert data == new[name], (name, before, after)


def assert_failed_on_catalog(text: str, cause: str) -> None:
    """A transform failed naming its compute, itself and the catalog's end; the run says so."""
    failed = re.findall(r"\[(one|two|three)\] FAILED on (duckdb-b|duckdb)", text)
    assert failed, text
    assert cause in text, text
    assert "floe run FAILED" in text and "Traceback" not in text, text


# -- the embedded catalog ----------------------------------------------------------------------------


def metadata_files(root: Path) -> dict[str, set[str]]:
    warehouse = root / ".floe/iceberg/floe/warehouse"
    return {
        folder.parent.name: {p.name for p in folder.glob("*.metadata.json")}
        for folder in warehouse.glob("*/*/metadata")
    }


def kill_in_commit(root: Path, pid: int, table: str, delay: float, known: set[str]) -> threading.Thread:
    """SIGKILL ``pid`` ``delay`` seconds after a new metadata file of ``table`` appears."""
    folder = next((root / ".floe/iceberg/floe/warehouse").glob(f"*/{table}/metadata"))

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(name.endswith(".metadata.json") and name not in known for name in os.listdir(folder)):
                time.sleep(delay)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.0005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_embedded_catalog_killed_inside_a_commit(tmp_path: Path) -> None:
    rng = fault_random("embedded catalog killed in a commit")
    for round_ in range(fault_rounds()):
        root = write_product(tmp_path / f"round{round_}" / "commits", enterprise(False))
        first = run(root)
        assert first.returncode == 0, first.stdout + first.stderr
        before = state_of(iceberg(root))
        known = metadata_files(root)

        table, delay = rng.choice(TABLES[:2]), rng.uniform(0.0, 0.005)
        print(f"round {round_}: killing the catalog {delay * 1000:.1f} ms into the commit of {table!r}")
        set_round(root, 2)
        (workers(root) / ".catalog.log").unlink()
        proc, output = start(root)
        try:
            found = wait_for(workers(root) / ".catalog.log", CATALOG_LINE.pattern, proc)
            watcher = kill_in_commit(root, int(found[2]), table, delay, known[table])
            assert proc.wait(timeout=240) == 1, output.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        watcher.join(5)
        text = output.read_text()
        assert_failed_on_catalog(
            text, f"the embedded Iceberg catalog stopped during the run: its process (pid {found[2]}) ended"
        )
        after = state_of(iceberg(root))
        assert_old_or_new(before, after)
        print(
            f"round {round_}: {table!r} {'landed' if after[table][0] != before[table][0] else 'did not land'}"
        )

        again = run(root)
        assert again.returncode == 0, again.stdout + again.stderr
        assert {name: data for name, (_, data) in state_of(iceberg(root)).items()} == expected(2)


# -- SeaweedFS: the helpers of tests.test_rest_catalog_dies_in_commit and tests.test_s3_faults -------


@pytest.fixture
def client_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)  # only vended credentials reach S3
    secret = secrets.token_urlsafe(18)
    monkeypatch.setenv(SECRET_ENV, secret)
    yield secret


def rest_platform(uri: str, server: Seaweed) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {{name: acme}}
        catalog:
          type: rest
          name: lake
          uri: {uri}
          warehouse: {server.table_bucket}
          client_id: {server.client_id}
          client_secret: {{secret_ref: {SECRET_ENV}}}
          access_delegation: vended-credentials
        plugins:
          compute:
            approved:
              - name: duckdb
                config: {{threads: 2, extensions: [iceberg, httpfs]}}
              - name: duckdb-b
                engine: duckdb
                config: {{threads: 2}}
            default: duckdb
        environments:
          - name: dev
        """
    )


def lake(server: Seaweed) -> Any:
    from pyiceberg.catalog import rest

    from floe.catalog.vending import pyiceberg_rest_properties
    from floe.model import CatalogConfig, SecretReference

    config = CatalogConfig(
        type="rest",
        name="lake",
        uri=server.iceberg_uri,
        warehouse=server.table_bucket,
        client_id=server.client_id,
        client_secret=SecretReference(SECRET_ENV),
        access_delegation="vended-credentials",
    )
    return rest.RestCatalog("lake", **pyiceberg_rest_properties(config, os.environ))
