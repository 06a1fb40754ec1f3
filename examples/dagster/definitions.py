"""A platform team's Dagster set-up: every data product of the repository as Dagster assets.

Each product's models become assets (keys as dagster-dbt makes them, grouped by transform, tagged
with the compute and engine that governance approved for them); materializing one runs its
transform through ``floe run`` on that compute. Load it with ``dagster dev -f
examples/dagster/definitions.py`` (``pip install 'floe[dagster,duckdb,spark]'``), or import
``defs`` in your code location.

Environment: ``FLOE_ENV`` (default ``dev``). OpenLineage, when configured for floe
(``OPENLINEAGE_URL``…), is sent by every materialization as by any ``floe run``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from floe.dagster import assets

EXAMPLES = Path(__file__).resolve().parent.parent
PRODUCTS = [EXAMPLES / "lakehouse"]
"""The data products this code location runs (each a directory with its floe.yaml)."""

defs = dg.Definitions(
    assets=[a for product in PRODUCTS for a in assets(product, os.environ.get("FLOE_ENV", "dev"))]
)
