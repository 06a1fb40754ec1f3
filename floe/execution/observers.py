"""What a ``floe run`` tells those who watch it: one observer interface, called at the run's edge.

The runner calls every observer at the same points: the run started (the plan's preparation and
the report it fills), the plan was completed with dbt's graph, the catalog serves, a transform
started, a dbt node started and finished, a transform finished, and the run finished (before the
catalog stops, so an observer may still read it). :class:`~floe.execution.progress.Progress`
prints lines at these points; :mod:`floe.lineage` turns them into OpenLineage events. An observer
only watches: what it raises is reported once and never changes the run (:class:`Observers`).

Importing this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floe.execution.plan import Preparation, RunPlan
    from floe.execution.report import NodeResult, RunReport, TransformReport
    from floe.model import CatalogConfig


class RunObserver:
    """Watches a run. Every method does nothing here: subclasses override those they need.

    Calls come from the run's thread, in this order: :meth:`run_started`; :meth:`plan_completed`
    (unless the run fails before, while parsing); :meth:`catalog_ready`; then, per transform,
    :meth:`transform_started`, its nodes' :meth:`node_started`/:meth:`node_finished`,
    :meth:`transform_finished` (a skipped transform gets only the last); and :meth:`run_finished`.
    """

    def run_started(self, preparation: Preparation, report: RunReport) -> None:
        """The run took its lock; nothing was built yet."""

    def plan_completed(self, plan: RunPlan) -> None:
        """The plan is complete with dbt's graph: the transforms, their nodes, the crossings."""

    def catalog_ready(self, catalog: CatalogConfig) -> None:
        """The catalog serves at ``catalog.uri`` (the embedded catalog's port is known from here)."""

    def transform_started(self, report: TransformReport) -> None:
        """A transform's build started on its compute."""

    def node_started(self, transform: str, unique_id: str) -> None:
        """dbt started a node of ``transform``."""

    def node_finished(self, transform: str, result: NodeResult) -> None:
        """dbt finished a node of ``transform`` (its relation, SQL and message come with the
        transform's results at :meth:`transform_finished`)."""

    def transform_finished(self, report: TransformReport) -> None:
        """A transform reached its final status (its ``results`` hold dbt's node results)."""

    def run_finished(self, report: RunReport, error: BaseException | None) -> None:
        """The run ended: every transform settled, or ``error`` stopped it (an interruption, a
        problem floe raises). Called while the catalog still serves."""


class Observers(RunObserver):
    """Several observers as one: each call goes to each, in order.

    An observer that raises is reported once through ``report`` (its class and the error) and
    called no more in this run: watching never fails or changes the run.
    """

    def __init__(self, observers: Iterable[RunObserver], report: Callable[[str], None] | None = None) -> None:
        self.observers = list(observers)
        self._report = report
        self._broken: set[int] = set()
        self._lock = threading.Lock()

    def _each(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            if id(observer) in self._broken:
                continue
            try:
                getattr(observer, method)(*args)
            except Exception as exc:  # noqa: BLE001 - an observer never fails the run
                with self._lock:
                    self._broken.add(id(observer))
                if self._report is not None:
                    self._report(
                        f"note: {type(observer).__name__} stopped watching this run: "
                        f"{type(exc).__name__}: {exc}"
                    )

    def run_started(self, preparation: Preparation, report: RunReport) -> None:
        self._each("run_started", preparation, report)

    def plan_completed(self, plan: RunPlan) -> None:
        self._each("plan_completed", plan)

    def catalog_ready(self, catalog: CatalogConfig) -> None:
        self._each("catalog_ready", catalog)

    def transform_started(self, report: TransformReport) -> None:
        self._each("transform_started", report)

    def node_started(self, transform: str, unique_id: str) -> None:
        self._each("node_started", transform, unique_id)

    def node_finished(self, transform: str, result: NodeResult) -> None:
        self._each("node_finished", transform, result)

    def transform_finished(self, report: TransformReport) -> None:
        self._each("transform_finished", report)

    def run_finished(self, report: RunReport, error: BaseException | None) -> None:
        self._each("run_finished", report, error)
