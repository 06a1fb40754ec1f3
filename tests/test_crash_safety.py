"""``kill -9`` at any moment of ``floe compile`` or ``floe run``: nothing half-written, nothing lost.

The real CLI runs in a subprocess, on a product that changed since its last good compile or run,
and is killed with SIGKILL. After each kill:

- ``floe compile`` is killed once at every step of writing its artifacts, deterministically (the
  process stops itself right after the step, see :mod:`tests.support.write_steps`, and is killed
  there): ``compiled.json`` and ``profiles.yml`` are each the previous complete version or the new
  one (byte for byte), and a new ``compiled.json`` implies a new ``profiles.yml`` (it is written
  last); the next ``floe compile`` succeeds and leaves no temporary file behind;
- ``floe run``: the previous artifacts still parse, the run lock is free, and the embedded Iceberg
  catalog, read with pyiceberg straight from its SQLite file, is consistent: every table loads, its
  metadata, manifest lists, data and delete files exist, and its rows are one version's complete
  result. The next ``floe run`` succeeds and builds the right rows.

A run is killed either as a failed node would kill it (the CLI and every process it started, at
one moment) or alone (its process group only, as the OOM killer would): then its dbt workers, in
sessions of their own, must notice and exit by themselves.

``floe run`` is killed at random moments spread over its lifetime (measured first), drawn from
``random.Random(seed)``; the seed is in every assertion message, and ``FLOE_CRASH_SEED=<seed>``
replays them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from floe.artifacts import TEMPORARY
from floe.execution.lock import RunLock
from tests.test_run import DUO_FILES, DUO_TRANSFORMS, iceberg, product

RUN_KILLS = 8
ORPHAN_GRACE_S = 5.0
"""How long the workers of a CLI killed alone may take to notice and exit."""


def seeded(request: pytest.FixtureRequest) -> tuple[random.Random, str]:
    seed = int(os.environ.get("FLOE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    return random.Random(seed), f"[{request.node.name}: FLOE_CRASH_SEED={seed}]"


def cli(*args: str, cwd: Path, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    """``floe ARGS`` in a session of its own, so that its process group is its alone."""
    return subprocess.Popen(
        [sys.executable, "-m", "floe", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stratified(rng: random.Random, count: int, start: float, end: float) -> list[float]:
    """``count`` random moments in ``[start, end)``, one in each of ``count`` equal slices."""
    return [start + (i + rng.random()) / count * (end - start) for i in range(count)]


# -- processes -------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, as /proc shows them now."""
    tree, found = _children(), [pid]
    for parent in found:
        found.extend(tree.get(parent, []))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_node(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every process it started, at one moment, as a failed node would.

    The tree is frozen first (SIGSTOP, until no new process appears), so that nothing forks or
    commits between the first kill and the last.
    """
    frozen: list[int] = []
    while new := [p for p in process_tree(pid) if p not in frozen]:
        for p in new:
            _signal(p, signal.SIGSTOP)
        frozen.extend(new)
    for p in frozen:
        _signal(p, signal.SIGKILL)
    return frozen


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def kill_alone(pid: int) -> list[int]:
    """SIGKILL the process group of ``pid`` only; return the processes left outside it."""
    others = [p for p in process_tree(pid) if p != pid and _group(p) not in (pid, None)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return others


@contextlib.contextmanager
def reaped(started: list[subprocess.Popen[str]]) -> Iterator[None]:
    """Whatever happens, no process a test started outlives it."""
    try:
        yield
    finally:
        for proc in started:
            if proc.poll() is None:
                kill_node(proc.pid)
                proc.wait()


def wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout: float) -> bool:
    """Wait until ``path`` contains ``text`` (True) or the process ended or time ran out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in path.read_text(encoding="utf-8", errors="replace"):
            return True
        time.sleep(0.02)
    return False


# -- write_atomic ----------------------------------------------------------------------------------

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"half a fi")
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(120)
"""


def test_a_write_removes_what_killed_writers_left_and_nothing_a_live_writer_holds(tmp_path: Path) -> None:
    """Writers killed mid-write (SIGKILL) leave their temporary files; the next write of the
    same file removes them, not those of a writer still writing, nor other files."""
    from floe.artifacts import write_atomic

    target = tmp_path / "compiled.json"
    target.write_text("{}\n")
    target.chmod(0o644)
    dead, live = tmp_path / ".compiled.json.0123456789ab.tmp", tmp_path / ".compiled.json.ba9876543210.tmp"
    other = tmp_path / ".profiles.yml.0123456789ab.tmp"  # another file's: its own next write removes it
    writers = []
    with reaped(writers):
        for path in (dead, live, other):
            writers.append(
                subprocess.Popen(
                    [sys.executable, "-c", HOLD, str(path)],
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
            assert writers[-1].stdout is not None and writers[-1].stdout.readline() == "holding\n"
        for writer in (writers[0], writers[2]):
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait()
        write_atomic(target, '{"new": true}\n')
        assert target.read_text() == '{"new": true}\n'
        assert target.stat().st_mode & 0o777 == 0o644  # a replaced file keeps its mode
        assert not dead.exists() and live.exists() and other.exists()
        write_atomic(tmp_path / "profiles.yml", "a: 1\n")
        assert not other.exists() and (tmp_path / "profiles.yml").stat().st_mode & 0o777 == 0o600
    write_atomic(target, "{}\n")  # its writer is gone now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compiled.json", "profiles.yml"]


# -- floe compile ----------------------------------------------------------------------------------

COMPILE_TRANSFORMS = """
    - {type: dbt, name: base, path: models/base/, compute: duckdb}
    - {type: dbt, name: left, path: models/left/, compute: duckdb-b}
