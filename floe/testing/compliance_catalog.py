"""Compliance: the engine reaches the Iceberg catalog as its adopter declares (REQ-013).

An engine either attaches by SQL (``get_catalog_attachment_sql`` returns statements, which the
suite runs on the engine through the adopter's ``sql_executor``), or reaches the catalog another
way and returns ``None``; the adopter says which (``attaches_catalog_by_sql``), so that a ``None``
is a checked claim, not a pass by default.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from floe.model import CatalogConfig, ComputeConfig
from floe.plugins import Engine
from floe.testing.compliance_base import EngineTestBase, engine_output

UNDECLARED = (
    "declare how your engine reaches the Iceberg catalog: if get_catalog_attachment_sql returns "
    "statements, add a `sql_executor` fixture that runs them on the engine (and a `catalog` fixture it "
    "can reach); if the engine attaches another way (server configuration, session settings) and "
    "returns None, add an `attaches_catalog_by_sql` fixture returning False"
)


class CatalogAttachmentTests(EngineTestBase):
    """``get_catalog_attachment_sql`` does what the adopter declares, and its SQL runs."""

    def test_catalog_attachment_is_as_declared_and_its_sql_runs(
        self,
        engine: Engine,
        compute: ComputeConfig,
        catalog: CatalogConfig,
        attaches_catalog_by_sql: bool | None,
        sql_executor: Callable[[list[str], ComputeConfig], None] | None,
    ) -> None:
        """Engine side: what the engine's own hook returns for the ``catalog``, and that the engine
        itself (through ``sql_executor``) accepts and runs every statement. (REQ-013)"""
        statements, text = engine_output(engine, "floe_get_catalog_attachment_sql", compute, catalog=catalog)
        if attaches_catalog_by_sql is None:
            pytest.fail(f"{UNDECLARED} (the hook returned {text[:200]})")
        if not attaches_catalog_by_sql:
            assert statements is None, (
                f"the adopter declared that the engine does not attach by SQL, but the hook returned {text[:300]}"
            )
            return
        assert statements is not None, (
            f"the adopter declared attachment by SQL, but the hook returned {text[:300]}"
        )
        assert isinstance(statements, list) and statements, (
            f"expected a non-empty list of statements: {text[:300]}"
        )
        assert all(isinstance(s, str) and s.strip() for s in statements), (
            f"an empty or non-text statement: {text[:300]}"
        )
        if sql_executor is None:
            pytest.fail(
                "the engine attaches by SQL: provide a `sql_executor` fixture that runs statements "
                "on the engine (and a `catalog` fixture it can reach)"
            )
        sql_executor(statements, compute)
