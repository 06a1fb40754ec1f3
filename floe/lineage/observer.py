"""The observer that turns a ``floe run`` into OpenLineage events (see :mod:`floe.lineage`).

It is given to every run by :func:`floe.run` and does nothing unless lineage is configured
(:mod:`floe.lineage.settings`: by the governing manifests' ``lineage:``, which the compiled product
carries, or by the OpenLineage client's environment). Each call from the run only queues work (:mod:`floe.lineage.emitter`);
making the events (which reads each table's location and schema from the catalog) and sending
them happen on the emitter's thread. At the run's end it waits for them at most the configured
bound, while the catalog still serves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from floe.execution.observers import RunObserver
from floe.lineage.settings import (
    LineageSecretMissing,
    LineageSettings,
    describe,
    make_client,
    secret_names,
    settings,
)

if TYPE_CHECKING:
    from floe.execution.plan import Preparation, RunPlan
    from floe.execution.report import NodeResult, RunReport, TransformReport
    from floe.lineage.emitter import Emitter
    from floe.lineage.events import Column, Events, Located
    from floe.model import CatalogConfig


class LineageObserver(RunObserver):
    """OpenLineage events for a run; inert when lineage is not configured.

    :param report: where the one line about lineage problems goes (the run's progress).
    :param environ: the environment the settings and secrets come from (default: ``os.environ``).
    :param client: a ready OpenLineage client (default: the one the environment configures).
    """

    def __init__(
        self, report: Callable[[str], None], environ: Mapping[str, str] | None = None, client: Any = None
    ) -> None:
        self._report = report
        self._environ = os.environ if environ is None else environ
        self._client = client
        self.settings: LineageSettings | None = None
        self.emitter: Emitter | None = None
        self.waited: float | None = None
        """Seconds the end of the run waited for the events (``None``: lineage was off)."""
        self._events: Events | None = None
        self._tables: CatalogTables | None = None
        self._preparation: Preparation | None = None
        self._plan: RunPlan | None = None
        self._computes: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._relations: dict[str, str] = {}
        self._node_transform: dict[str, str] = {}
        self._secrets: list[str] = []

    # -- the run's calls -----------------------------------------------------------------------------

    def run_started(self, preparation: Preparation, report: RunReport) -> None:
        compiled = preparation.compiled
        self.settings = settings(
            self._environ, manifest=compiled.lineage, declared_at=compiled.lineage_declared_at
        )
        if not self.settings.enabled and self._client is None:
            return
        try:
            client = (
                self._client
                if self._client is not None
                else make_client(self.settings.manifest, self._environ)
            )
        except LineageSecretMissing as exc:
            self._report(
                f"lineage: {self.settings.why}: {exc}; no events are sent (set it, or ask the platform "
                "team which secret the lineage back end takes)"
            )
            return
        except ImportError:
            self._report(
                f"lineage: {self.settings.why} is set, but openlineage-python is not installed: "
                "no events are sent (pip install 'floe[lineage]')"
            )
            return
        except Exception as exc:  # noqa: BLE001 - a bad configuration never stops the run
            self._report(
                f"lineage: the OpenLineage client could not start ({type(exc).__name__}: {exc}); "
                "no events are sent"
            )
            return
        from floe import __version__
        from floe.lineage.emitter import Emitter
        from floe.lineage.events import ComputeInfo, Events
        from floe.secrets import find_secret_refs, secret_values

        refs = find_secret_refs(attrs.asdict(preparation.catalog.config, recurse=False))
        for name in preparation.computes:
            refs += find_secret_refs(preparation.compute_config(name).config)
        self._secrets = secret_values(refs, self._environ)
        self._secrets += [
            self._environ[name] for name in secret_names(self.settings.manifest) if self._environ.get(name)
        ]
        self.emitter = Emitter(self._send(client), self._redacted_report, describe(client))
        computes = {
            name: ComputeInfo(
                c.name,
                c.engine,
                c.version,
                c.distribution,
                c.dbt_adapter,
                c.access.in_place,
                c.access.how,
                c.allowed,
            )
            for name, c in preparation.computes.items()
        }
        catalog = preparation.catalog
        run_facet = {
            "product": preparation.product,
            "environment": preparation.environment,
            "namespace": preparation.namespace,
            "catalog": {
                "name": catalog.config.name,
                "type": catalog.config.type,
                "uri": None if catalog.embedded else _public(catalog.config.uri),
                "warehouse": catalog.config.warehouse,
                "embedded": catalog.embedded,
            },
        }
        self._events = events = Events(
            self.settings.namespace,
            preparation.product,
            preparation.environment,
            __version__,
            computes,
            run_facet,
        )
        self._preparation = preparation
        self._computes = {t.name: t.compute for t in preparation.inputs}
        self._tables = CatalogTables(catalog.config, self._environ)
        when = report.started_at or time.time()
        self.emitter.submit(lambda: [events.run_started(when)])

    def plan_completed(self, plan: RunPlan) -> None:
        self._plan = plan

    def catalog_ready(self, catalog: CatalogConfig) -> None:
        if self._tables is not None:
            self._tables.ready(catalog)

    def transform_started(self, report: TransformReport) -> None:
        events, emitter = self._events, self.emitter
        if events is None or emitter is None:
            return
        name, compute, when = report.name, report.compute, report.started_at or time.time()
        emitter.submit(lambda: [events.transform_started(when, name, compute)])

    def node_started(self, transform: str, unique_id: str) -> None:
        events, emitter = self._events, self.emitter
        if events is None or emitter is None:
            return
        when = self._started[unique_id] = time.time()
        self._node_transform[unique_id] = transform
        compute = self._computes[transform]
        emitter.submit(lambda: [events.node_started(when, transform, compute, unique_id)])

    def transform_finished(self, report: TransformReport) -> None:
        events, emitter = self._events, self.emitter
        if events is None or emitter is None:
            return
        from openlineage.client.event_v2 import RunState

        name, compute, status, message = report.name, report.compute, str(report.status), report.message
        finished = report.finished_at or time.time()
        results = list(report.results)
        for result in results:
            if result.relation:
                self._relations[result.unique_id] = result.relation
        handoffs = self._handoffs(name)
        state = {"success": RunState.COMPLETE, "skipped": RunState.ABORT}.get(status, RunState.FAIL)
        started = dict(self._started)
        ended = {r.unique_id for r in results}
        unfinished = [
            uid for uid, owner in self._node_transform.items() if owner == name and uid not in ended
        ]

        def work() -> list[Any]:
            made = []
            for unique_id in unfinished:  # started, then the transform settled without its result
                made += events.node_finished(
                    finished,
                    name,
                    compute,
                    unique_id,
                    unique_id.split(".", 1)[0],
                    "skipped",
                    message,
                    None,
                    [],
                    [],
                    started[unique_id],
                )
            for result in results:
                begin = started.get(result.unique_id, finished - result.seconds)
                made += events.node_finished(
                    begin + result.seconds if result.unique_id in started else finished,
                    name,
                    compute,
                    result.unique_id,
                    result.resource_type,
                    result.status,
                    result.message,
                    result.sql,
                    self._inputs(result, compute),
                    self._outputs(result, compute),
                    begin,
                )
            return made + events.transform_finished(finished, name, compute, state, message, handoffs)

        emitter.submit(work)

    def run_finished(self, report: RunReport, error: BaseException | None) -> None:
        events, emitter = self._events, self.emitter
        if events is None or emitter is None or self.settings is None:
            return
        from openlineage.client.event_v2 import RunState

        when = report.finished_at or time.time()
        if isinstance(error, KeyboardInterrupt):
            state, message = RunState.ABORT, f"interrupted: {error}"
        elif error is not None:
            state, message = RunState.FAIL, f"{type(error).__name__}: {error}"
        elif report.success:
            state, message = RunState.COMPLETE, ""
        else:
            failed = [t for t in report.transforms if t.status != "success"]
            state = RunState.FAIL
            message = "; ".join(f"transform {t.name!r} {t.status}" for t in failed)
        emitter.submit(lambda: [events.run_finished(when, state, message)])
        self.waited = emitter.close(self.settings.timeout)
        if self._tables is not None:
            self._tables.close()

    # -- datasets -------------------------------------------------------------------------------------

    def _in_catalog(self, unique_id: str, reading_compute: str) -> bool:
        """Whether a node's (or source's) relation is a table of the shared catalog: a node's is
        where its transform's compute builds; a source is read where the reading compute reads."""
        assert self._preparation is not None
        owner = self._plan.graph.owners.get(unique_id) if self._plan is not None else None
        compute = self._computes.get(owner, reading_compute) if owner else reading_compute
        return self._preparation.computes[compute].access.in_place

    def _inputs(self, result: NodeResult, compute: str) -> list[Located]:
        assert self._tables is not None
        found = []
        for parent in result.parents:
            in_catalog = self._in_catalog(parent.unique_id, compute)
            known = self._relations.get(parent.unique_id)
            if known is not None:
                database, schema, table = known.split(".", 2)
            elif parent.schema and parent.identifier:
                database, schema, table = parent.database or "", parent.schema, parent.identifier
            else:
                continue
            found.append(
                self._tables.locate(database, schema, table, in_catalog, self._engine(compute), compute)
            )
        return found

    def _outputs(self, result: NodeResult, compute: str) -> list[Located]:
        assert self._tables is not None
        if not result.relation:
            return []
        from floe.lineage.events import Column

        database, schema, table = result.relation.split(".", 2)
        declared = tuple(Column(c.name, c.data_type, c.description) for c in result.columns) or None
        in_catalog = self._in_catalog(result.unique_id, compute)
        return [
            self._tables.locate(database, schema, table, in_catalog, self._engine(compute), compute, declared)
        ]

    def _engine(self, compute: str) -> str:
        assert self._preparation is not None
        return self._preparation.computes[compute].engine

    def _handoffs(self, transform: str) -> list[dict[str, Any]]:
        """The plan's crossings this transform takes part in, as the plan reports them, with the
        relations each hands over."""
        if self._plan is None:
            return []
        found = []
        for crossing in self._plan.crossings:
            if transform not in (crossing.upstream, crossing.downstream):
                continue
            data = crossing.to_json()
            data["relations"] = sorted({self._relations.get(read, read) for _, read in crossing.refs})
            found.append(data)
        return found

    def _redacted_report(self, line: str) -> None:
        """The report, with the run's secrets redacted (a back end's error may quote a request)."""
        from floe.secrets import redact

        self._report(redact(line, self._secrets) if self._secrets else line)

    def _send(self, client: Any) -> Callable[[Any], None]:
        secrets = self._secrets

        def send(event: Any) -> None:
            if secrets:
                from openlineage.client.serde import Serde

                if any(secret in Serde.to_json(event) for secret in secrets):
                    _scrub(event, secrets)
            client.emit(event)

        return send