"""


def artifacts(root: Path) -> dict[str, bytes]:
    out = root / "target" / "floe"
    return {name: (out / name).read_bytes() for name in ("compiled.json", "profiles.yml")}


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


STEPS = Path(__file__).parent / "support" / "write_steps.py"


def stepped_compile(cwd: Path, folder: Path, pause_at: int) -> tuple[subprocess.Popen[str], list[str], bool]:
    """``floe compile shop`` with every write step below ``folder`` reported, stopped at step
    ``pause_at`` (0: never). Returns the process, the steps it reported, and whether it stopped
    at ``pause_at`` (else it finished)."""
    read, write = os.pipe()
    env = {
        **os.environ,
        "FLOE_STEPS_FOLDER": str(folder),
        "FLOE_STEPS_FD": str(write),
        "FLOE_STEPS_PAUSE_AT": str(pause_at),
    }
    proc = subprocess.Popen(
        [sys.executable, str(STEPS), "compile", "shop"],
        cwd=cwd,
        env=env,
        pass_fds=(write,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    os.close(write)
    steps: list[str] = []
    with os.fdopen(read, encoding="utf-8") as report:
        for line in report:
            steps.append(re.sub(r"\.[0-9a-f]{12}\.tmp", ".<random>.tmp", line.rstrip("\n")))
            if pause_at and line.startswith(f"{pause_at} "):
                deadline = time.monotonic() + 30
                while not stopped_process(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.005)
                return proc, steps, stopped_process(proc.pid)
    proc.wait(timeout=60)
    return proc, steps, False


def stopped_process(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def test_kill_9_at_every_write_step_of_compile_leaves_the_previous_or_the_new_artifacts(
    tmp_path: Path,
) -> None:
    """``floe compile`` is killed once at each step of writing its artifacts (every file created,
    written, flushed, synced, renamed or closed in ``target/floe``, observed at the ``os`` layer by
    :mod:`tests.support.write_steps`), deterministically: an in-place write or a reversed order
    fails here every time."""
    root = product(tmp_path / "shop", "shop", COMPILE_TRANSFORMS, DUO_FILES)
    manifest = root / "platform" / "enterprise.yaml"
    one = manifest.read_text(encoding="utf-8")
    # the other version changes both profiles and compiled.json: threads, and one more environment
    two = one.replace("threads: 2", "threads: 3").replace(
        "  - name: prod\n", "  - name: prod\n  - name: qa\n"
    )
    assert two != one
    texts = {"one": one, "two": two}
    out = root / "target" / "floe"
    good: dict[str, dict[str, bytes]] = {}
    for version in ("two", "one"):
        manifest.write_text(texts[version], encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "floe", "compile", "shop"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        good[version] = artifacts(root)
    assert good["one"]["compiled.json"] != good["two"]["compiled.json"]
    assert good["one"]["profiles.yml"] != good["two"]["profiles.yml"]

    manifest.write_text(two, encoding="utf-8")  # a compile that replaces both files, unpaused: its steps
    proc, steps, _ = stepped_compile(tmp_path, out, 0)
    assert proc.returncode == 0 and steps[-1:] == ["done"], steps
    steps = steps[:-1]
    for name in ("profiles.yml", "compiled.json"):  # the steps see both files being written
        assert any(s.split()[1] in ("write", "flush") and name in s for s in steps), steps
    assert artifacts(root) == good["two"]

    previous, landed = "two", 0
    outcomes: dict[str, int] = {}
    for number, expected in enumerate(steps, start=1):
        new = "two" if previous == "one" else "one"
        manifest.write_text(texts[new], encoding="utf-8")
        proc, seen, at_step = stepped_compile(tmp_path, out, number)
        with reaped([proc]):
            where = f"kill at step {number} ({expected.split(' ', 1)[1]}), compiling {previous} → {new}"
            assert at_step and seen[-1] == expected, f"{where}: the compile did not stop there: {seen}"
            kill_node(proc.pid)
            proc.communicate()
        landed += 1
        files = artifacts(root)
        versions = {}
        for name, data in files.items():
            matches = [v for v in (previous, new) if good[v][name] == data]
            assert matches, f"{where}: {name} is neither the previous nor the new complete version:\n{data!r}"
            versions[name] = matches[0]
        json.loads(files["compiled.json"])
        assert isinstance(yaml.safe_load(files["profiles.yml"]), dict), where
        assert versions["compiled.json"] == previous or versions["profiles.yml"] == new, (
            f"{where}: compiled.json is new but profiles.yml is not: compiled.json must be written last"
        )
        outcome = {
            (previous, previous): "both previous",
            (new, new): "both new",
            (previous, new): "between the renames (new profiles.yml, previous compiled.json)",
        }[(versions["compiled.json"], versions["profiles.yml"])]
        if temporary_files(out):  # a writer killed mid-write: the next write removes its file
            outcome += ", a temporary file left"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

        done = subprocess.run(
            [sys.executable, "-m", "floe", "compile", "shop"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{where}: the next compile failed:\n{done.stdout}{done.stderr}"
        assert artifacts(root) == good[new], where
        assert temporary_files(out) == [], f"{where}: temporary files left behind"
        previous = new
    print(f"\n{len(steps)} write steps, {landed} kills, each at its step: {outcomes}")
    # every kill landed mid-write, at its own step; among them, kills between the two renames and
    # kills while a temporary file was being written
    assert landed == len(steps)
    assert any(o.startswith("between the renames") for o in outcomes), outcomes
    assert any(o.endswith("a temporary file left") for o in outcomes), outcomes


# -- floe run --------------------------------------------------------------------------------------


def version_files(version: int) -> dict[str, str]:
    """The DUO product in one of two versions: the same columns, different rows in every table."""
    files = dict(DUO_FILES)
    if version == 2:
        files["models/base/numbers.sql"] = "select range as n from range(8)\n"
        files["seeds/codes.csv"] = "code,label\n1,one\n2,two\n3,three\n"
    return files


def expected_rows(version: int) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, as sorted tuples, after a complete run of ``version``."""
    count = 5 if version == 1 else 8
    codes = [(1, "one"), (2, "two")] + ([(3, "three")] if version == 2 else [])
    return {
        "numbers": [(n,) for n in range(count)],
        "lefty": [(n, n * 10) for n in range(count)],
        "righty": [(sum(range(count)),)],
        "codes": codes,
        "coded": codes,
        "after": [(count,)],
    }


