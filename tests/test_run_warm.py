"""``floe run --keep-warm``: the warm host (:mod:`floe.execution.warm_host`) keeps the catalog and each
compute's dbt worker up between runs, and the next run hands its work to them.

Real processes throughout: the host, its fork server, its catalog and its workers are started as
``floe run --keep-warm`` starts them; the tables are read back with pyiceberg from the catalog's
own files. Every change a developer makes between runs (a model, a macro, a seed, the product
manifest, a setting the profile carries, an environment variable) is made to two copies of one
product, one run warm and one cold, and their tables must be equal. Spark is slow to start: its
tests share one warm host.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floe.execution import warm
from floe.execution.progress import Progress
from floe.execution.runner import RunOptions, run
from tests.test_run import product, rows

WARM_LINE = re.compile(r"compute '([^']+)': warm worker \(pid (\d+), (kept|started)")
TRANSFORMS = """
    - {type: dbt, name: base, path: models/base/, compute: duckdb}
    - {type: dbt, name: marts, path: models/marts/, compute: duckdb-b}
"""
FILES = {
    "seeds/people.csv": "id,name,score\n1,ada,10\n2,bob,7\n3,cy,1\n",
    "macros/scaled.sql": "{% macro scaled(x) %}({{ x }} * 2){% endmacro %}\n",
    "models/base/people_base.sql": "select id, name, {{ scaled('score') }} as scaled, "
    "'{{ env_var(\"FLOE_WARM_LABEL\", \"none\") }}' as label from {{ ref('people') }}\n",
    "models/marts/summary.sql": "select count(*) as n, sum(scaled) as total, "
    "current_setting('threads') as threads from {{ ref('people_base') }}\n",
}
TABLES = {"people": "id", "people_base": "id", "summary": "n"}


def run_once(root: Path, keep_warm: float | None) -> tuple[Any, str]:
    out = io.StringIO()
    report = run(root, RunOptions("dev", keep_warm=keep_warm), Progress(out))
    assert report.success, (out.getvalue(), [t.message for t in report.transforms])
    return report, out.getvalue()


def tables(root: Path, namespace: str) -> dict[str, list[dict[str, Any]]]:
    return {name: rows(root, namespace, name, order) for name, order in TABLES.items()}


def leased(output: str) -> dict[str, int]:
    """The warm worker each compute's work was handed to, as the run said."""
    return {m[1]: int(m[2]) for m in WARM_LINE.finditer(output)}


def host_pid(root: Path) -> int | None:
    host = warm.find(root.resolve())
    if host is None:
        return None
    try:
        return int(host.status()["pid"])
    finally:
        host.close()


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """One product twice: ``warm/`` runs with ``--keep-warm``, ``cold/`` without."""
    warm_root = product(tmp_path / "warm", "pair", TRANSFORMS, FILES)
    cold_root = product(tmp_path / "cold", "pair", TRANSFORMS, FILES)
    yield warm_root, cold_root
    warm.stop(warm_root.resolve())


def edit(roots: tuple[Path, ...], name: str, old: str, new: str) -> None:
    for root in roots:
        path = root / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new))


