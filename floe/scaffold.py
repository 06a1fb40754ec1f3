"""``floe init DIR``: a platform manifest, a domain and a data product that compile and run at once.

What it writes (DuckDB only, nothing to install beyond ``floe[duckdb]``)::

    DIR/floe.schema.json                    the editor schema (`floe schema --bundle`)
    DIR/platform/enterprise.yaml            the enterprise manifest: one DuckDB compute, dev and prod
    DIR/platform/domains/analytics.yaml     a domain narrowing it
    DIR/<product>/floe.yaml                 the data product: two transforms
    DIR/<product>/dbt_project.yml, seeds/, models/staging/, models/marts/

Every YAML file of floe's (manifests, floe.yaml) starts with the editor schema modeline (``# yaml-language-server: $schema=…``),
relative to the file, so an editor with the YAML extension checks it as it is typed. ``floe run
DIR/<product> --env dev`` then builds it through the embedded Iceberg catalog. Nothing that exists
is overwritten: a file already there is an error naming it, and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from floe.errors import FloeError, Problem

SCHEMA_FILE = "floe.schema.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def modeline(path: Path, root: Path) -> str:
    """The editor schema line of ``path``: the bundle at ``root``, relative to the file."""
    return f"# yaml-language-server: $schema={os.path.relpath(root / SCHEMA_FILE, path.parent)}\n"


def files(product: str) -> dict[str, str]:
    """The scaffold's text files, by path relative to the directory (YAML without their modeline)."""
    return {
        "platform/enterprise.yaml": """\
# The platform team's manifest: the computes every product may use, and the environments.
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: platform, owner: platform-team}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 4 }
    default: duckdb
environments:
  - name: dev
  - name: prod
""",
        "platform/domains/analytics.yaml": """\
# A domain: it may only narrow what the enterprise approves.
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: analytics}
plugins:
  compute:
    approved: [duckdb]
""",
        f"{product}/floe.yaml": f"""\
# The data product: each transform (a folder of dbt models) runs on a compute the platform approves.
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {{name: {product}}}
platform: ../platform/domains/analytics.yaml
transforms:
  - {{type: dbt, path: models/staging/, compute: duckdb}}
  - {{type: dbt, path: models/marts/}}
""",
        f"{product}/dbt_project.yml": f"""\
name: {product}
version: "1.0.0"
config-version: 2
profile: {product}
model-paths: ["models"]
seed-paths: ["seeds"]
clean-targets: ["target"]
models:
  {product}:
    +materialized: table
""",
        f"{product}/seeds/raw_orders.csv": "order_id,customer,amount\n1,ada,12.50\n2,bob,7.25\n3,ada,3.00\n",
        f"{product}/models/staging/stg_orders.sql": "select order_id, customer, cast(amount as decimal(10, 2)) as amount\n"
        "from {{ ref('raw_orders') }}\n",
        f"{product}/models/marts/revenue_by_customer.sql": "select customer, count(*) as orders, sum(amount) as revenue\n"
        "from {{ ref('stg_orders') }}\ngroup by customer\n",
    }


def init(directory: Path, product: str = "my_product", schema: str | None = None) -> list[Path]:
    """Write the scaffold into ``directory``; return the files written.

    :param schema: the editor schema's text (default: ``floe schema --bundle`` of the installed engines).
    :raises FloeError: ``product`` is not a name, or a file to write already exists.
    """
    if not _NAME.match(product):
        raise FloeError(
            [
                Problem(
                    f"{product!r} is not a product name",
                    expected="lower-case letters, digits and _, starting with a letter",
                    fix="pass --product with a name like my_product",
                )
            ]
        )
    texts = files(product)
    targets = [directory / SCHEMA_FILE, *(directory / name for name in texts)]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise FloeError(
            [
                Problem(
                    f"{path} already exists: floe init writes into a new or empty place",
                    fix="choose another directory, or move the file away",
                )
                for path in existing
            ]
        )
    if schema is None:
        from floe.plugins import EngineRegistry
        from floe.schema_bundle import bundle
        from floe.schemas import store

        schema = json.dumps(bundle(EngineRegistry.discover(), store()), indent=2) + "\n"
    written = []
    for name, text in {SCHEMA_FILE: schema, **texts}.items():
        path = directory / name
        if (
            path.suffix == ".yaml"
        ):  # floe's files; dbt_project.yml is dbt's, which this schema does not describe
            text = modeline(path, directory) + text
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
