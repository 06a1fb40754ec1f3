"""``floe validate`` on a product approving every engine, each against a real or emulated peer.

The issue's "done when": the real CLI, in a subprocess, prints one row per approved compute; each
is either connected or failed within 10 s with an actionable message, and the checks run at once,
so the whole command takes little more than the slowest one.

The peers (one per engine, a hung one, a refused address) are in
:mod:`tests.support.all_engines`, which ``benchmarks/concurrency.py`` shares.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.all_engines import ENGINES, TRINO_CATALOG, Peers, running_peers, validate, write_product

pytestmark = [pytest.mark.req("REQ-014"), pytest.mark.req("REQ-020")]

BOUND = 10.5
"""Seconds a row may take: the 10 s deadline, and a little for the clock around it."""
TOTAL = 15.0
"""Seconds the whole command may take: start-up, compile, and the checks run concurrently."""


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    with running_peers(tmp_path_factory.mktemp("peers")) as started:
        yield started


def assert_actionable(row: Mapping[str, Any]) -> None:
    message = str(row["message"])
    assert message.strip(), f"{row['compute']}: an empty message is not actionable"
    assert "Traceback" not in message and 'File "' not in message, (
        f"{row['compute']}: a stack trace: {message}"
    )


def check_json(
    proc: subprocess.CompletedProcess[str], elapsed: float, names: list[str]
) -> dict[str, dict[str, Any]]:
    """The rows of ``validate --json``, checked against the contract every row must keep."""
    assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)
    assert document["environment"] == "dev"
    rows = {row["compute"]: row for row in document["computes"]}
    assert len(document["computes"]) == len(names) and sorted(rows) == sorted(names), proc.stdout
    report = "\n".join(
        f"{r['compute']}: {r['status']} {r['seconds']} s {r['message']}" for r in rows.values()
    )
    for row in rows.values():
        assert row["engine"] == row["compute"], report
        assert row["status"] in ("ok", "FAILED"), report
        assert float(row["seconds"]) <= BOUND, f"{row['compute']} took {row['seconds']} s\n{report}"
        assert_actionable(row)
    assert proc.returncode == (0 if all(r["status"] == "ok" for r in rows.values()) else 1), report
    assert elapsed <= TOTAL, f"validate took {elapsed:.1f} s: the checks must run concurrently\n{report}"
    return rows


def test_validate_reaches_every_engine_and_prints_the_table(peers: Peers, tmp_path: Path) -> None:
    product = write_product(tmp_path, peers.configs)

    proc, elapsed = validate(product, peers.environ, "--json")
    rows = check_json(proc, elapsed, list(ENGINES))
    failed = {name: row["message"] for name, row in rows.items() if row["status"] != "ok"}
    assert not failed, f"every engine has a live peer here, yet these failed: {failed}"

    table, elapsed = validate(product, peers.environ)
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["COMPUTE", "ENGINE", "STATUS", "SECONDS", "MESSAGE"]
    assert len(lines) == 1 + len(ENGINES), table.stdout
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(ENGINES)
    assert all(line.split()[2] == "ok" for line in lines[1:]), table.stdout
    assert elapsed <= TOTAL, f"validate took {elapsed:.1f} s\n{table.stdout}"


def test_a_hung_and_a_refused_compute_fail_in_time_and_the_rest_connect(
    peers: Peers,
    tmp_path: Path,
    silent_server: tuple[str, int],
    refused_address: tuple[str, int],
) -> None:
    host, port = silent_server
    configs = dict(peers.configs)
    configs["trino"] = {
        "host": host,
        "port": port,
        "user": "floe",
        "database": TRINO_CATALOG,
        "schema": "analytics",
    }
    host, port = refused_address
    configs["redshift"] = {**configs["redshift"], "host": host, "port": port}
    product = write_product(tmp_path, configs)

    proc, elapsed = validate(product, peers.environ, "--json")
    rows = check_json(proc, elapsed, list(ENGINES))
    assert proc.returncode == 1
    failed = {name for name, row in rows.items() if row["status"] == "FAILED"}
    assert failed == {"trino", "redshift"}, proc.stdout
    assert "refused" in rows["redshift"]["message"].lower(), rows["redshift"]["message"]
    hung = rows["trino"]["message"].lower()
    assert any(word in hung for word in ("no answer", "timed out", "time out", "within")), hung
