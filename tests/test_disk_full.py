"""The disk fills while ``floe run`` writes ``target/`` and ``.floe/``.

The product of :mod:`tests.test_catalog_dies_in_commit` (``one`` → ``two`` → ``three`` on two
DuckDB computes, the embedded catalog) lives on a small filesystem of its own: a ``tmpfs`` the
test mounts (it runs as root here and in CI). A first run builds it (round 1); then a file fills
the filesystem but for a random number of bytes (seeded: ``FLOE_FAULT_SEED``), fewer than a run
writes, and a second run (round 2) runs out of space somewhere: floe's artifacts, dbt's logs and
parse, the catalog's metadata, DuckDB's data files. Where the kernel refuses ``mount``, the
second run gets a random ``RLIMIT_FSIZE`` instead (a write past it fails with ``EFBIG``): the test
runs either way.

The run fails with a clear error, no traceback, naming what it could not write and why; what the
first run wrote is intact (``target/floe/compiled.json`` parses, every table is at its round-1 or
round-2 version); once the filler is removed (the limit lifted), the next run succeeds with
nothing cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.faults import fault_random, fault_rounds
from tests.test_catalog_dies_in_commit import assert_old_or_new, expected, set_round, state_of, write_product
from tests.test_run import enterprise, iceberg

DISK_BYTES = 96 * 2**20
NO_MOUNT_VARIABLE = "FLOE_TEST_NO_MOUNT"
NO_SPACE = re.compile(r"No space left on device|File too large|ENOSPC|EFBIG", re.IGNORECASE)


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[bool]:
    """A ``tmpfs`` of :data:`DISK_BYTES` mounted at ``where``; yields whether it could be mounted."""
    where.mkdir(parents=True)
    if os.environ.get(NO_MOUNT_VARIABLE):  # to run the fallback where mount works
        yield False
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def used(where: Path) -> int:
    stats = os.statvfs(where)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def fill(where: Path, leave: int) -> Path:
    """A file taking all of ``where``'s free space but ``leave`` bytes."""
    filler = where / "filler"
    stats = os.statvfs(where)
    size = max(0, stats.f_bavail * stats.f_frsize - leave)
    with open(filler, "wb") as out:
        chunk = b"\0" * 2**20
        while size > 0:
            size -= out.write(chunk[: min(len(chunk), size)])
    return filler


def floe_run(root: Path, file_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        assert file_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=limit if file_limit is not None else None,
    )


def test_a_full_disk_is_named_nothing_written_is_lost_and_the_next_run_succeeds(tmp_path: Path) -> None:
    rng = fault_random("disk full")
    for round_ in range(fault_rounds()):
        disk = tmp_path / f"round{round_}" / "disk"
        with small_disk(disk) as mounted:
            root = write_product(disk / "commits", enterprise(False))
            start = used(disk)
            first = floe_run(root)
            assert first.returncode == 0, first.stdout + first.stderr
            written = used(disk) - start  # round 1: the catalog, DuckDB's extensions, dbt's parse
            compiled = (root / "target/floe/compiled.json").read_text()
            before = state_of(iceberg(root))

            set_round(root, 2)
            if mounted:
                leave = rng.randint(0, 64 * 1024)
                print(f"round {round_}: the disk full but {leave} bytes (round 1 wrote {written})")
                filler = fill(disk, leave)
                failed = floe_run(root)
            else:
                limit = rng.randint(1, 64 * 1024)
                print(f"round {round_}: no tmpfs (mount refused); RLIMIT_FSIZE {limit} bytes")
                failed = floe_run(root, file_limit=limit)
            text = failed.stdout + failed.stderr
            assert failed.returncode != 0, text
            assert "Traceback" not in text, text
            named = [line for line in text.splitlines() if NO_SPACE.search(line)]
            print("\n".join(named))
            assert any(str(root) in line for line in named), text  # what could not be written, and why

            # what the first run wrote is whole
            assert json.loads((root / "target/floe/compiled.json").read_text()) == json.loads(compiled)
            assert_old_or_new(before, state_of(iceberg(root)))

            if mounted:
                filler.unlink()
            done = floe_run(root)
            assert done.returncode == 0, done.stdout + done.stderr
            assert {name: data for name, (_, data) in state_of(iceberg(root)).items()} == expected(2)
            shutil.rmtree(root, ignore_errors=True)
