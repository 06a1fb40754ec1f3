"""The OpenLineage events of a run, made with the client's generated classes.

Three levels of jobs, each run tied to the one above by the parent run facet (with the root run):

- the run of the product: job ``<product>.<environment>``;
- each transform: job ``<product>.<environment>.<transform>``, parent the product's run;
- each dbt node (models, seeds, snapshots, tests): job ``<product>.<environment>.<unique id>``,
  parent its transform's run. A node's COMPLETE/FAIL event has its inputs (the nodes and sources
  it reads) and outputs (its relation) with the schema facet (the catalog's columns, else those the
  project declares), and, for a model, the SQL dbt ran.

Event times are when things happened (a node's end is its start plus dbt's execution time).
This module makes events from what the run reports; it sends nothing and reads only through the
``locate`` function it is given (:class:`floe.lineage.observer.CatalogTables`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    catalog_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    symlinks_dataset,
)
from openlineage.client.uuid import generate_new_uuid

from floe.lineage.facets import FloeComputeRunFacet, FloeHandoffsRunFacet, FloeRunFacet
from floe.lineage.naming import DatasetName, catalog_namespace, own_warehouse

PRODUCER = "https://floe.dev/floe"
NODE_JOB_TYPES = {
    "model": "MODEL",
    "seed": "SEED",
    "snapshot": "SNAPSHOT",
    "test": "TEST",
    "unit_test": "TEST",
}
FAILED_NODE = ("error", "fail", "runtime error")
SKIPPED_NODE = ("skipped",)


@attrs.frozen
class Column:
    name: str
    type: str | None = None
    description: str | None = None


@attrs.frozen
class Located:
    """A table as lineage names it: its dataset, and what the catalog says of it."""

    dataset: DatasetName
    columns: tuple[Column, ...] | None = None
    """The table's columns as its catalog has them (``None``: not known)."""
    catalog: Mapping[str, Any] | None = None
    """For a table of the shared catalog: the catalog (name, uri, warehouse) and the table's name there."""


Locate = Callable[[str, str, str, bool], Located]
"""``(database, schema, table, in_catalog) → Located``."""


@attrs.frozen
class ComputeInfo:
    name: str
    engine: str
    version: str
    distribution: str
    dbt_adapter: str
    in_place: bool
    how: str
    allowed: tuple[str, ...]


