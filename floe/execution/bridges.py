"""Bridged hand-offs: a model carried between the run's Iceberg catalog and an engine's own warehouse.

A ref between two computes whose workers both attach the catalog reads the upstream table in
place. When one of them builds in its own warehouse (``CatalogAccess.bridged``), floe carries the
table, in its own process, through the catalog, so that every consumer reads one Iceberg table:

- **publish**: after a transform on such a compute built a model that another compute refs, the
  engine reads it as Arrow (``floe_read_arrow``), floe makes each column's type an Iceberg type
  without changing a value (:mod:`floe.execution.iceberg_types`, or the run fails naming the
  column), and commits it as ``<catalog>.<schema>.<model>`` in one commit (creating the table, or
  overwriting its rows; a table whose columns changed is replaced);
- **load**: before a transform on such a compute builds, each model of another compute it refs is
  read from the catalog, at its current snapshot, and loaded by the engine (``floe_load_arrow``)
  under the relation ``ref()`` resolves to in that compute's dbt project; the engine loads into a
  staging table and swaps it in. A load happens in every run that builds the transform: the copy
  is never older than the catalog's table.

:func:`steps` decides which models each transform publishes after it builds and loads before it
builds, from the plan's crossings (pure); :func:`publish` and :func:`load` carry one model (I/O:
the engine's client, pyiceberg). The runner runs them in threads and reports each as a
:class:`BridgeReport` (rows, bytes, seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from floe.errors import FloeError, Problem
from floe.execution.report import LOAD, PUBLISH, BridgeReport
from floe.model import CatalogConfig, ComputeConfig, Relation

if TYPE_CHECKING:
    import pyarrow

    from floe.execution.plan import Crossing
    from floe.execution.progress import Progress
    from floe.plugins import Engine

PUBLISHED_BY = "floe.published-from"
"""The Iceberg table property saying which compute and relation a published table comes from."""


@attrs.frozen
class Step:
    """One model to carry: published after ``transform`` builds, or loaded before it builds."""

    kind: str
    """:data:`PUBLISH` or :data:`LOAD`."""
    transform: str
    compute: str
    """The compute whose warehouse it is read from (publish) or loaded into (load)."""
    model: str
    """The unique id of the model (or seed, snapshot) carried."""
    other: str
    """The compute at the other end: a consumer (publish) or the one that built it (load)."""


def steps(crossings: Sequence[Crossing]) -> tuple[dict[str, list[Step]], dict[str, list[Step]]]:
    """``(before, after)``: by transform, the models to load before it builds and to publish after.

    A model several transforms ref is published once, after the transform that builds it; it is
    loaded once into each transform that reads it from another compute (in its order of refs).
    """
    before: dict[str, list[Step]] = {}
    after: dict[str, list[Step]] = {}
    for cross in crossings:
        for _, read in cross.refs:
            if cross.publish and not any(s.model == read for s in after.get(cross.upstream, [])):
                after.setdefault(cross.upstream, []).append(
                    Step(PUBLISH, cross.upstream, cross.upstream_compute, read, cross.downstream_compute)
                )
            if cross.load and not any(s.model == read for s in before.get(cross.downstream, [])):
                before.setdefault(cross.downstream, []).append(
                    Step(LOAD, cross.downstream, cross.downstream_compute, read, cross.upstream_compute)
                )
    return before, after


def iceberg_name(catalog: CatalogConfig, identifier: tuple[str, str]) -> str:
    return f"{catalog.name}.{identifier[0]}.{identifier[1]}"


# -- carrying one model (I/O) ------------------------------------------------------------------------


@attrs.frozen
class Carried:
    rows: int
    bytes: int


def publish(
    engine: Engine,
    compute: ComputeConfig,
    relation: Relation,
    catalog: CatalogConfig,
    identifier: tuple[str, str],
    where: str,
) -> Carried:
    """Read ``relation`` from the compute's warehouse and commit it as the Iceberg table ``identifier``.

    :param where: the model, for messages (``model 'customers' of compute 'pg'``).
    :raises FloeError: the engine could not read it, a column's type has no exact Iceberg type
        (named), or the catalog refused the commit.
    """
    from floe.execution.iceberg_types import for_iceberg

    data = for_iceberg(engine.read_arrow(compute, relation), where)
    origin = f"compute {compute.name!r} ({compute.engine}): {relation}"
    _commit(_client(catalog), identifier, data, {PUBLISHED_BY: origin})
    return Carried(data.num_rows, data.nbytes)


def load(
    engine: Engine,
    compute: ComputeConfig,
    relation: Relation,
    catalog: CatalogConfig,
    identifier: tuple[str, str],
) -> Carried:
    """Load the Iceberg table ``identifier``, at its current snapshot, into ``relation`` of the
    compute's warehouse through the engine's ``floe_load_arrow``.

    :raises FloeError: the table is not in the catalog, the engine could not load it, or the engine
        reports another number of rows than floe sent.
    """
    import pyarrow
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = _client(catalog).load_table(identifier)
    except NoSuchTableError:
        raise FloeError(
            [
                Problem(
                    f"the catalog has no table {iceberg_name(catalog, identifier)} to load into {relation}",
                    fix="run the transform that builds it first (floe run without --select, or select it too)",
                )
            ]
        ) from None
    source = table.scan().to_arrow_batch_reader()
    sent = [0, 0]
    broken: list[BaseException] = []

    def counted() -> Iterator[pyarrow.RecordBatch]:
        try:
            for batch in source:
                sent[0] += batch.num_rows
                sent[1] += batch.nbytes
                yield batch
        except Exception as exc:
            broken.append(exc)
            raise

    try:
        rows = engine.load_arrow(
            compute, relation, pyarrow.RecordBatchReader.from_batches(source.schema, counted())
        )
    except FloeError:
        if broken:  # the engine saw the stream fail: what failed is floe's read of the catalog
            raise FloeError(
                [
                    Problem(
                        f"reading {iceberg_name(catalog, identifier)} from the catalog failed while loading it into "
                        f"{relation}: {type(broken[0]).__name__}: {broken[0]}",
                        fix=f"{relation} keeps what it held; check that the catalog's table and its data files are readable",
                    )
                ]
            ) from None
        raise
    if rows != sent[0]:
        raise FloeError(
            [
                Problem(
                    f"compute {compute.name!r} (engine {compute.engine}) reports {rows} row(s) in {relation} after "
                    f"loading {sent[0]} from {iceberg_name(catalog, identifier)}",
                    fix="the engine's floe_load_arrow must replace the table's rows and return their number; report it "
                    "to the engine's authors",
                )
            ]
        )
    return Carried(sent[0], sent[1])


def _client(catalog: CatalogConfig) -> Any:
    from floe.execution.catalog_client import client

    return client(catalog)


def _commit(
    client: Any, identifier: tuple[str, str], data: pyarrow.Table, properties: Mapping[str, str]
) -> None:
    """``data`` as the table ``identifier``, in one commit: created with its rows, or its rows
    overwritten; a table whose columns differ is dropped and created anew."""
    from pyiceberg.exceptions import NoSuchTableError

    client.create_namespace_if_not_exists(identifier[0])
    try:
        table = client.load_table(identifier)
    except NoSuchTableError:
        table = None
    if table is not None and _same_columns(table.schema().as_arrow(), data.schema):
        with table.transaction() as transaction:
            transaction.overwrite(data)
            transaction.set_properties(dict(properties))
        return
    if table is not None:
        client.drop_table(identifier)
    transaction = client.create_table_transaction(identifier, schema=data.schema, properties=dict(properties))
    transaction.append(data)
    transaction.commit_transaction()


def _same_columns(current: pyarrow.Schema, new: pyarrow.Schema) -> bool:
    """Whether a table with the columns ``current`` can take rows of ``new`` as they are."""
    from floe.execution.iceberg_types import target_type

    if current.names != new.names:
        return False
    return all(target_type(a.type) == target_type(b.type) for a, b in zip(current, new, strict=True))


def timed(action: Callable[[], Carried]) -> tuple[Carried | None, float, str]:
    """Run ``action()``: what it carried, its seconds, and the error's text when it failed."""
    clock = time.monotonic()
    try:
        carried = action()
    except FloeError as exc:
        return None, time.monotonic() - clock, exc.render()
    except Exception as exc:  # noqa: BLE001 - a client's error, reported with the bridge
        return None, time.monotonic() - clock, f"{type(exc).__name__}: {exc}"
    return carried, time.monotonic() - clock, ""


