"""REQ-019: the engine interface is typed strictly enough that mypy catches a wrong engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

GOOD = """
from typing import Any
from floe.enginekit import CatalogConfig, ComputeConfig, ComputePlugin, ProfileTarget, ValidationResult


class Engine(ComputePlugin):
    name = "good"
    version = "1.0"
    dbt_adapter = "good"

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        return {"type": "good", "threads": 1}

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-good>=1,<2"]

    def validate_connection(self, compute: ComputeConfig, target: ProfileTarget,
                            timeout: float) -> ValidationResult:
        return ValidationResult(True, "ok")

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        return {"requests": {}, "limits": {}}

    def get_catalog_attachment_sql(self, compute: ComputeConfig,
                                   catalog: CatalogConfig) -> list[str] | None:
        return None
"""


@pytest.mark.req("REQ-019")
def test_mypy_strict_accepts_a_correct_engine_and_rejects_a_wrong_signature(tmp_path: Path) -> None:
    from mypy import api

    good = tmp_path / "good_engine.py"
    good.write_text(textwrap.dedent(GOOD))
    bad = tmp_path / "bad_engine.py"
    bad.write_text(
        textwrap.dedent(GOOD).replace(
            'def get_required_dbt_packages(self) -> list[str]:\n        return ["dbt-good>=1,<2"]',
            'def get_required_dbt_packages(self) -> str:\n        return "dbt-good"',
        )
    )
    args = ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache")]
    out, err, status = api.run([*args, str(good)])
    assert status == 0, out + err
    out, err, status = api.run([*args, str(bad)])
    assert status == 1
    assert 'Return type "str" of "get_required_dbt_packages" incompatible' in out