def at(timestamp: float) -> str:
    """An ISO 8601 time with its zone, as OpenLineage wants ``eventTime``."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def new_run_id() -> str:
    return str(generate_new_uuid())


class Events:
    """The events of one floe run; holds the run ids of the run, its transforms and nodes."""

    def __init__(
        self,
        namespace: str,
        product: str,
        environment: str,
        floe_version: str,
        computes: Mapping[str, ComputeInfo],
        run_facet: Mapping[str, Any],
    ) -> None:
        self.namespace = namespace
        self.prefix = f"{product}.{environment}"
        self.floe_version = floe_version
        self.computes = dict(computes)
        self.run_facet = dict(run_facet)
        self.run_id = new_run_id()
        self.transform_ids: dict[str, str] = {}
        self.node_ids: dict[str, str] = {}

    # -- jobs and runs ------------------------------------------------------------------------------

    def _job(
        self, name: str, integration: str, job_type: str, facets: Mapping[str, Any] | None = None
    ) -> Job:
        all_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration=integration, jobType=job_type, producer=PRODUCER
            ),
        }
        all_facets.update(facets or {})
        return Job(namespace=self.namespace, name=name, facets=all_facets)

    def _parent(self, run_id: str, job: str) -> parent_run.ParentRunFacet:
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=self.namespace, name=job),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=self.run_id),
                job=parent_run.RootJob(namespace=self.namespace, name=self.prefix),
            ),
            producer=PRODUCER,
        )

    def _event(
        self,
        state: RunState,
        when: float,
        run_id: str,
        job: Job,
        facets: Mapping[str, Any],
        inputs: Sequence[InputDataset] = (),
        outputs: Sequence[OutputDataset] = (),
    ) -> RunEvent:
        return RunEvent(
            eventType=state,
            eventTime=at(when),
            run=Run(runId=run_id, facets=dict(facets)),
            job=job,
            inputs=list(inputs),
            outputs=list(outputs),
            producer=PRODUCER,
        )

    def _engine(self) -> processing_engine_run.ProcessingEngineRunFacet:
        from openlineage.client import __version__ as client_version

        return processing_engine_run.ProcessingEngineRunFacet(
            version=self.floe_version,
            name="floe",
            openlineageAdapterVersion=client_version,
            producer=PRODUCER,
        )

    def _compute(self, name: str) -> FloeComputeRunFacet:
        c = self.computes[name]
        return FloeComputeRunFacet(
            compute=c.name,
            engine=c.engine,
            engineVersion=c.version,
            distribution=c.distribution,
            dbtAdapter=c.dbt_adapter,
            catalogAccess={"inPlace": c.in_place, "how": c.how},
            allowedBy=list(c.allowed),
            producer=PRODUCER,
        )

    @staticmethod
    def _error(message: str) -> error_message_run.ErrorMessageRunFacet:
        return error_message_run.ErrorMessageRunFacet(
            message=message or "failed", programmingLanguage="SQL", producer=PRODUCER
        )

    # -- the product's run --------------------------------------------------------------------------

    def run_started(self, when: float) -> RunEvent:
        facets = {
            "processing_engine": self._engine(),
            "floe_run": FloeRunFacet(producer=PRODUCER, **self.run_facet),
        }
        return self._event(RunState.START, when, self.run_id, self._job(self.prefix, "FLOE", "JOB"), facets)

    def run_finished(self, when: float, state: RunState, message: str = "") -> RunEvent:
        facets: dict[str, Any] = {
            "processing_engine": self._engine(),
            "floe_run": FloeRunFacet(producer=PRODUCER, **self.run_facet),
        }
        if state != RunState.COMPLETE:
            facets["errorMessage"] = self._error(message)
        return self._event(state, when, self.run_id, self._job(self.prefix, "FLOE", "JOB"), facets)

    # -- transforms ---------------------------------------------------------------------------------

    def _transform_job(self, name: str) -> Job:
        return self._job(f"{self.prefix}.{name}", "FLOE", "TRANSFORM")

    def transform_started(self, when: float, name: str, compute: str) -> RunEvent:
        run_id = self.transform_ids.setdefault(name, new_run_id())
        facets = {"parent": self._parent(self.run_id, self.prefix), "floe_compute": self._compute(compute)}
        return self._event(RunState.START, when, run_id, self._transform_job(name), facets)

    def transform_finished(
        self,
        when: float,
        name: str,
        compute: str,
        state: RunState,
        message: str,
        handoffs: Sequence[Mapping[str, Any]],
    ) -> list[RunEvent]:
        """The transform's end (a transform never started, skipped, gets its START first)."""
        events = []
        if name not in self.transform_ids:
            events.append(self.transform_started(when, name, compute))
        facets: dict[str, Any] = {
            "parent": self._parent(self.run_id, self.prefix),
            "floe_compute": self._compute(compute),
        }
        if handoffs:
            facets["floe_handoffs"] = FloeHandoffsRunFacet(
                handoffs=[dict(h) for h in handoffs], producer=PRODUCER
            )
        if state != RunState.COMPLETE:
            facets["errorMessage"] = self._error(message)
        events.append(self._event(state, when, self.transform_ids[name], self._transform_job(name), facets))
        return events

    # -- nodes --------------------------------------------------------------------------------------

    def _node_job(
        self, unique_id: str, resource_type: str, sql: str | None = None, dialect: str | None = None
    ) -> Job:
        facets: dict[str, Any] = {}
        if sql:
            facets["sql"] = sql_job.SQLJobFacet(query=sql, dialect=dialect, producer=PRODUCER)
        return self._job(
            f"{self.prefix}.{unique_id}", "DBT", NODE_JOB_TYPES.get(resource_type, "NODE"), facets
        )

    def node_started(self, when: float, transform: str, compute: str, unique_id: str) -> RunEvent:
        run_id = self.node_ids.setdefault(unique_id, new_run_id())
        parent_id = self.transform_ids.setdefault(transform, new_run_id())
        facets = {
            "parent": self._parent(parent_id, f"{self.prefix}.{transform}"),
            "floe_compute": self._compute(compute),
        }
        return self._event(
            RunState.START, when, run_id, self._node_job(unique_id, unique_id.split(".", 1)[0]), facets
        )

    def node_finished(
        self,
        when: float,
        transform: str,
        compute: str,
        unique_id: str,
        resource_type: str,
        status: str,
        message: str,
        sql: str | None,
        inputs: Iterable[Located],
        outputs: Iterable[Located],
        started: float,
    ) -> list[RunEvent]:
        events = []
        if unique_id not in self.node_ids:
            events.append(self.node_started(started, transform, compute, unique_id))
        state = (
            RunState.FAIL
            if status in FAILED_NODE
            else RunState.ABORT
            if status in SKIPPED_NODE
            else RunState.COMPLETE
        )
        facets: dict[str, Any] = {
            "parent": self._parent(self.transform_ids[transform], f"{self.prefix}.{transform}"),
            "floe_compute": self._compute(compute),
        }
        if state != RunState.COMPLETE:
            facets["errorMessage"] = self._error(message or status)
        job = self._node_job(unique_id, resource_type, sql, self.computes[compute].dbt_adapter)
        events.append(
            self._event(
                state,
                when,
                self.node_ids[unique_id],
                job,
                facets,
                [
                    InputDataset(namespace=d.dataset.namespace, name=d.dataset.name, facets=dataset_facets(d))
                    for d in inputs
                ],
                [
                    OutputDataset(
                        namespace=d.dataset.namespace, name=d.dataset.name, facets=dataset_facets(d)
                    )
                    for d in outputs
                ],
            )
        )
        return events


def dataset_facets(located: Located) -> dict[str, Any]:
    """The schema facet (when the columns are known) and, for a table of the shared catalog, the
    symlink to the catalog's name for it and the catalog facet."""
    facets: dict[str, Any] = {}
    if located.columns is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description)
                for c in located.columns
            ],
            producer=PRODUCER,
        )
    catalog = located.catalog
    if catalog is not None:
        facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[
                symlinks_dataset.Identifier(
                    namespace=catalog_namespace(catalog["uri"]), name=catalog["table"], type="TABLE"
                )
            ],
            producer=PRODUCER,
        )
        facets["catalog"] = catalog_dataset.CatalogDatasetFacet(
            framework="iceberg",
            type="rest",
            name=catalog["name"],
            metadataUri=catalog_namespace(catalog["uri"]),
            warehouseUri=catalog.get("warehouse"),
            source="floe",
            producer=PRODUCER,
        )
    return facets


def warehouse_located(
    engine: str, compute: str, relation: str, columns: tuple[Column, ...] | None
) -> Located:
    return Located(own_warehouse(engine, compute, relation), columns)
