"""``floe run``'s fork server (:mod:`floe.execution.forkserver`): workers forked with dbt imported, and
every way one of them, or the server, can die.

The runs are real CLI processes on a product with a transform that would compute for minutes; the
test kills a worker or the fork server with SIGKILL while it does, as the OOM killer would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.test_crash_safety import alive, process_tree
from tests.test_run import product

SLOW_ROWS = 10**12
"""Rows the slow model counts: minutes of DuckDB's time, far more than any test waits."""
WORKER_LINE = re.compile(r"floe: worker (\d+) forked from fork server (\d+), dbt imported")


def write_product(root: Path) -> Path:
    return product(
        root,
        "forks",
        """
        - {type: dbt, name: slow, path: models/slow/, compute: duckdb-b}
        - {type: dbt, name: quick, path: models/quick/, compute: duckdb}
    """,
        {
            "models/slow/counted.sql": f"select count(*) as n from range({SLOW_ROWS})\n",
            "models/quick/answer.sql": "select 42 as answer\n",
        },
    )


def workers(root: Path) -> Path:
    return root / "target/floe/run/.workers"


def wait_for(path: Path, pattern: str, proc: subprocess.Popen[str], timeout: float = 120) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = (
            re.search(pattern, path.read_text(encoding="utf-8", errors="replace")) if path.exists() else None
        )
        if found:
            return found
        assert proc.poll() is None, (
            path.read_text() if path.exists() else f"floe run exited: {proc.returncode}"
        )
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s")


def start_run(root: Path) -> tuple[subprocess.Popen[str], Path]:
    output = root.parent / "run.out"
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev"],
            cwd=root.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return proc, output


def stopped(pids: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class SlowRun(NamedTuple):
    """A ``floe run`` building ``slow``."""

    proc: subprocess.Popen[str]
    output: Path
    root: Path
    worker: int
    """The process id of ``slow``'s worker."""
    server: int
    """The process id of the fork server."""


@pytest.fixture
def slow_run(tmp_path: Path) -> SlowRun:
    root = write_product(tmp_path / "forks")
    proc, output = start_run(root)
    wait_for(output, r"\[slow\] started on duckdb-b", proc)
    found = wait_for(workers(root) / "duckdb-b.log", WORKER_LINE.pattern, proc)
    time.sleep(0.5)  # well into the count
    return SlowRun(proc, output, root, int(found[1]), int(found[2]))


def test_duckdb_workers_are_forked_from_one_server_that_imported_dbt_once(slow_run: SlowRun) -> None:
    proc, output, root, slow_worker, server = slow_run
    quick = WORKER_LINE.search((workers(root) / "duckdb.log").read_text())
    assert quick is not None and int(quick[2]) == server and int(quick[1]) != slow_worker
    assert (workers(root) / ".forkserver.log").read_text().splitlines() == [
        "floe: fork server ready with dbt.cli.main, dbt.adapters.duckdb imported"
    ]
    # each worker leads a process group of its own, as a fresh one does: a kill of it takes what it started
    assert os.getpgid(slow_worker) == slow_worker and os.getpgid(server) == server
    assert slow_worker in process_tree(server)
    os.kill(slow_worker, signal.SIGKILL)
    assert proc.wait(timeout=60) == 1, output.read_text()


def test_a_killed_worker_fails_its_transform_with_its_exit_code(slow_run: SlowRun) -> None:
    proc, output, _, slow_worker, server = slow_run
    os.kill(slow_worker, signal.SIGKILL)
    assert proc.wait(timeout=60) == 1, output.read_text()
    text = output.read_text()
    assert (
        "[slow] FAILED" in text
        and "it was killed by signal SIGKILL (9); SIGKILL is what the kernel's out-of-memory killer sends"
        in text
    ), text
    assert "[quick] SUCCESS on duckdb" in text, text  # the other compute's worker went on
    assert not stopped([server], 5), "the fork server outlived the run"


def test_a_killed_fork_server_takes_its_workers_along_and_the_run_ends(slow_run: SlowRun) -> None:
    proc, output, root, slow_worker, server = slow_run
    os.kill(server, signal.SIGKILL)
    assert proc.wait(timeout=60) == 1, output.read_text()
    text = output.read_text()
    assert "(no exit code: its fork server stopped, or could not fork it)" in text, text
    assert not stopped([slow_worker], 5), "a worker outlived its fork server"
    # nothing is left holding the DuckDB file or the lock: the next run of the quick transform works
    again = subprocess.run(
        [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--select", "quick", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
