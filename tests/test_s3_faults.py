"""S3 fails under a real ``floe run`` on SeaweedFS (Iceberg REST catalog with vended credentials).

The product of :mod:`tests.test_catalog_dies_in_commit` (``one`` → ``two`` → ``three`` on two
DuckDB computes, one table each) runs a first time (round 1), then a second time (round 2, every
table's rows replaced) while S3 fails at a random moment (seeded: ``FLOE_FAULT_SEED``): at a random
one of the first half of the S3 writes round 1 made. SeaweedFS advertises a
proxy of the test's as its S3 endpoint (``s3.endpoint`` in ``loadTable``), so every S3 request
of the engines goes through it:

- **S3 stops mid-write**: the proxy drops that write and stops listening (connections refused),
  as an S3 endpoint that went away; the catalog still answers;
- **a vended credential revoked mid-write**: from that write on, the proxy answers
  ``403 AccessDenied`` to every request signed with a key SeaweedFS vended (see
  :class:`Revocation`). SeaweedFS
  cannot revoke what it vended: its STS credentials are stateless signed session tokens (no
  revocation list, no API to end a session), and its role policies come from the IAM file it reads
  at start; so the revocation is injected at the wire, where S3 would refuse a revoked key.

The run fails naming the compute, the transform and the cause (the endpoint it could not reach;
the access denied), every table is whole at its round-1 or round-2 version, and once S3 is back
(the next run's fresh credentials) the next run succeeds with nothing cleaned up. Data files a
failed write left are orphans the catalog's metadata never reaches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import Answer, FaultyProxy, fault_random, fault_rounds
from tests.support.seaweed import Seaweed, seaweed_mini
from tests.test_catalog_dies_in_commit import (
    assert_old_or_new,
    expected,
    lake,
    rest_platform,
    run,
    set_round,
    start,
    state_of,
    write_product,
)

# the ``client_secret`` fixture
from tests.test_catalog_dies_in_commit import client_secret as client_secret

WRITES = ("PUT", "POST")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@pytest.fixture
def lake_behind_proxy(tmp_path: Path, client_secret: str) -> Iterator[tuple[Seaweed, FaultyProxy]]:
    with (
        FaultyProxy() as s3,
        seaweed_mini(tmp_path / "seaweed", client_secret=client_secret, s3_external_url=s3.url) as server,
    ):
        s3.upstream = server.s3_endpoint
        yield server, s3


def key_of(headers: Mapping[str, str]) -> str | None:
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    found = _CREDENTIAL.search(authorization)
    return found[1] if found else None


class StopAt:
    """The proxy's hook: at the ``nth`` S3 write, drop it and stop listening."""

    def __init__(self, s3: FaultyProxy, nth: int) -> None:
        self.s3, self.nth, self.writes = s3, nth, 0

    def __call__(self, method: str, path: str, headers: Mapping[str, str]) -> bool | None:
        if method in WRITES:
            self.writes += 1
            if self.writes == self.nth:
                self.s3.stop_listening()
                return False
        return None


class Revocation:
    """The proxy's hook: from the ``nth`` S3 write on, every credential SeaweedFS vends is refused
    (``403 AccessDenied``, as S3 answers a revoked credential) until the test restores access: the
    catalog's vending role lost its right to the tables. Revoking only the keys vended so far is
    not enough to fail a run: DuckDB retries the failed commit, the catalog vends a fresh key, and
    the build succeeds (seen with ``FLOE_FAULT_SEED=3805832214``)."""

    def __init__(self, admin_key: str, nth: int) -> None:
        self.admin_key, self.nth, self.writes = admin_key, nth, 0
        self.revoked: set[str] = set()
        self.denied: list[str] = []

    def __call__(self, method: str, path: str, headers: Mapping[str, str]) -> Answer | None:
        key = key_of(headers)
        if method in WRITES:
            self.writes += 1
        if self.writes >= self.nth and key is not None and key != self.admin_key:
            self.revoked.add(key)
            self.denied.append(path)
            return access_denied(path)
        return None


