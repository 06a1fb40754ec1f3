"""A test that cannot run because a dependency is missing: a skip on a developer's machine, a
failure in CI (``CI=true``), where every dependency of the test extra is installed on purpose and a
missing one must not turn the run green."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip for ``reason``, or fail with it in CI."""
    if in_ci():
        pytest.fail(
            f"{reason} (CI is set: a missing dependency fails the run instead of skipping)", pytrace=False
        )
    pytest.skip(reason, allow_module_level=allow_module_level)