def _local(uri: str) -> Path:
    split = urlsplit(uri)
    return Path(unquote(split.path) if split.scheme else uri)


def catalog_state(root: Path, where: str) -> dict[str, tuple[int, str]]:
    """Check that the catalog is consistent; return each table's version (of its rows) and uuid."""
    catalog = iceberg(root)
    try:
        versions: dict[str, tuple[int, str]] = {}
        for namespace in catalog.list_namespaces():
            for identifier in catalog.list_tables(namespace):
                name = identifier[-1]
                table = catalog.load_table(identifier)
                assert _local(table.metadata_location).is_file(), f"{where}: {name}: no current metadata file"
                for snapshot in table.metadata.snapshots:
                    assert _local(snapshot.manifest_list).is_file(), (
                        f"{where}: {name}: a manifest list is missing"
                    )
                scan = table.scan()
                for task in scan.plan_files():
                    for file in (task.file, *task.delete_files):
                        assert _local(file.file_path).is_file(), (
                            f"{where}: {name}: {file.file_path} is missing"
                        )
                found = sorted(tuple(row.values()) for row in scan.to_arrow().to_pylist())
                matches = [v for v in (1, 2) if expected_rows(v).get(name) == found]
                assert matches, f"{where}: table {name} holds neither version's complete rows: {found}"
                versions[name] = (matches[0], str(table.metadata.table_uuid))
    finally:
        catalog.close()
    assert set(versions) == set(expected_rows(1)), f"{where}: the catalog lists {sorted(versions)}"
    return versions


def check_run_artifacts(root: Path, compiled: dict[str, bytes], where: str) -> None:
    assert artifacts(root) == compiled, f"{where}: compile artifacts changed"
    port = root / ".floe" / "iceberg" / "port"
    if port.exists():
        int(port.read_text(encoding="utf-8"))
    for project in (root / "target" / "floe" / "run").iterdir():
        if project.name.startswith("."):
            continue
        dbt_project = yaml.safe_load((project / "dbt_project.yml").read_text(encoding="utf-8"))
        profiles = yaml.safe_load((project / "profiles.yml").read_text(encoding="utf-8"))
        assert dbt_project["profile"] == f"floe_{project.name}", where
        assert profiles[dbt_project["profile"]]["outputs"]["dev"]["type"] == "duckdb", where
    with RunLock(root / ".floe").acquire(wait=False, environment="dev"):  # the dead holder holds nothing
        pass