def first_round(root: Path, server: Seaweed, s3: FaultyProxy) -> tuple[Any, int, int]:
    """Round 1 built: the tables' state, how many S3 writes and requests it made."""
    mark = len(s3.exchanges)
    first = run(root)
    assert first.returncode == 0, first.stdout + first.stderr
    made = s3.since(mark)
    writes = sum(e.method in WRITES for e in made)
    assert writes and made, "round 1 wrote through the S3 proxy"
    return state_of(lake(server)), writes, len(made)


def failed_on(text: str) -> list[str]:
    """The lines of each transform that failed: its FAILED line and its message."""
    failed = re.findall(r"\[(one|two|three)\] FAILED on (?:duckdb-b|duckdb)", text)
    assert failed, text
    return [line for line in text.splitlines() if any(line.startswith(f"[{name}]") for name in failed)]


def test_s3_stopping_mid_write_is_named_and_the_next_run_succeeds(
    tmp_path: Path, lake_behind_proxy: tuple[Seaweed, FaultyProxy], client_secret: str
) -> None:
    server, s3 = lake_behind_proxy
    rng = fault_random("S3 stops mid-write")
    for round_ in range(fault_rounds()):
        root = write_product(
            tmp_path / f"round{round_}" / "commits", rest_platform(server.iceberg_uri, server)
        )
        before, writes, _ = first_round(root, server, s3)
        nth = rng.randint(1, max(1, writes // 2))
        print(f"round {round_}: S3 stops at write {nth} of round 2 (round 1 made {writes})")
        s3.instead = StopAt(s3, nth)
        set_round(root, 2)
        proc, output = start(root)
        try:
            assert proc.wait(timeout=300) == 1, output.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        text = output.read_text()
        assert s3.stopped.is_set(), text
        lines = "\n".join(failed_on(text))
        endpoint = s3.url.removeprefix("http://")
        assert endpoint in lines, text  # the object store's endpoint, named where the build failed
        assert "Traceback" not in text and client_secret not in text, text

        s3.instead = None
        s3.listen_again()  # the endpoint is back
        assert_old_or_new(before, state_of(lake(server)))
        done = run(root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert {name: data for name, (_, data) in state_of(lake(server)).items()} == expected(2)


def access_denied(path: str) -> Answer:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>Access Denied</Message><Resource>{path.split('?')[0]}</Resource>"
        "<RequestId>revoked</RequestId></Error>"
    ).encode()
    return 403, "application/xml", body


def test_a_vended_credential_revoked_mid_write_is_named_and_the_next_run_succeeds(
    tmp_path: Path, lake_behind_proxy: tuple[Seaweed, FaultyProxy], client_secret: str
) -> None:
    server, s3 = lake_behind_proxy
    rng = fault_random("vended credential revoked mid-write")
    for round_ in range(fault_rounds()):
        root = write_product(
            tmp_path / f"round{round_}" / "commits", rest_platform(server.iceberg_uri, server)
        )
        before, writes, _ = first_round(root, server, s3)
        nth = rng.randint(1, max(1, writes // 2))
        print(f"round {round_}: vended keys revoked at S3 write {nth} of round 2 (round 1 made {writes})")
        revocation = Revocation(server.admin_key_id, nth)
        revoked, denied = revocation.revoked, revocation.denied
        s3.instead = revocation
        set_round(root, 2)
        proc, output = start(root)
        try:
            assert proc.wait(timeout=300) == 1, output.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        text = output.read_text()
        assert revoked and denied, text
        lines = "\n".join(failed_on(text))
        assert re.search(r"access denied|AccessDenied|403", lines, re.IGNORECASE), text
        assert "Traceback" not in text and client_secret not in text, text
        assert not any(key in text for key in revoked), "no vended key in the output"

        s3.instead = None  # access restored; the keys seen refused stay unused
        assert_old_or_new(before, state_of(lake(server)))
        mark = len(s3.exchanges)
        done = run(root)
        assert done.returncode == 0, done.stdout + done.stderr
        used = {key_of(e.request_headers) for e in s3.since(mark)} - {None}
        assert used and not used & revoked, "the next run signs with fresh vended credentials"
        assert {name: data for name, (_, data) in state_of(lake(server)).items()} == expected(2)
