"""Compliance: ``validate_connection`` succeeds against a live peer and fails in time, clearly, where
it cannot work (REQ-014).

An engine gives the suite a way to reach a refused port and a server that never answers
(``address_settings``), or declares that it has no network endpoint (``local_settings``) and is then
checked with a path that cannot be opened and one that never answers. Giving neither fails: no
check is skipped for want of a fixture.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from floe.model import ComputeConfig, ProfileTarget
from floe.plugins import Engine
from floe.testing.compliance_base import (
    SILENT_TIMEOUT,
    VALIDATION_TIMEOUT,
    Endpoint,
    EngineTestBase,
    assert_actionable,
    validate_directly,
)
from floe.testing.fifo import release_fifo

NO_WAY_TO_FAIL = (
    "the compliance suite cannot check that validate_connection fails where it should: add an "
    "`address_settings` fixture, `(host, port) -> config` reaching a server there, or, for an engine "
    "with no network endpoint, a `local_settings` fixture, `path -> config` opening a database there"
)


class ConnectionTests(EngineTestBase):
    """Every check calls the engine's own hook: floe's wrapper would answer for a hung or lying one."""

    @pytest.fixture
    def unreachable(
        self,
        address_settings: Callable[[str, int], dict[str, Any]] | None,
        local_settings: Callable[[Path], dict[str, Any]] | None,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(what, config)`` for each way the engine is reached, pointing where nothing answers."""
        found: list[tuple[str, dict[str, Any]]] = []
        if address_settings is not None:
            found.append(("a refused port", address_settings(*request.getfixturevalue("refused_address"))))
        if local_settings is not None:
            blocker = tmp_path / "a-file"  # a database below a regular file can be neither made nor opened
            blocker.write_text("not a directory\n")
            found.append(("a path below a regular file", local_settings(blocker / "compliance.db")))
        if not found:
            pytest.fail(NO_WAY_TO_FAIL)
        return found

    @pytest.fixture
    def unresponsive(
        self,
        address_settings: Callable[[str, int], dict[str, Any]] | None,
        local_settings: Callable[[Path], dict[str, Any]] | None,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """``(what, config)`` for each way the engine is reached, pointing at a peer that never
        answers: a server that accepts and stays silent, a FIFO nobody writes (reads block, as on a
        hung network mount)."""
        found: list[tuple[str, dict[str, Any]]] = []
        if address_settings is not None:
            found.append(("a silent server", address_settings(*request.getfixturevalue("silent_server"))))
        fifo = tmp_path / "compliance.db"
        if local_settings is not None:
            os.mkfifo(fifo)
            found.append(("a FIFO nobody writes", local_settings(fifo)))
        if not found:
            pytest.fail(NO_WAY_TO_FAIL)
        with _released(fifo):
            yield found

    def test_validate_connection_succeeds_against_the_endpoint(
        self,
        engine: Engine,
        engine_name: str,
        engine_endpoint: Endpoint,
        target: ProfileTarget,
        endpoint_env: None,
    ) -> None:
        """Engine side: its own check, against the live peer, answers success within REQ-014's 10 s. (REQ-014)"""
        compute = ComputeConfig("compliance", engine_name, dict(engine_endpoint.config))
        result = validate_directly(engine, compute, target, VALIDATION_TIMEOUT)
        assert result.success, result.message

    def test_validate_connection_fails_clearly_where_nothing_answers(
        self,
        engine: Engine,
        engine_name: str,
        unreachable: list[tuple[str, dict[str, Any]]],
        target: ProfileTarget,
    ) -> None:
        """Engine side: its own check, against a refused port (network engines) or a path where no
        database can be (local engines), fails with advice. (REQ-014)"""
        for what, config in unreachable:
            result = validate_directly(
                engine, ComputeConfig("compliance", engine_name, config), target, VALIDATION_TIMEOUT
            )
            assert not result.success, f"validate_connection succeeded against {what}: {result.message}"
            assert_actionable(result.message)

    def test_validate_connection_to_a_peer_that_never_answers_answers_in_time(
        self,
        engine: Engine,
        engine_name: str,
        unresponsive: list[tuple[str, dict[str, Any]]],
        target: ProfileTarget,
    ) -> None:
        """Engine side: its own check, against a peer that never answers, returns a failure within
        its ``timeout`` by itself (floe's outer deadline is not involved). (REQ-014)"""
        for what, config in unresponsive:
            result = validate_directly(
                engine, ComputeConfig("compliance", engine_name, config), target, SILENT_TIMEOUT
            )
            assert not result.success, (
                f"validate_connection succeeded against {what}, which never answers: {result.message}"
            )
            assert_actionable(result.message)


@contextlib.contextmanager
def _released(fifo: Path) -> Iterator[None]:
    """Afterwards, feed ``fifo`` so that a check still blocked reading it fails and its thread ends."""
    try:
        yield
    finally:
        if fifo.exists():
            release_fifo(fifo)
