"""What only floe knows, as custom OpenLineage facets (subclasses of the client's generated ones).

- ``floe_run`` (run facet of the run): the product, environment, namespace and catalog;
- ``floe_compute`` (run facet of a transform and its nodes): the compute and its engine, how its
  worker reaches the catalog, and the governance chain that allowed it (each manifest that
  approves and keeps it, the transform that selects it, with file and line);
- ``floe_handoffs`` (run facet of a transform): each hand-off between computes it takes part in,
  as the plan's crossings say (kind, upstream and downstream transform and compute, the refs and
  relations crossed, and whatever else a crossing reports).

Their JSON Schema is ``floe/jsonschema/lineage-facets.schema.json``; each facet's ``_schemaURL``
points into it.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.generated.base import RunFacet

SCHEMA_URL = "https://floe.dev/schemas/v1/lineage-facets.schema.json"


@attr.define
class FloeRunFacet(RunFacet):
    product: str
    environment: str
    namespace: str
    catalog: dict[str, Any]

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_URL}#/$defs/FloeRunFacet"


@attr.define
class FloeComputeRunFacet(RunFacet):
    compute: str
    engine: str
    engineVersion: str
    distribution: str
    dbtAdapter: str
    catalogAccess: dict[str, Any]
    allowedBy: list[str]

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_URL}#/$defs/FloeComputeRunFacet"


@attr.define
class FloeHandoffsRunFacet(RunFacet):
    handoffs: list[dict[str, Any]]

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_URL}#/$defs/FloeHandoffsRunFacet"
