"""The run's Iceberg catalog: which one (:func:`plan_catalog`), and its life during a run (:class:`RunCatalog`).

The manifest's catalog when one is declared (a REST catalog, which floe and the engines reach
over HTTP); otherwise the embedded one (:class:`floe.catalog.rest_server.EmbeddedCatalog`, a real
Iceberg REST catalog on 127.0.0.1 whose SQLite file and warehouse live in
``<product>/.floe/iceberg/``, which ``dbt clean`` does not touch). Every engine attaches to it the
way it attaches to a production REST catalog.

Importing this module imports no pyiceberg: the embedded catalog imports it when it starts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from floe.artifacts import write_atomic
from floe.errors import FloeError, Problem, UnattachableCatalog
from floe.model import CatalogConfig

PORT_FILE = Path("iceberg") / "port"
"""Under the state directory: the port the embedded catalog served on last time."""


@attrs.frozen
class CatalogPlan:
    """The catalog a run will use, known before anything starts."""

    config: CatalogConfig
    """As the engines are told (the embedded catalog's ``uri`` names the port it will try first)."""
    embedded: bool
    root: Path | None = None
    """The embedded catalog's folder (its SQLite file and warehouse)."""

    def to_json(self, uri: str | None = None) -> dict[str, Any]:
        """The catalog for a report; the embedded catalog's ``uri`` only once its port is chosen."""
        if uri is None and not self.embedded:
            uri = self.config.uri
        info: dict[str, Any] = {"name": self.config.name, "type": self.config.type, "uri": uri,
                                "warehouse": self.config.warehouse, "embedded": self.embedded}  # fmt: skip
        if self.root is not None:
            info["path"] = str(self.root)
        return info


def plan_catalog(declared: CatalogConfig | None, state_dir: Path) -> CatalogPlan:
    """The declared catalog, or the embedded one under ``state_dir``; starts nothing.

    :raises UnattachableCatalog: the declared catalog is not a REST catalog with a uri (its key
        names the ``$.catalog`` setting at fault).
    """
    if declared is not None:
        if declared.type != "rest" or not declared.uri:
            key = ("catalog", "type") if declared.type != "rest" else ("catalog", "uri")
            raise UnattachableCatalog(key, [Problem(
                f"the manifest declares a {declared.type} catalog {declared.name!r}"
                + ("" if declared.type != "rest" else " without a uri")
                + ": `floe run` needs an Iceberg REST catalog (with a uri), which floe and the engines reach over HTTP",
                fix="declare the REST endpoint of your catalog, or remove `catalog:` to use the embedded one",
            )])  # fmt: skip
        return CatalogPlan(declared, embedded=False)
    from floe.catalog.rest_server import EmbeddedCatalog  # the standard library only, until it starts

    embedded = EmbeddedCatalog(state_dir)
    port = _last_port(state_dir)
    config = CatalogConfig(type="rest", name=embedded.name, uri=f"http://127.0.0.1:{port}",
                           warehouse=embedded.warehouse)  # fmt: skip
    return CatalogPlan(config, embedded=True, root=embedded.root)


class RunCatalog:
    """The catalog during a run, started while the workers start.

    Starting the embedded catalog (pyiceberg's import, SQLite) takes about as long as a worker's
    start of Python and dbt, and only builds need it: its port is chosen first (the last run's,
    when it is free: the same uri keeps the run profiles the same from run to run, so dbt reuses
    its parse of the project), so the run profiles can name it, then it starts in a thread;
    :meth:`ready` waits for it before the first build.

    With ``namespace``, that thread also creates the run's namespace in the catalog, if missing:
    workers of several computes building at once into a fresh catalog would each create it, and
    the second ``CREATE SCHEMA`` fails on the REST catalog's conflict (409). The embedded catalog
    creates it in-process; a declared one through pyiceberg's REST client, as ``--show`` reads it.

    With ``used=False`` (no compute of the run attaches the catalog: each builds in its own
    warehouse) nothing starts and nothing is created: the engines are still told the planned
    catalog, which none of them reaches.
    """

    def __init__(self, plan: CatalogPlan, state_dir: Path, namespace: str | None = None, used: bool = True) -> None:
        from floe.catalog.rest_server import EmbeddedCatalog

        self.plan = plan
        self.used = used
        self.embedded: EmbeddedCatalog | None = None
        self.seconds = 0.0
        self._state_dir = state_dir
        self._namespace = namespace
        self._error: FloeError | None = None
        self.config = plan.config
        self._thread: threading.Thread | None = None
        if not used:
            self.planned = self.config
            return
        if plan.embedded:
            port = _free_port(_last_port(state_dir))
            self.embedded = EmbeddedCatalog(state_dir, port=port)
            self.config = attrs.evolve(plan.config, uri=f"http://127.0.0.1:{port}")
            target = self._start
        else:
            target = self._create_namespace
        self.planned = self.config
        """The catalog as the run profiles first name it; :meth:`ready` may answer another port."""
        if plan.embedded or namespace is not None:
            self._thread = threading.Thread(target=target, name="floe-run-catalog", daemon=True)
            self._thread.start()

    def _start(self) -> None:
        from floe.catalog.rest_server import EmbeddedCatalog

        clock = time.monotonic()
        embedded = self.embedded
        assert embedded is not None
        try:
            try:
                embedded.start()
            except OSError:  # the port was taken since it was chosen: any port will do
                embedded = self.embedded = EmbeddedCatalog(embedded.state_dir).start()
        except Exception as exc:  # noqa: BLE001 - pyiceberg missing, a read-only disk, a corrupt file…
            self._error = FloeError([Problem(
                f"the embedded Iceberg catalog could not start: {type(exc).__name__}: {exc}",
                fix=f"check that {embedded.root} is writable; pip install 'floe[iceberg]' if pyiceberg is missing",
            )])  # fmt: skip
            return
        finally:
            self.seconds = time.monotonic() - clock
        with contextlib.suppress(OSError):
            write_atomic(self._state_dir / PORT_FILE, embedded.uri.rsplit(":", 1)[1] + "\n")
        self.config = embedded.catalog_config()
        self._create_namespace()

    def _create_namespace(self) -> None:
        if self._namespace is None:
            return
        try:
            if self.embedded is not None:
                self.embedded.create_namespace(self._namespace)
                return
            from floe.execution.show import client

            client(self.config).create_namespace_if_not_exists(self._namespace)
        except Exception:  # noqa: BLE001 - no right to, unreachable…: dbt's own attempt says why
            pass

    def ready(self) -> CatalogConfig:
        """The catalog, serving; its uri may differ from :attr:`planned`'s.

        :raises FloeError: the embedded catalog could not start.
        """
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.config

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.embedded is not None and self.embedded.running:
            self.embedded.stop()

    def to_json(self) -> dict[str, Any]:
        """What the run report says of the catalog (an embedded one that did not start has no uri)."""
        uri = self.config.uri if self.used or not self.plan.embedded else None
        return {**self.plan.to_json(uri), "started": self.used}


def _last_port(state_dir: Path) -> int:
    try:
        return int((state_dir / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return 0


def _free_port(preferred: int) -> int:
    """``preferred`` if it can be bound on 127.0.0.1 (as the catalog binds it), else a free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    return 0
