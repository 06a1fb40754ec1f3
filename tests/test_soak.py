"""Issue 15 §1 (soak, the short version): one product run again and again in this process.

The shop example (two DuckDB computes, a seed, the embedded Iceberg catalog served from
``.floe/``) runs ``RUNS`` times in a row through :func:`floe.run`. After each run the test counts
what a run could leave behind: this process's child processes (fork server, dbt workers, the
catalog server), its open file descriptors and threads, and the files in the temporary directory
(a private one, for this process and its children). From the second run on (the first one
creates what is kept between runs: the DuckDB files, dbt's partial parse, the catalog's
database) none of them may grow. ``benchmarks/soak.py`` runs it 50 times and records time and
``.floe/`` size per run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import floe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUNS = 10


@dataclass(frozen=True)
class Census:
    """What this process holds after a run."""

    children: tuple[str, ...]
    """Every live descendant process, as ``pid command``."""
    descriptors: tuple[str, ...]
    """Every open file descriptor, as what it points at (sockets and pipes by kind only)."""
    threads: int
    temp_files: tuple[str, ...]


def descendants(pid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every live process below ``pid`` (zombies included: a zombie is a leak too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[tuple[int, str]] = []
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            command = (
                (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
            )
        except OSError:
            command = "?"
        out.append((child, command))
        todo.extend(parents.get(child, []))
    return sorted(out)


def open_descriptors() -> list[str]:
    out = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # the descriptor that listed the folder, closed since
        out.append(
            target.split(":", 1)[0] + ":"
            if target.startswith(("socket:", "pipe:", "anon_inode:"))
            else target
        )
    return sorted(out)


def census(temp: Path) -> Census:
    return Census(
        children=tuple(f"{pid} {cmd}" for pid, cmd in descendants(os.getpid())),
        descriptors=tuple(open_descriptors()),
        threads=threading.active_count(),
        temp_files=tuple(sorted(str(p.relative_to(temp)) for p in temp.rglob("*"))),
    )


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory for this process (``tempfile``) and its children (``TMPDIR``)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_repeated_runs_leak_no_process_descriptor_thread_or_temp_file(
    tmp_path: Path, private_temp: Path
) -> None:
    shutil.copytree(EXAMPLES / "shop", tmp_path / "examples" / "shop")
    shutil.copytree(EXAMPLES / "platform", tmp_path / "examples" / "platform")
    product = tmp_path / "examples" / "shop"
    samples: list[Census] = []
    for _ in range(RUNS):
        report = floe.run(product, env="dev")
        assert report.success, [(t.name, t.status, t.message) for t in report.transforms]
        samples.append(census(private_temp))
    second = samples[1]
    for n, later in enumerate(samples[2:], start=3):
        assert len(later.children) <= len(second.children), (n, second.children, later.children)
        new = sorted((Counter(later.descriptors) - Counter(second.descriptors)).elements())
        assert len(later.descriptors) <= len(second.descriptors), (n, new)
        assert later.threads <= second.threads, (n, second.threads, later.threads)
        assert set(later.temp_files) <= set(second.temp_files), (
            n,
            sorted(set(later.temp_files) - set(second.temp_files)),
        )
    print(
        f"\nafter run 2 / run {RUNS}: children {len(second.children)}/{len(samples[-1].children)}, "
        f"descriptors {len(second.descriptors)}/{len(samples[-1].descriptors)}, threads "
        f"{second.threads}/{samples[-1].threads}, temp files {len(second.temp_files)}/{len(samples[-1].temp_files)}"
    )