class CatalogTables:
    """Where each table is and what its columns are, as the run's catalog says (pyiceberg, read on
    the emitter's thread while the catalog serves); what the catalog cannot say is named from the
    relation alone."""

    def __init__(self, catalog: CatalogConfig, environ: Mapping[str, str]) -> None:
        self.catalog = catalog
        self._environ = environ
        self._client: Any = None
        self._cache: dict[tuple[str, str], Located] = {}
        self._lock = threading.Lock()

    def ready(self, catalog: CatalogConfig) -> None:
        with self._lock:
            self.catalog = catalog

    def locate(
        self,
        database: str,
        schema: str,
        table: str,
        in_catalog: bool,
        engine: str,
        compute: str,
        declared: tuple[Column, ...] | None = None,
    ) -> Located:
        from floe.lineage.events import Located
        from floe.lineage.naming import DatasetName, catalog_namespace, own_warehouse

        if not in_catalog:
            return Located(own_warehouse(engine, compute, f"{database}.{schema}.{table}"), declared)
        found = self._cache.get((schema, table))
        if found is not None:
            return found
        with self._lock:
            catalog = self.catalog
        info = {
            "name": catalog.name,
            "uri": catalog.uri or "",
            "warehouse": catalog.warehouse,
            "table": f"{schema}.{table}",
        }
        loaded = self._load(catalog, schema, table)
        if loaded is None:  # not in the catalog (a failed build), or the catalog did not answer
            return Located(
                DatasetName(catalog_namespace(catalog.uri or ""), f"{schema}.{table}"), declared, info
            )
        location, columns = loaded
        from floe.lineage.naming import from_location

        found = Located(from_location(location), columns or declared, info)
        self._cache[(schema, table)] = found
        return found

    def _load(self, catalog: CatalogConfig, schema: str, table: str) -> tuple[str, tuple[Column, ...]] | None:
        from floe.lineage.events import Column

        try:
            if self._client is None:
                from floe.execution.catalog_client import client

                self._client = client(catalog, self._environ)
            loaded = self._client.load_table((schema, table))
        except Exception:  # noqa: BLE001 - the table's name stands in for its location
            return None
        fields = tuple(Column(f.name, str(f.field_type), f.doc) for f in loaded.schema().fields)
        return str(loaded.location()), fields

    def close(self) -> None:
        self._client = None


def _public(uri: str | None) -> str | None:
    if uri is None:
        return None
    from floe.lineage.naming import catalog_namespace

    return catalog_namespace(uri)


def _scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret in its strings redacted (attrs objects are changed in place)."""
    from floe.secrets import redact

    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            setattr(value, field.name, _scrub(getattr(value, field.name), secrets))
    return value
