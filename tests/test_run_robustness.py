"""``floe run`` under faults and hostile neighbours: real runs, real DuckDB, the real embedded catalog.

A transform (``gated``) reads a CSV file from a small HTTP server of the test's (the *gate*) which
holds its answer until the test opens it, so a run waits inside a dbt build for as long as the
test needs, with nothing timed: the test probes the catalog, or kills a worker or the catalog's
process, at that moment, then opens the gate. ``after`` builds on ``gated`` on another compute.

- no local process reaches the embedded catalog without the run's token, and the token is
  written nowhere (canary search over every file under the product, the output, the report);
- ``.floe/`` and ``target/floe/`` are the user's alone;
- a worker killed with SIGKILL (as the out-of-memory killer does) fails its transform saying so,
  and the next run succeeds with no clean-up;
- the catalog's process killed mid-run: the run names the catalog as the cause; the next run
  succeeds;
- retention: a product run again and again keeps its snapshots and metadata files bounded.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from floe.execution.catalog_client import TOKEN_VARIABLE, served_token
from tests.support.joining_server import JoiningHTTPServer
from tests.test_run import floe, iceberg, product, rows

ROWS = 7
WORKER_LINE = re.compile(r"floe: worker (\d+) forked from fork server (\d+), dbt imported")
CATALOG_LINE = re.compile(r"floe: embedded catalog 'floe' serving at (\S+) \(pid (\d+)\)")


class Gate:
    """An HTTP server answering ``GET /gate.csv`` (a CSV of one column ``n``) once :meth:`open` is called."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.requests = 0
        body = f"n\n{ROWS}\n".encode()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, with_body: bool) -> None:
                gate.requests += 1
                gate.opened.wait(300)
                data, status = body, 200
                found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if found:
                    start = int(found[1])
                    end = int(found[2]) if found[2] else len(body) - 1
                    data, status = body[start : end + 1], 206
                self.send_response(status)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{len(body)}")
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._answer(False)

            def do_GET(self) -> None:
                self._answer(True)

        self.server = JoiningHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gate.csv"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.close_and_join()


@pytest.fixture
def gate() -> Iterator[Gate]:
    found = Gate()
    yield found
    found.close()


def write_product(root: Path) -> Path:
    return product(
        root,
        "faults",
        """
        - {type: dbt, name: gated, path: models/gated/, compute: duckdb-b}
        - {type: dbt, name: after, path: models/after/, compute: duckdb}
    """,
        {
            "models/gated/gated.sql": "select n from read_csv('{{ env_var('FLOE_TEST_GATE') }}', header=true)\n",
            "models/after/doubled.sql": "select n * 2 as n2 from {{ ref('gated') }}\n",
        },
    )


def start_run(root: Path, gate: Gate, *args: str) -> tuple[subprocess.Popen[str], Path]:
    output = root.parent / "run.out"
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", *args],
            cwd=root.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "FLOE_TEST_GATE": gate.url},
            start_new_session=True,
        )
    return proc, output


