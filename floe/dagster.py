"""A data product's dbt models as Dagster assets, materialized through floe (extra ``dagster``).

:func:`definitions` plans the product (``floe plan``: one ``dbt parse``) and makes one Dagster
asset per node a transform builds (models, and the seeds and snapshots the plan gives it), keyed
as dagster-dbt keys them (``DagsterDbtTranslator().get_asset_spec``), so lineage in an existing
Dagster deployment lines up. Assets are grouped by transform, tagged with the compute and engine,
and depend on what they ref, across transforms too. Each transform is one multi-asset:
materializing it runs ``floe.run(..., select=[transform])``, so it runs on its governed compute,
through the manifests, never around them (a transform is floe's unit of execution: its assets
materialize together). The run's progress goes to Dagster's log; a failing transform is a
``dagster.Failure`` with floe's message; each asset's materialization carries its table, compute,
engine, status and seconds. Lineage configured for floe (:mod:`floe.lineage`) is sent as in any run.

Importing :mod:`floe` never imports this module (nor Dagster).
"""

import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

import floe
from floe.execution.parse import PLAN_DIR


def definitions(
    product_path: str | os.PathLike[str], env: str, translator: DagsterDbtTranslator | None = None
) -> dg.Definitions:
    """The product's assets in environment ``env``; see the module docstring.

    :param translator: how dbt nodes become asset keys (default: dagster-dbt's own).
    :raises FloeError: the product is invalid or cannot run (as ``floe plan`` says).
    """
    return dg.Definitions(assets=assets(product_path, env, translator))


def assets(
    product_path: str | os.PathLike[str], env: str, translator: DagsterDbtTranslator | None = None
) -> list[dg.AssetsDefinition]:
    """One multi-asset per transform of the product (see :func:`definitions`)."""
    path = Path(product_path)
    plan = floe.plan(path, env=env)
    translator = translator or DagsterDbtTranslator()
    product_dir = plan.preparation.compiled.product_dir.resolve()
    manifest = json.loads((product_dir / PLAN_DIR / "target" / "manifest.json").read_text(encoding="utf-8"))
    built = [t for t in plan.transforms if t.nodes]
    return [
        _transform_asset(
            path,
            env,
            plan.preparation.product,
            t.name,
            t.compute,
            t.engine,
            {uid: translator.get_asset_spec(manifest, uid, None) for uid in t.nodes},
        )
        for t in built
    ]


def _transform_asset(
    path: Path,
    env: str,
    product: str,
    transform: str,
    compute: str,
    engine: str,
    specs: Mapping[str, dg.AssetSpec],
) -> dg.AssetsDefinition:
    tags = {"floe/compute": compute, "floe/engine": engine}
    ours = {
        uid: dg.AssetSpec(
            key=spec.key,
            deps=spec.deps,
            description=spec.description,
            group_name=transform,
            tags=tags,
            kinds={"dbt", engine},
            metadata={"floe/transform": transform, "dagster_dbt/unique_id": uid},
        )
        for uid, spec in specs.items()
    }

    @dg.multi_asset(
        name=f"{product}__{transform}",
        specs=list(ours.values()),
        can_subset=False,
        description=f"floe transform {transform!r} of {product!r} on compute {compute!r} ({engine})",
    )
    def _materialize(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[Any]]:
        report = floe.run(path, env=env, select=[transform], progress=_Log(context.log))  # type: ignore[arg-type]
        done = report.get(transform)
        if done.status != "success":
            raise dg.Failure(
                description=f"floe transform {transform!r} {done.status}: {done.message}",
                metadata={"floe/compute": compute, "floe/engine": engine},
            )
        results = {r.unique_id: r for r in done.results}
        for uid, spec in ours.items():
            result = results.get(uid)
            metadata: dict[str, Any] = {
                "floe/compute": compute,
                "floe/engine": engine,
                "floe/environment": env,
                "floe/namespace": report.namespace,
            }
            if result is not None:
                metadata.update({"floe/status": result.status, "floe/seconds": result.seconds})
                if result.relation:
                    metadata["dagster/table_name"] = result.relation
            yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)

    return _materialize


class _Log(io.TextIOBase):
    """A text stream whose lines go to Dagster's log (what ``floe run`` prints as it goes)."""

    def __init__(self, log: Any) -> None:
        super().__init__()
        self._log = log
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._log.info(line)
        return len(text)
