"""The run's progress lines and its closing summary: the first observer of every ``floe run``.

It watches the run as any observer does (:mod:`floe.execution.observers`) and prints what it
sees; what the run did is held by :mod:`floe.execution.report`, which knows nothing of observers.
"""

from __future__ import annotations

import threading
from typing import IO

from floe.execution.observers import RunObserver
from floe.execution.report import SKIPPED, SUCCESS, NodeResult, RunReport, TransformReport, human_bytes, table


class Progress(RunObserver):
    """Progress lines as the run goes, and the summary at its end (thread-safe); the run's first
    observer (:mod:`floe.execution.observers`)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        if self.stream is None:
            return
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def transform_started(self, report: TransformReport) -> None:
        kinds: dict[str, int] = {}
        for unique_id in report.nodes:
            kind = unique_id.split(".", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(kinds.items())]
        if report.tests:
            parts.append(f"{report.tests} test{'s' if report.tests != 1 else ''}")
        self.line(
            f"[{report.name}] started on {report.compute} ({report.engine}): "
            f"{', '.join(parts) or 'nothing to build'}"
        )

    def node_finished(self, transform: str, result: NodeResult) -> None:
        seconds = f" ({result.seconds:.1f}s)" if result.seconds else ""
        self.line(f"[{transform}]   {result.resource_type} {result.name}: {result.status}{seconds}")

    def transform_finished(self, report: TransformReport) -> None:
        if report.status == SKIPPED:  # the runner says why, as it settles it
            return
        counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items())) or "nothing built"
        seconds = f" in {report.seconds:.1f}s" if report.seconds is not None else ""
        self.line(f"[{report.name}] {report.status.upper()} on {report.compute}: {counts}{seconds}")
        if report.status != SUCCESS and report.message:
            for text in report.message.splitlines():
                self.line(f"[{report.name}]   {text}")

    def summary(self, report: RunReport) -> None:
        rows = [
            {
                "transform": t.name,
                "compute": t.compute,
                "engine": t.engine,
                "models": str(t.models),
                "status": t.status,
                "seconds": "-" if t.seconds is None else f"{t.seconds:.1f}",
            }
            for t in report.transforms
        ]
        self.line("")
        self.line(table(rows, ["transform", "compute", "engine", "models", "status", "seconds"]))
        if report.bridges:
            bridges = [
                {
                    "bridge": b.kind,
                    "model": b.name,
                    "from": b.from_compute,
                    "to": b.to_compute,
                    "rows": f"{b.rows:,}",
                    "bytes": human_bytes(b.bytes),
                    "seconds": f"{b.seconds:.2f}",
                    "status": b.status,
                }
                for b in report.bridges
            ]
            self.line("")
            self.line(table(bridges, ["bridge", "model", "from", "to", "rows", "bytes", "seconds", "status"]))
        ok = sum(t.status == SUCCESS for t in report.transforms)
        verdict = "succeeded" if report.success else "FAILED"
        seconds = f" in {report.seconds:.1f}s" if report.seconds is not None else ""
        self.line(
            f"floe run {verdict}{seconds}: {ok} of {len(report.transforms)} transform(s) succeeded "
            f"(namespace {report.catalog.get('name')}.{report.namespace})"
        )