def wait_for(
    path: Path, pattern: str, proc: subprocess.Popen[str] | None = None, timeout: float = 180
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = (
            re.search(pattern, path.read_text(encoding="utf-8", errors="replace")) if path.exists() else None
        )
        if found:
            return found
        if proc is not None:
            assert proc.poll() is None, (
                path.read_text() if path.exists() else f"floe run exited: {proc.returncode}"
            )
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s")


def workers(root: Path) -> Path:
    return root / "target/floe/run/.workers"


def run_again(root: Path, gate: Gate) -> subprocess.CompletedProcess[str]:
    """The next ``floe run``, with the gate open: it must succeed as it is, nothing cleaned up."""
    gate.open()
    env = {**os.environ, "FLOE_TEST_GATE": gate.url}
    return subprocess.run(
        [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def assert_built(root: Path) -> None:
    assert rows(root, "faults_dev", "gated", "n") == [{"n": ROWS}]
    assert rows(root, "faults_dev", "doubled", "n2") == [{"n2": 2 * ROWS}]


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, str]:
    """Status and body of one HTTP request (an error status is an answer, not an exception)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- no one where they don't belong ----------------------------------------------------------------


def test_the_embedded_catalog_serves_only_the_runs_token_which_is_written_nowhere(
    tmp_path: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    import floe as api

    root = write_product(tmp_path / "faults")
    monkeypatch.setenv("FLOE_TEST_GATE", gate.url)
    progress = io.StringIO()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = api.run(root, env="dev", progress=progress)
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # the run is inside the build of `gated`, waiting for the gate: the catalog serves
        deadline = time.monotonic() + 180
        while gate.requests == 0 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert gate.requests, progress.getvalue()
        port = (root / ".floe/iceberg/port").read_text().strip()
        base = f"http://127.0.0.1:{port}/v1"
        token = served_token(f"http://127.0.0.1:{port}")
        assert token and len(token) >= 40, "the run serves its catalog with a token of its own"
        assert TOKEN_VARIABLE not in os.environ, "the token is in the run's workers' environment, not floe's"

        # without the token, or with another, nothing is served: not even the config, no write
        hostile = json.dumps({"namespace": ["intruder"], "properties": {}}).encode()
        for headers in (
            {},
            {"Authorization": "Bearer not-the-token"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": f"Bearer {token[:-1]}"},
        ):
            assert request(f"{base}/config", headers=headers)[0] == 401
            assert request(f"{base}/namespaces", headers=headers)[0] == 401
            status, text = request(
                f"{base}/namespaces", "POST", {**headers, "Content-Type": "application/json"}, hostile
            )
            assert status == 401 and "NotAuthorizedException" in text and token not in text, text
            assert request(f"{base}/namespaces/faults_dev/tables/gated", "DELETE", headers)[0] == 401
        wrong = f"grant_type=client_credentials&client_id=floe&client_secret={token[::-1]}".encode()
        assert (
            request(
                f"{base}/oauth/tokens", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, wrong
            )[0]
            == 401
        )

        # with it, served: as a bearer token, or bought with OAuth2 client credentials
        status, text = request(f"{base}/namespaces", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and ["faults_dev"] in json.loads(text)["namespaces"], text
        good = f"grant_type=client_credentials&client_id=floe&client_secret={token}".encode()
        status, text = request(
            f"{base}/oauth/tokens", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, good
        )
        assert status == 200 and json.loads(text)["access_token"] == token
        basic = base64.b64encode(f"floe:{token}".encode()).decode()
        status, _ = request(
            f"{base}/oauth/tokens",
            "POST",
            {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
            b"grant_type=client_credentials",
        )
        assert status == 200
    finally:
        gate.open()
        thread.join(300)
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert report.success, progress.getvalue()
    assert_built(root)
    assert ("intruder",) not in iceberg(root).list_namespaces()

    # the canary: the token is in no file under the product (.floe, target, dbt's logs), not in
    # the output, the report, or the profiles, which name the variable instead
    texts = {"output": progress.getvalue(), "report": json.dumps(report.to_json())}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    leaked = [where for where, text in texts.items() if token in text]
    assert leaked == [], leaked
    profiles = [p for p in (root / "target/floe/run").rglob("profiles.yml")]
    assert profiles and all(
        re.search(rf"env_var\('+{TOKEN_VARIABLE}'+\)", p.read_text()) for p in profiles
    ), profiles
    assert served_token(f"http://127.0.0.1:{port}") is None, "the token is forgotten when the run ends"


def test_floe_state_and_artifacts_are_private_to_the_user(tmp_path: Path, gate: Gate) -> None:
    root = write_product(tmp_path / "faults")
    done = run_again(root, gate)
    assert done.returncode == 0, done.stdout + done.stderr
    for top in (root / ".floe", root / "target/floe"):
        assert stat.S_IMODE(top.stat().st_mode) == 0o700, top
        readable = [
            str(p)
            for p in top.rglob("*")
            if not p.is_symlink() and p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077
        ]
        assert readable == [], readable
    # a folder another run left open is narrowed
    os.chmod(root / ".floe", 0o755)
    done = run_again(root, gate)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE((root / ".floe").stat().st_mode) == 0o700


# -- faults --------------------------------------------------------------------------------------


def test_a_worker_killed_by_sigkill_is_named_with_its_signal_and_the_next_run_succeeds(
    tmp_path: Path, gate: Gate
) -> None:
    root = write_product(tmp_path / "faults")
    proc, output = start_run(root, gate)
    wait_for(output, r"\[gated\] started on duckdb-b", proc)
    found = wait_for(workers(root) / "duckdb-b.log", WORKER_LINE.pattern, proc)
    deadline = time.monotonic() + 180
    while gate.requests == 0 and time.monotonic() < deadline:  # inside the build, reading the gate
        time.sleep(0.05)
    os.kill(int(found[1]), signal.SIGKILL)
    assert proc.wait(timeout=120) == 1, output.read_text()
    text = output.read_text()
    assert "[gated] FAILED on duckdb-b" in text, text
    assert (
        "the dbt process of compute 'duckdb-b' stopped unexpectedly while it built transform 'gated' "
        "(it was killed by signal SIGKILL (9); SIGKILL is what the kernel's out-of-memory killer sends"
    ) in text, text
    assert "resources.limits.memory" in text, text
    assert re.search(r"\[after\] (SKIPPED|skipped)", text), text
    assert "Traceback" not in text, text

    again = run_again(root, gate)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_built(root)


def test_the_catalog_process_killed_mid_run_is_named_and_the_next_run_succeeds(
    tmp_path: Path, gate: Gate
) -> None:
    root = write_product(tmp_path / "faults")
    proc, output = start_run(root, gate)
    wait_for(output, r"\[gated\] started on duckdb-b", proc)
    found = wait_for(workers(root) / ".catalog.log", CATALOG_LINE.pattern, proc)
    deadline = time.monotonic() + 180
    while gate.requests == 0 and time.monotonic() < deadline:  # inside the build, reading the gate
        time.sleep(0.05)
    catalog_pid = int(found[2])
    os.kill(catalog_pid, signal.SIGKILL)
    gate.open()  # the build goes on, and needs the catalog to commit its table
    assert proc.wait(timeout=180) == 1, output.read_text()
    text = output.read_text()
    assert "[gated] FAILED on duckdb-b" in text, text
    assert (
        f"the embedded Iceberg catalog stopped during the run: its process (pid {catalog_pid}) ended "
        "(killed by signal SIGKILL (9))"
    ) in text, text
    assert "Traceback" not in text, text
    from pyiceberg.exceptions import NoSuchTableError

    with pytest.raises(NoSuchTableError):  # nothing half-committed: the table was never committed
        iceberg(root).load_table(("faults_dev", "gated"))

    again = run_again(root, gate)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_built(root)


# -- retention -------------------------------------------------------------------------------------


def warehouse_files(root: Path) -> dict[str, int]:
    """Files in the embedded catalog's warehouse: metadata files, and all of them."""
    files = [p for p in (root / ".floe/iceberg/floe/warehouse").rglob("*") if p.is_file()]
    return {"metadata": sum(1 for p in files if p.name.endswith(".metadata.json")), "all": len(files)}


def soak(root: Path, keep: int, rounds: int) -> list[dict[str, int]]:
    """Run the product ``rounds`` times (``--keep-snapshots keep``); the warehouse's files after each."""
    counts = []
    for round_ in range(1, rounds + 1):
        (root / "dbt_project.yml").write_text(
            f"name: soak\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\nvars: {{round: {round_}}}\n"
            "models:\n  soak:\n    +materialized: table\n"
        )
        done = floe("run", str(root), "--env", "dev", "--keep-snapshots", str(keep), cwd=root.parent)
        assert done.returncode == 0, done.stdout + done.stderr
        counts.append(warehouse_files(root))
    return counts


SOAK_FILES = {
    "models/daily/events.sql": "{{ config(materialized='incremental') }}\nselect {{ var('round') }} as round\n",
    "models/daily/latest.sql": "select max(round) as round, count(*) as events from {{ ref('events') }}\n",
}


def test_repeated_runs_keep_snapshots_and_metadata_bounded(tmp_path: Path) -> None:
    """Each run appends to one Iceberg table (an incremental model) and replaces another's rows:
    without retention each run adds a snapshot and a metadata file to both, for ever."""
    keep, rounds = 1, 5  # maintained from the third run on (more than 2 * keep metadata files)
    kept = product(tmp_path / "kept", "soak", "- {type: dbt, name: daily, path: models/daily/}", SOAK_FILES)
    everything = product(
        tmp_path / "all", "soak", "- {type: dbt, name: daily, path: models/daily/}", SOAK_FILES
    )
    with_retention, without = soak(kept, keep, rounds), soak(everything, 0, rounds)
    for table in ("events", "latest"):
        snapshots = len(iceberg(kept).load_table(("soak_dev", table)).metadata.snapshots)
        assert snapshots <= 2 * keep + 1, (table, snapshots)
        assert len(iceberg(everything).load_table(("soak_dev", table)).metadata.snapshots) >= rounds, table
    # the metadata files stay bounded (at most 2 * keep + 1 per table), the warehouse is smaller
    assert max(c["metadata"] for c in with_retention) <= 2 * (2 * keep + 1), with_retention
    assert without[-1]["metadata"] >= 2 * rounds, without
    assert with_retention[-1]["all"] < without[-1]["all"], (with_retention, without)
    # the data is whole: every round's row, and the replaced table says so
    for root in (kept, everything):
        assert [r["round"] for r in rows(root, "soak_dev", "events", "round")] == list(range(1, rounds + 1))
        assert rows(root, "soak_dev", "latest", "round") == [{"round": rounds, "events": rounds}]
    print(
        f"warehouse files after {rounds} runs: {with_retention[-1]} with --keep-snapshots {keep}, "
        f"{without[-1]} without; per run with retention: {[c['all'] for c in with_retention]}"
    )


REBUILT_FILES = {
    "models/daily/rebuilt.sql": "select range + {{ var('round') }} as n from range(100)\n",
    "models/daily/reader.sql": "select count(*) as rows, min(n) as low from {{ ref('rebuilt') }}\n",
}


def test_a_table_rebuilt_by_delete_and_insert_is_compacted_so_its_files_stay_bounded(tmp_path: Path) -> None:
    """DuckDB rebuilds a table through Iceberg REST by DELETE + INSERT: each run adds a data file
    and a delete file that the current snapshot keeps listing, so expiring snapshots alone cannot
    bound the table. Retention compacts it (its rows rewritten, its delete files dropped), and the
    next run's DuckDB reads the compacted table."""
    keep, rounds = 1, 6
    root = product(tmp_path / "p", "soak", "- {type: dbt, name: daily, path: models/daily/}", REBUILT_FILES)
    outputs = []
    for round_ in range(1, rounds + 1):
        (root / "dbt_project.yml").write_text(
            f"name: soak\nversion: '1.0.0'\nconfig-version: 2\nprofile: unused\nvars: {{round: {round_}}}\n"
            "models:\n  soak:\n    +materialized: table\n"
        )
        done = floe("run", str(root), "--env", "dev", "--keep-snapshots", str(keep), cwd=root.parent)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout + done.stderr)
    table = iceberg(root).load_table(("soak_dev", "rebuilt"))
    live = table.inspect.files().to_pylist()
    deletes = [f for f in live if f["content"] != 0]
    # between two maintenances a table takes at most 2 * keep + 1 commits: its delete files stay few
    assert len(deletes) <= 2 * keep + 1, live
    on_disk = list((root / ".floe/iceberg/floe/warehouse/soak_dev/rebuilt/data").iterdir())
    assert len(on_disk) <= 4 * (2 * keep + 1), sorted(p.name for p in on_disk)
    # the rows are whole, and DuckDB read the compacted table in the runs after a compaction
    assert rows(root, "soak_dev", "rebuilt", "n") == [{"n": i + rounds} for i in range(100)]
    assert rows(root, "soak_dev", "reader", "rows") == [{"rows": 100, "low": rounds}]
    assert any("table(s) compacted" in text for text in outputs), outputs