def test_a_second_run_uses_the_warm_workers_and_every_change_is_seen_as_by_a_cold_run(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_root, cold_root = pair
    monkeypatch.setenv("FLOE_WARM_LABEL", "first")
    _, first = run_once(warm_root, 120)
    started = leased(first)
    assert set(started) == {"duckdb", "duckdb-b"}
    _, second = run_once(warm_root, 120)
    assert leased(second) == started  # the same processes: dbt imported, the project parsed once before
    assert first.count("started now, kept warm") == 2 and second.count("kept warm from an earlier run") == 2
    run_once(cold_root, None)
    assert tables(warm_root, "pair_dev") == tables(cold_root, "pair_dev")
    assert tables(warm_root, "pair_dev")["people_base"][0] == {
        "id": 1,
        "name": "ada",
        "scaled": 20,
        "label": "first",
    }

    changes = [
        (
            "model",
            lambda: edit(
                pair, "models/base/people_base.sql", "ref('people') }}", "ref('people') }} where id < 3"
            ),
        ),
        ("macro", lambda: edit(pair, "macros/scaled.sql", "* 2", "* 3")),
        ("seed", lambda: edit(pair, "seeds/people.csv", "2,bob,7", "2,bob,70")),
        ("environment variable", lambda: monkeypatch.setenv("FLOE_WARM_LABEL", "second")),
        (
            "profile setting",
            lambda: edit(
                pair,
                "platform/enterprise.yaml",
                "config: { threads: 2 }",
                "config: { threads: 2, duckdb_threads: 1 }",
            ),
        ),
        ("product manifest", lambda: edit(pair, "floe.yaml", "compute: duckdb-b", "compute: duckdb")),
    ]
    previous = tables(warm_root, "pair_dev")
    for what, change in changes:
        change()
        _, output = run_once(warm_root, 120)
        assert leased(output), (what, output)  # still handed to warm workers
        run_once(cold_root, None)
        now = tables(warm_root, "pair_dev")
        assert now == tables(cold_root, "pair_dev"), what
        assert now != previous, f"the {what} change changed nothing: the test proves nothing"
        previous = now
    assert [(r["n"], r["total"]) for r in previous["summary"]] == [(2, 240)]


def test_the_idle_bound_ends_the_host_and_its_workers(tmp_path: Path) -> None:
    root = product(tmp_path / "idle", "idle", TRANSFORMS, FILES)
    _, output = run_once(root, 3)
    workers = leased(output)
    pid = host_pid(root)
    assert pid is not None and workers
    assert gone(pid, 30), "the host outlived its idle bound"
    assert all(gone(w, 10) for w in workers.values()), "a worker outlived its host"
    assert warm.find(root.resolve()) is None


def test_a_run_without_the_flag_stops_the_warm_host_and_runs_cold(tmp_path: Path) -> None:
    root = product(tmp_path / "stopper", "stopper", TRANSFORMS, FILES)
    _, output = run_once(root, 120)
    pid = host_pid(root)
    assert pid is not None
    _, cold = run_once(root, None)
    assert f"stopped the warm host (pid {pid})" in cold and not leased(cold)
    assert gone(pid, 5) and all(gone(w, 5) for w in leased(output).values())


def test_changed_code_replaces_the_warm_workers(pair: tuple[Path, Path]) -> None:
    """A warm worker runs the code it started with: once floe's files (or an installed package's
    folder) change, the next run gets new workers, as a cold run would run the new code."""
    warm_root, _ = pair
    _, first = run_once(warm_root, 120)
    import floe.execution.worker as worker_module

    source = Path(worker_module.__file__)
    os.utime(source)  # as an edit, or an upgrade, would
    _, second = run_once(warm_root, 120)
    assert set(leased(second).values()).isdisjoint(leased(first).values())
    assert (
        "what it was started from changed: its engine's setup, or the code it runs"
        in (warm_root / ".floe/warm/host.log").read_text()
    )


def test_a_project_dbt_cannot_parse_keeps_the_warm_workers(pair: tuple[Path, Path]) -> None:
    from floe.errors import FloeError

    warm_root, _ = pair
    _, first = run_once(warm_root, 120)
    model = warm_root / "models/base/people_base.sql"
    good = model.read_text()
    model.write_text(good.replace("{{ scaled('score') }}", "{{ scaled('score' }}"))  # a typo
    with pytest.raises(FloeError, match="dbt could not parse the project"):
        run(warm_root, RunOptions("dev", keep_warm=120), Progress(io.StringIO()))
    model.write_text(good)
    _, fixed = run_once(warm_root, 120)
    assert leased(fixed) == leased(first)


def test_a_killed_warm_worker_costs_one_cold_start_not_a_failed_run(pair: tuple[Path, Path]) -> None:
    warm_root, _ = pair
    _, first = run_once(warm_root, 120)
    before = leased(first)
    os.killpg(before["duckdb"], signal.SIGKILL)
    assert gone(before["duckdb"], 10)
    _, second = run_once(warm_root, 120)
    after = leased(second)
    assert after["duckdb"] != before["duckdb"] and after["duckdb-b"] == before["duckdb-b"]
    _, third = run_once(warm_root, 120)
    assert leased(third) == after  # and the replacement is kept warm in turn


def test_a_run_killed_while_it_builds_leaves_no_warm_worker_building(tmp_path: Path) -> None:
    """``kill -9`` of a ``--keep-warm`` run mid-build: the host stops the workers it leased (a
    build the dead run started must not go on), and the next run succeeds."""
    root = product(
        tmp_path / "killed",
        "killed",
        """
        - {type: dbt, name: slow, path: models/slow/, compute: duckdb}
    """,
        {
            "models/slow/counted.sql": "select count(*) as n from range({{ env_var('FLOE_TEST_ROWS', '10') }})\n"
        },
    )
    run_once(root, 120)  # the host, started from this session
    host = host_pid(root)
    output = tmp_path / "run.out"
    with open(output, "w") as out:  # a run that would count for minutes
        proc = subprocess.Popen(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--keep-warm"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FLOE_TEST_ROWS": str(10**12)},
        )
    try:
        deadline = time.monotonic() + 180
        while "[slow] started" not in output.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, output.read_text()
            time.sleep(0.1)
        worker = leased(output.read_text())["duckdb"]
        time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
    assert gone(worker, 30), "the dead run's build goes on in its warm worker"
    assert host_pid(root) == host  # the host serves on
    (root / "models/slow/counted.sql").write_text("select 42 as n\n")
    _, after = run_once(root, 120)
    assert leased(after)["duckdb"] != worker
    assert rows(root, "killed_dev", "counted", "n") == [{"n": 42}]
    warm.stop(root.resolve())


