"""SeaweedFS killed while it handles a commit of a real ``floe run``.

The product and the rounds of :mod:`tests.test_catalog_dies_in_commit` (``one`` → ``two`` →
``three``, one table each; round 2 replaces every table's rows, one commit per table) against
``weed mini``'s Iceberg REST catalog with vended credentials. A proxy in front of the catalog
SIGKILLs ``weed`` at the commit ``POST`` of ``one`` or ``two`` (chosen at random, seeded:
``FLOE_FAULT_SEED``), at random before forwarding it (the commit never lands) or after SeaweedFS
answered it and before the answer reaches DuckDB (it landed; the client never heard).

The run fails naming the compute, the transform and the catalog; SeaweedFS restarted on the same
data and ports holds every table whole at its round-1 or round-2 version (the one the proxy saw
land); the next run succeeds with nothing cleaned up.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.support.faults import FaultyProxy, fault_random, fault_rounds
from tests.support.seaweed import Exchange, Seaweed, seaweed_mini
from tests.test_catalog_dies_in_commit import (
    COMMIT,
    TABLES,
    assert_failed_on_catalog,
    assert_old_or_new,
    expected,
    lake,
    rest_platform,
    run,
    set_round,
    settled_state,
    start,
    state_of,
    write_product,
)

# the ``client_secret`` fixture
from tests.test_catalog_dies_in_commit import client_secret as client_secret


def commit_killer(
    server: Seaweed, nth: int, before_forwarding: bool
) -> tuple[
    Callable[[str, str, Mapping[str, str]], bool | None], Callable[[Exchange], bool], list[Exchange | str]
]:
    """The proxy's hooks: SIGKILL ``weed`` at the ``nth`` commit, before it is forwarded or after
    SeaweedFS answered it (then the answer is dropped); what happened is appended to the list.

    The transforms run one after another, one commit each, so the ``nth`` commit is ``TABLES[nth - 1]``'s."""
    seen: list[Exchange | str] = []
    commits = [0]

    def commit(method: str, path: str) -> bool:
        if method != "POST" or not COMMIT.search(path) or seen:
            return False
        commits[0] += 1
        return commits[0] == nth

    def instead(method: str, path: str, headers: Mapping[str, str]) -> bool | None:
        if before_forwarding and commit(method, path):
            seen.append(path)
            os.kill(server.pid, signal.SIGKILL)
            return False
        return None

    def heard(exchange: Exchange) -> bool:
        if not before_forwarding and commit(exchange.method, exchange.path):
            seen.append(exchange)
            os.kill(server.pid, signal.SIGKILL)
            return False
        return True

    return instead, heard, seen


def test_seaweedfs_killed_inside_a_commit(tmp_path: Path, client_secret: str) -> None:
    rng = fault_random("SeaweedFS killed in a commit")
    for round_ in range(fault_rounds()):
        weed_root = tmp_path / f"round{round_}" / "seaweed"
        with FaultyProxy(keep_bodies=True) as proxy:
            with seaweed_mini(weed_root, client_secret=client_secret) as server:
                proxy.upstream = server.iceberg_uri
                root = write_product(weed_root.parent / "commits", rest_platform(proxy.url, server))
                first = run(root)
                assert first.returncode == 0, first.stdout + first.stderr
                before = state_of(lake(server))

                nth, before_forwarding = rng.choice((1, 2)), rng.random() < 0.5
                table = TABLES[nth - 1]
                print(
                    f"round {round_}: killing weed at the commit of {table!r}, "
                    + ("before it reaches SeaweedFS" if before_forwarding else "after SeaweedFS answered it")
                )
                proxy.instead, proxy.heard, seen = commit_killer(server, nth, before_forwarding)
                set_round(root, 2)
                proc, output = start(root)
                try:
                    assert proc.wait(timeout=240) == 1, output.read_text()
                finally:
                    if proc.poll() is None:
                        proc.kill()
            assert seen, output.read_text()
            text = output.read_text()
            assert_failed_on_catalog(text, f"the catalog 'lake' at {proxy.url} does not answer")
            assert client_secret not in text
            if not before_forwarding:
                landed = seen[0]
                assert isinstance(landed, Exchange) and landed.status in (200, 204), landed

            proxy.instead = proxy.heard = None
            with seaweed_mini(weed_root, client_secret=client_secret, restart=server) as again:
                after = settled_state(again)
                assert_old_or_new(before, after)
                if before_forwarding:  # it never reached SeaweedFS
                    assert after[table] == before[table], (before, after)
                else:  # SeaweedFS committed it before it died; DuckDB never heard
                    assert after[table][1] == expected(2)[table], (before, after)
                done = run(root)
                assert done.returncode == 0, done.stdout + done.stderr
                assert {name: data for name, (_, data) in state_of(lake(again)).items()} == expected(2)