def stopped(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_kill_9_during_run_keeps_the_catalog_consistent_and_the_next_run_works(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng, seed = seeded(request)
    root = product(tmp_path / "duo", "duo", DUO_TRANSFORMS, version_files(1))
    log = tmp_path / "run.log"
    started_procs: list[subprocess.Popen[str]] = []

    def run_cli(*extra: str) -> subprocess.Popen[str]:
        with log.open("w", encoding="utf-8") as out:
            proc = cli("run", "duo", "--env", "dev", *extra, cwd=tmp_path, stdout=out)
        started_procs.append(proc)
        return proc

    with reaped(started_procs):
        clock = time.monotonic()
        proc = run_cli()
        assert wait_for(log, "parsed the dbt project", proc, 180), log.read_text()
        parsed = time.monotonic() - clock
        assert proc.wait(timeout=180) == 0, log.read_text()
        lifetime = time.monotonic() - clock
        first = catalog_state(root, f"{seed} first run")
        assert {name: v for name, (v, _) in first.items()} == dict.fromkeys(expected_rows(1), 1)
        # the columns never change, so no table is ever dropped and created: each keeps its uuid
        uuids = {name: uuid for name, (_, uuid) in first.items()}
        versions = {name: v for name, (v, _) in first.items()}
        compiled = artifacts(root)

        version = 1
        outcomes: dict[str, int] = {}
        # half from the start (compile, lock, catalog, workers, dbt's parse), half from the end of
        # the parse (the builds, their commits, the shutdown; quicker than the first run's, which
        # created the tables)
        half = RUN_KILLS // 2
        moments = [("start", d) for d in stratified(rng, half, 0, parsed)]
        moments += [("parsed", d) for d in stratified(rng, RUN_KILLS - half, 0, 0.6 * (lifetime - parsed))]
        rng.shuffle(moments)
        for i, (anchor, delay) in enumerate(moments):
            version = 3 - version
            for name, text in version_files(version).items():
                path = root / name
                if path.read_text(encoding="utf-8") != text:
                    path.write_text(text, encoding="utf-8")
            alone = i % 2 == 1
            proc = run_cli()
            if anchor == "parsed":
                assert wait_for(log, "parsed the dbt project", proc, 180), (
                    f"{seed} kill {i}:\n{log.read_text()}"
                )
            time.sleep(delay)
            output = log.read_text(encoding="utf-8", errors="replace")
            if alone:
                others = kill_alone(proc.pid)
                proc.wait()
                left = stopped(others, ORPHAN_GRACE_S)
                for pid in left:
                    _signal(pid, signal.SIGKILL)
            else:
                kill_node(proc.pid)
                proc.wait()
                left = []
            phase = (
                "exiting"
                if "floe run succeeded" in output
                else "building"
                if "started on" in output
                else "parsing"
                if "catalog 'floe'" in output
                else "starting"
            )
            outcomes[f"killed while {phase}"] = outcomes.get(f"killed while {phase}", 0) + 1
            where = (
                f"{seed} kill {i} ({'the CLI alone' if alone else 'every process'}) {delay:.2f}s after "
                f"its {anchor}, while {phase}, running version {version}"
            )
            assert not left, f"{where}: the workers of the killed CLI kept running: {left}"
            check_run_artifacts(root, compiled, where)
            state = catalog_state(root, where)
            assert {name: uuid for name, (_, uuid) in state.items()} == uuids, (
                f"{where}: a table was recreated"
            )
            pending = [name for name, v in versions.items() if v != version]
            versions = {name: v for name, (v, _) in state.items()}
            if 0 < sum(versions[name] == version for name in pending) < len(pending):
                outcomes["killed between two commits"] = outcomes.get("killed between two commits", 0) + 1

        clock = time.monotonic()
        proc = run_cli("--no-wait")  # a lock the killed runs left behind would fail it at once
        assert proc.wait(timeout=180) == 0, f"{seed}: the run after the kills failed:\n{log.read_text()}"
        last = time.monotonic() - clock
        state = catalog_state(root, f"{seed} after the last run")
        assert state == {name: (version, uuid) for name, uuid in uuids.items()}, seed
        check_run_artifacts(root, compiled, f"{seed} after the last run")
        left_behind = [p for p in root.rglob("*") if TEMPORARY.fullmatch(p.name)]
        assert not left_behind, f"{seed}: temporary files of killed writers are left: {left_behind}"
    print(
        f"\nfloe run lifetime {lifetime:.1f}s (parsed at {parsed:.1f}s), the run after the kills {last:.1f}s; "
        f"{RUN_KILLS} kills {seed}: {outcomes}"
    )