def test_a_killed_warm_host_costs_one_cold_start(pair: tuple[Path, Path]) -> None:
    warm_root, _ = pair
    _, first = run_once(warm_root, 120)
    pid = host_pid(warm_root)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert gone(pid, 10) and all(gone(w, 10) for w in leased(first).values())
    _, second = run_once(warm_root, 120)
    assert leased(second) and set(leased(second).values()).isdisjoint(leased(first).values())


def test_the_socket_folder_is_private_and_another_user_is_refused(pair: tuple[Path, Path]) -> None:
    warm_root, _ = pair
    run_once(warm_root, 120)
    path = warm.socket_path(warm_root.resolve())
    folder = os.lstat(path.parent)
    assert folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(path).st_mode) & 0o077 == 0
    nobody = pwd.getpwnam("nobody")
    assert connect_as(nobody.pw_uid, nobody.pw_gid, path) == "no access"  # the folder keeps them out
    # were the folder opened up, the host itself refuses them (it checks its peer's uid)
    os.chmod(path.parent, 0o711)
    os.chmod(path, 0o777)
    try:
        assert connect_as(nobody.pw_uid, nobody.pw_gid, path) == "refused"
    finally:
        os.chmod(path.parent, 0o700)
        os.chmod(path, 0o600)
    log = (warm_root / ".floe/warm/host.log").read_text()
    assert "refused a connection from another user" in log
    assert host_pid(warm_root) is not None  # and still serves its user


def connect_as(uid: int, gid: int, path: Path) -> str:
    """What a process of another user gets when it asks the warm host for its catalog's token."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        outcome = b"?"
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                try:
                    sock.connect(str(path))
                except PermissionError:
                    outcome = b"no access"
                else:
                    sock.settimeout(10)
                    try:
                        sock.send(b'{"op": "status"}')
                        outcome = b"answered" if sock.recv(1 << 16) else b"refused"
                    except (BrokenPipeError, ConnectionResetError):  # closed on it at once
                        outcome = b"refused"
        except OSError as exc:
            outcome = f"error {exc}".encode()
        finally:
            os.write(write, outcome)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        outcome = answer.read().decode()
    os.waitpid(child, 0)
    return outcome


def test_a_folder_another_user_could_enter_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    folder = tmp_path / f"floe-{os.getuid()}"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with pytest.raises(warm.WarmError, match="not a folder only this user may enter"):
        warm.socket_dir()
    os.chmod(folder, 0o700)
    assert warm.socket_dir() == folder


def declare_catalog_with_secret(root: Path, served: Any, variable: str) -> None:
    manifest = root / "platform" / "enterprise.yaml"
    manifest.write_text(
        manifest.read_text()
        + "catalog:\n  type: rest\n  name: lake\n"
        + f"  uri: {served.uri}\n  warehouse: {served.warehouse}\n  client_id: floe-runner\n"
        + f"  client_secret: {{secret_ref: {variable}}}\n  oauth2_server_uri: {served.uri}/v1/oauth/tokens\n"
    )


def test_no_secret_outlives_the_run_that_needed_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret the profile references (the declared catalog's client secret) reaches the warm
    workers with the run, and is in none of the host's processes' environments after it, nor in
    any file under the product."""
    from floe.catalog.rest_server import EmbeddedCatalog

    canary = "canary-warm-" + secrets.token_hex(8)
    monkeypatch.setenv("FLOE_TEST_WARM_SECRET", canary)
    monkeypatch.setenv("FLOE_TEST_WARM_API_KEY", canary + "-unreferenced")  # looks like one: kept out too
    with EmbeddedCatalog(tmp_path / "elsewhere", name="lake") as served:
        root = product(tmp_path / "secret", "secret", TRANSFORMS, FILES)
        declare_catalog_with_secret(root, served, "FLOE_TEST_WARM_SECRET")
        try:
            _, first = run_once(root, 120)
            _, second = run_once(root, 120)  # the workers got the secret again, from this run
            assert leased(second) == leased(first)
            assert [(r["n"], r["total"]) for r in rows_of(served, "secret_dev", "summary")] == [(3, 36)]
            pids = descendants(host_pid(root) or 0)
            assert set(leased(second).values()) < set(
                pids
            )  # the workers, the host, its fork server, their helpers
            for pid in pids:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert canary.encode() not in environ, pid
            written = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
            assert written and not [p for p in written if canary.encode() in p.read_bytes()]
        finally:
            warm.stop(root.resolve())