# -- in a run: which steps, when, in threads ----------------------------------------------------------


class RunBridges:
    """The bridges of one run: the steps of each transform, carried in threads.

    The runner tells it the plan's crossings, each worker's parse (a load needs the relation the
    model resolves to in the downstream compute's project, which only that compute's dbt knows),
    and when a build is about to start or has finished; each batch of steps runs in a thread of
    its own, which hands its :class:`~floe.execution.report.BridgeReport` list to ``done`` (the
    runner puts it on its queue, so that the scheduler decides in one thread).

    :param engines: the engine of each compute (by compute name).
    :param computes: the configuration of each compute in the run's environment.
    :param secrets: values to redact from messages.
    """

    def __init__(
        self,
        engines: Mapping[str, Engine],
        computes: Mapping[str, ComputeConfig],
        progress: Progress,
        secrets: Sequence[str],
    ) -> None:
        import threading

        self.engines = engines
        self.computes = computes
        self.progress = progress
        self.secrets = list(secrets)
        self.before: dict[str, list[Step]] = {}
        self.after: dict[str, list[Step]] = {}
        self._parses: dict[int, str] = {}
        self._parsed: dict[str, threading.Event] = {}
        self._nodes: dict[str, dict[str, Any]] = {}

    def plan(self, crossings: Sequence[Crossing]) -> None:
        self.before, self.after = steps(crossings)

    # -- what dbt resolved, per compute --------------------------------------------------------

    def parse_started(self, compute: str, request_id: int) -> None:
        import threading

        self._parses[request_id] = compute
        self._parsed.setdefault(compute, threading.Event())

    def note(self, compute: str, message: Mapping[str, Any]) -> None:
        """Record a worker's parse (its nodes, as its compute's project resolves them), or that the
        worker ended without one."""
        kind = message.get("type")
        if kind == "result" and message.get("id") in self._parses:
            owner = self._parses.pop(int(message["id"]))
            if message.get("success"):
                self._nodes[owner] = {str(n["unique_id"]): n for n in message.get("nodes") or []}
            self._parsed[owner].set()
        elif kind == "exit" and compute in self._parsed:
            self._parsed[compute].set()

    def _relation(self, compute: str, model: str) -> tuple[Relation, tuple[str, str]]:
        """The relation ``model`` resolves to in the project of ``compute``, and its Iceberg table."""
        event = self._parsed.get(compute)
        if event is not None:
            event.wait()
        node = self._nodes.get(compute, {}).get(model)
        if node is None or not node.get("schema") or not node.get("alias"):
            raise FloeError(
                [
                    Problem(
                        f"dbt's parse of the project of compute {compute!r} did not resolve {model}",
                        fix="see the compute's dbt log (the transform's log in the run report)",
                    )
                ]
            )
        database = node.get("database")
        relation = Relation(
            None if database is None else str(database), str(node["schema"]), str(node["alias"])
        )
        return relation, (relation.schema, relation.identifier)

    # -- carrying ----------------------------------------------------------------------------

    def loads(self, transforms: Sequence[str]) -> list[Step]:
        return [s for name in transforms for s in self.before.get(name, [])]

    def publishes(self, transforms: Sequence[str]) -> list[Step]:
        return [s for name in transforms for s in self.after.get(name, [])]

    def start(
        self,
        todo: Sequence[Step],
        catalog: CatalogConfig,
        done: Callable[[list[BridgeReport]], None],
        *,
        stop_at_failure: bool,
    ) -> None:
        """Carry ``todo`` in a thread, then call ``done(reports)``."""
        import threading

        def carry() -> None:
            reports = []
            for step in todo:
                report = self.carry(step, catalog)
                reports.append(report)
                self.progress.line(report.line())
                if report.status != "success" and stop_at_failure:
                    break
            done(reports)

        threading.Thread(target=carry, name="floe-run-bridge", daemon=True).start()

    def carry(self, step: Step, catalog: CatalogConfig) -> BridgeReport:
        """One step, reported; its failure is in the report, never raised."""
        from floe.secrets import redact

        compute = self.computes[step.compute]
        engine = self.engines[step.compute]
        where = f"model {step.model.rsplit('.', 1)[-1]!r} of compute {step.compute!r}"
        name = step.model.rsplit(".", 1)[-1]
        source = target = "?"
        try:
            relation, identifier = self._relation(step.compute, step.model)
            if step.kind == PUBLISH:
                source, target = f"{step.compute} {relation}", f"catalog {iceberg_name(catalog, identifier)}"
                carried, seconds, error = timed(
                    lambda: publish(engine, compute, relation, catalog, identifier, where)
                )
            else:
                source, target = f"catalog {iceberg_name(catalog, identifier)}", f"{step.compute} {relation}"
                carried, seconds, error = timed(lambda: load(engine, compute, relation, catalog, identifier))
        except FloeError as exc:
            carried, seconds, error = None, 0.0, exc.render()
        from_compute, to_compute = (
            (step.compute, "catalog") if step.kind == PUBLISH else ("catalog", step.compute)
        )
        report = BridgeReport(
            step.kind, step.transform, step.model, from_compute, to_compute, source, target, seconds=seconds
        )
        if carried is None:
            report.status = "failed"
            report.message = redact(f"{name}: {error}", self.secrets)
        else:
            report.rows, report.bytes = carried.rows, carried.bytes
        return report