def rows_of(served: Any, namespace: str, table: str) -> list[dict[str, Any]]:
    from pyiceberg.catalog.rest import RestCatalog

    lake = RestCatalog("lake", uri=served.uri, warehouse=served.warehouse)
    return list(lake.load_table((namespace, table)).scan().to_arrow().to_pylist())


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (children of every thread)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


# -- Spark: one warm host for the module ------------------------------------------------------------

SPARK_TRANSFORMS = """
    - {type: dbt, name: staging, path: models/staging/, compute: spark}
    - {type: dbt, name: marts, path: models/marts/, compute: duckdb}
"""
SPARK_FILES = {
    "seeds/orders.csv": "id,amount\n1,10\n2,20\n3,30\n",
    "models/staging/stg_orders.sql": "select id, amount * 2 as doubled from {{ ref('orders') }}\n",
    "models/marts/total.sql": "select sum(doubled) as total from {{ ref('stg_orders') }}\n",
}


SPARK_CANARY = "canary-spark-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def spark_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    base = tmp_path_factory.mktemp("warm_spark")
    warm_root = product(base / "warm", "sparky", SPARK_TRANSFORMS, SPARK_FILES, spark=True)
    cold_root = product(base / "cold", "sparky", SPARK_TRANSFORMS, SPARK_FILES, spark=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "FLOE_TEST_SPARK_SECRET", SPARK_CANARY
        )  # named like a secret: no warm process starts with it
        _, first = run_once(warm_root, 300)
        yield warm_root, cold_root, first
    warm.stop(warm_root.resolve())


def test_spark_stays_warm_and_a_changed_model_is_seen_as_by_a_cold_run(
    spark_pair: tuple[Path, Path, str],
) -> None:
    warm_root, cold_root, first = spark_pair
    edit((warm_root, cold_root), "models/staging/stg_orders.sql", "amount * 2", "amount * 5")
    report, output = run_once(warm_root, 300)
    assert leased(output)["spark"] == leased(first)["spark"]  # the same SparkSession's process
    run_once(cold_root, None)
    for table, order in (("stg_orders", "id"), ("total", "total")):
        assert rows(warm_root, "sparky_dev", table, order) == rows(cold_root, "sparky_dev", table, order)
    assert rows(warm_root, "sparky_dev", "total", "total") == [{"total": 300}]
    spark = leased(output)["spark"]
    jvm = [
        int(c)
        for task in Path(f"/proc/{spark}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    assert jvm, "no Java process under the Spark worker"
    for pid in [spark, *jvm]:
        assert SPARK_CANARY.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), pid
    staging = report.get("staging")
    assert (
        staging.finished_at - staging.started_at < 30
    )  # no Java start in there (a sanity bound, not a benchmark)


def test_a_killed_spark_worker_costs_one_cold_start(spark_pair: tuple[Path, Path, str]) -> None:
    warm_root, _, _ = spark_pair
    _, before = run_once(warm_root, 300)
    pid = leased(before)["spark"]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the worker and its JVM
    assert gone(pid, 10)
    _, after = run_once(warm_root, 300)
    assert leased(after)["spark"] != pid and leased(after)["duckdb"] == leased(before)["duckdb"]
    assert rows(warm_root, "sparky_dev", "orders", "id")[0] == {"id": 1, "amount": 10}


def test_a_spark_compute_whose_session_would_hold_a_secret_is_not_kept_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Spark conf that references a secret is static for the session's life: such a compute runs
    cold (and says so), the others of the run stay warm, and the run succeeds."""
    canary = "canary-conf-" + secrets.token_hex(8)
    monkeypatch.setenv("FLOE_TEST_SPARK_CONF_SECRET", canary)
    root = product(tmp_path / "conf", "conf", SPARK_TRANSFORMS, SPARK_FILES, spark=True)
    manifest = root / "platform/enterprise.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "            spark.sql.shuffle.partitions: '1'\n",
            "            spark.sql.shuffle.partitions: '1'\n"
            "            spark.floe.test.secret: {secret_ref: FLOE_TEST_SPARK_CONF_SECRET}\n",
        )
    )
    assert "FLOE_TEST_SPARK_CONF_SECRET" in manifest.read_text()
    try:
        _, output = run_once(root, 120)
        assert (
            "compute 'spark' is not kept warm: its engine starts with secret(s) FLOE_TEST_SPARK_CONF_SECRET"
            in output
        )
        assert set(leased(output)) == {"duckdb"}
        assert rows(root, "conf_dev", "total", "total") == [{"total": 120}]
        for pid in descendants(host_pid(root) or 0):
            assert canary.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), pid
    finally:
        warm.stop(root.resolve())
