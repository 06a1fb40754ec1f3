"""The run's Iceberg catalog: which one (:func:`plan_catalog`), and its life during a run (:class:`RunCatalog`).

The manifest's catalog when one is declared (a REST catalog, which floe and the engines reach
over HTTP); otherwise the embedded one (:class:`floe.catalog.rest_server.EmbeddedCatalog`, a real
Iceberg REST catalog on 127.0.0.1 whose SQLite file and warehouse live in
``<product>/.floe/iceberg/``, which ``dbt clean`` does not touch), served by a process of its own
(:mod:`floe.execution.catalog_process`). Every engine attaches to it the way it attaches to a
production REST catalog.

**The embedded catalog's token.** Any local process can reach a port on 127.0.0.1, so each run
draws a random token (256 bits) that the catalog requires of every request. The engines are told
the catalog's token as a secret reference, ``{secret_ref: FLOE_CATALOG_TOKEN}``, exactly as they
are told a declared catalog's: their profiles hold ``{{ env_var('FLOE_CATALOG_TOKEN') }}``, never
the value, which only the run's worker processes receive, in their environment
(:attr:`RunCatalog.environ`); the catalog's process reads it from a pipe. floe's own clients of the
catalog in this process (bridges, ``--show``, lineage) find it through :func:`floe.execution.catalog_client.served_token`. It is
written to no file and redacted from every message.

Importing this module imports no pyiceberg: the catalog's process imports it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from floe.artifacts import out_of_room, write_atomic
from floe.errors import FloeError, Problem, UnattachableCatalog
from floe.execution.catalog_client import TOKEN_VARIABLE, forget_token, remember_token
from floe.execution.lifeline import ended
from floe.execution.ports import free_port
from floe.model import CatalogConfig, SecretReference

if TYPE_CHECKING:
    from floe.catalog.retention import RetentionPolicy
    from floe.execution.catalog_process import CatalogProcess
    from floe.execution.warm import WarmHost

PORT_FILE = Path("iceberg") / "port"
"""Under the state directory: the port the embedded catalog served on last time."""

STOP_TIMEOUT = 30.0
MAINTENANCE_TIMEOUT = 600.0
PROBE_TIMEOUT = 3.0
"""Seconds a declared catalog has to answer when a failed build asks whether it is still up."""


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
        info: dict[str, Any] = {
            "name": self.config.name,
            "type": self.config.type,
            "uri": uri,
            "warehouse": self.config.warehouse,
            "embedded": self.embedded,
        }
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
            raise UnattachableCatalog(
                key,
                [
                    Problem(
                        f"the manifest declares a {declared.type} catalog {declared.name!r}"
                        + ("" if declared.type != "rest" else " without a uri")
                        + ": `floe run` needs an Iceberg REST catalog (with a uri), which floe and the engines reach over HTTP",
                        fix="declare the REST endpoint of your catalog, or remove `catalog:` to use the embedded one",
                    )
                ],
            )
        return CatalogPlan(declared, embedded=False)
    from floe.catalog.rest_server import EmbeddedCatalog  # the standard library only, until it starts

    embedded = EmbeddedCatalog(state_dir)
    port = _last_port(state_dir)
    config = CatalogConfig(
        type="rest",
        name=embedded.name,
        uri=f"http://127.0.0.1:{port}",
        warehouse=embedded.warehouse,
        token=SecretReference(TOKEN_VARIABLE),
    )
    return CatalogPlan(config, embedded=True, root=embedded.root)


class RunCatalog:
    """The catalog during a run, started while the workers start.

    The embedded catalog's process starts at once, on a port chosen first (the last run's, when it
    is free: the same uri keeps the run profiles the same from run to run, so dbt reuses its parse
    of the project), so the run profiles can name it; only builds need it: :meth:`ready` waits for
    it before the first build. Its token is drawn here (see the module docstring).

    With ``namespace``, the run's namespace is created in the catalog, if missing, before it is
    ready: workers of several computes building at once into a fresh catalog would each create it,
    and the second ``CREATE SCHEMA`` fails on the REST catalog's conflict (409). The embedded
    catalog's process creates it; a declared one is asked through pyiceberg's REST client, in a
    thread, as ``--show`` reads it.

    With ``used=False`` (no compute of the run attaches the catalog: each builds in its own
    warehouse) nothing starts and nothing is created: the engines are still told the planned
    catalog, which none of them reaches.

    :param log: where the embedded catalog's process writes its own output.
    :param retention: what :meth:`stop` keeps of the embedded catalog's history (``None``: no
        maintenance).
    """

    def __init__(
        self,
        plan: CatalogPlan,
        state_dir: Path,
        namespace: str | None = None,
        used: bool = True,
        log: Path | None = None,
        retention: RetentionPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        warm: WarmHost | None = None,
    ) -> None:
        self.plan = plan
        self.used = used
        self.seconds = 0.0
        self.retention = retention
        self.maintenance: dict[str, Any] | None = None
        """What the embedded catalog's maintenance did at the end of the run (:meth:`stop`)."""
        self.process: CatalogProcess | None = None
        self._state_dir = state_dir
        self._namespace = namespace
        self._error: FloeError | None = None
        self._token: str | None = None
        self._ready = False
        self._clock = time.monotonic()
        self.config = plan.config
        self._thread: threading.Thread | None = None
        self.warm: WarmHost | None = None
        """The warm host whose embedded catalog serves this run (``floe run --keep-warm``)."""
        base = os.environ if environ is None else environ
        self.environ: Mapping[str, str] = base
        """The environment of the run's workers: the caller's, with the embedded catalog's token."""
        self.planned = self.config
        """The catalog as the run profiles first name it; :meth:`ready` may answer another port."""
        if not used:
            return
        if plan.embedded and warm is not None:
            from floe.execution.warm import WarmError

            try:
                uri, self._token = warm.catalog(state_dir, plan.config.name, _last_port(state_dir), namespace)
            except WarmError:
                pass  # started here, as a cold run does
            else:
                self.warm = warm
                self.environ = {**base, TOKEN_VARIABLE: self._token}
                self.config = self.planned = attrs.evolve(plan.config, uri=uri)
                return
        if plan.embedded:
            from floe.execution.catalog_process import CatalogProcess
            from floe.execution.profiles import dbt_environ

            self._token = secrets.token_urlsafe(32)
            self.environ = {**base, TOKEN_VARIABLE: self._token}
            port = free_port(_last_port(state_dir))
            self.config = self.planned = attrs.evolve(plan.config, uri=f"http://127.0.0.1:{port}")
            root = plan.root or state_dir
            self.process = CatalogProcess(
                state_dir,
                plan.config.name,
                port,
                self._token,
                log or root.parent / "catalog.log",
                dbt_environ(base),
                namespace,
            )
        elif namespace is not None:
            self._thread = threading.Thread(
                target=self._create_namespace, name="floe-run-catalog", daemon=True
            )
            self._thread.start()

    @property
    def secrets(self) -> list[str]:
        """The secret values the run holds for the catalog (to redact from every message)."""
        return [self._token] if self._token else []

    def _create_namespace(self) -> None:
        assert self._namespace is not None
        try:
            from floe.execution.catalog_client import client

            client(self.config).create_namespace_if_not_exists(self._namespace)
        except Exception:  # noqa: BLE001 - no right to, unreachable…: dbt's own attempt says why
            pass

    def ready(self) -> CatalogConfig:
        """The catalog, serving; its uri may differ from :attr:`planned`'s.

        :raises FloeError: the embedded catalog could not start.
        """
        if self._thread is not None:
            self._thread.join()
        if self.warm is not None and not self._ready:
            from floe.execution.warm import WarmError

            try:
                uri = self.warm.catalog_ready()
            except WarmError as exc:
                self._error = FloeError(
                    [
                        Problem(
                            f"the warm host's embedded Iceberg catalog could not start: {exc}",
                            fix="floe warm stop, then run again",
                        )
                    ]
                )
            else:
                self._served(uri)
            finally:
                self.seconds = time.monotonic() - self._clock
        if self.process is not None and not self._ready:
            from floe.execution.catalog_process import CatalogProcessError

            try:
                uri = self.process.ready()
            except CatalogProcessError as exc:
                root = self.plan.root or self._state_dir
                room = out_of_room(root, str(exc))
                self._error = FloeError(
                    [
                        Problem(
                            f"the embedded Iceberg catalog could not start: {exc}"
                            + (f"; writing under {root}: {room[0]}" if room else ""),
                            fix=f"{room[1]}, then run again"
                            if room
                            else f"check that {root} is writable; pip install 'floe[iceberg]' if pyiceberg is missing",
                        )
                    ]
                )
            else:
                self._served(uri)
            finally:
                self.seconds = time.monotonic() - self._clock
        if self._error is not None:
            raise self._error
        return self.config

    def _served(self, uri: str) -> None:
        self._ready = True
        self.config = attrs.evolve(self.config, uri=uri)
        assert self._token is not None
        remember_token(uri, self._token)
        with contextlib.suppress(OSError):
            write_atomic(self._state_dir / PORT_FILE, uri.rsplit(":", 1)[1] + "\n")

    def failure(self, namespace: str | None = None) -> str | None:
        """Why the catalog cannot serve the run any more, if it cannot: the embedded catalog's
        process ended (how); a declared catalog does not answer, or the object store it hands
        the engines (``s3.endpoint`` of ``namespace``'s tables) does not. ``None`` while both serve."""
        if self.warm is not None:
            return self.warm.catalog_failure()
        if self.process is not None:
            code = self.process.returncode()
            if code is None or self.process.stopping:
                return None
            return (
                f"the embedded Iceberg catalog stopped during the run: its process (pid {self.process.pid}) "
                f"ended ({ended(code)}); its log: {self.process.log}"
            )
        if not self.used or self.plan.embedded or not self.config.uri:
            return None
        return _unreachable(self.config) or _storage_unreachable(self.config, namespace)

    def stop(self) -> None:
        """Maintain the embedded catalog (its retention policy), then stop it."""
        if self._thread is not None:
            self._thread.join()
        if self.warm is not None:  # the host's catalog goes on serving; maintained under this run's lock
            try:
                if self._ready and self.retention is not None:
                    self.maintenance = self.warm.maintain(self.retention.to_json())
            finally:
                forget_token(self.config.uri)
                self.seconds = self.seconds or time.monotonic() - self._clock
            return
        process = self.process
        if process is None:
            return
        try:
            if self._ready and self.retention is not None and process.returncode() is None:
                answer = process.request(
                    {"op": "maintain", "policy": self.retention.to_json()}, MAINTENANCE_TIMEOUT
                )
                if answer is not None and "maintained" in answer:
                    self.maintenance = dict(answer["maintained"])
        finally:
            forget_token(self.config.uri)
            process.stop(STOP_TIMEOUT)
            if self.seconds == 0.0:
                self.seconds = time.monotonic() - self._clock

    def to_json(self) -> dict[str, Any]:
        """What the run report says of the catalog (an embedded one that did not start has no uri)."""
        uri = self.config.uri if self.used or not self.plan.embedded else None
        return {**self.plan.to_json(uri), "started": self.used}


def _unreachable(catalog: CatalogConfig) -> str | None:
    """Why a declared REST catalog does not answer at all (no connection, no HTTP answer), if so."""
    silent = _silent(catalog.uri or "", "/v1/config")
    return (
        None
        if silent is None
        else f"the catalog {catalog.name!r} at {catalog.uri} does not answer ({silent})"
    )


def _storage_unreachable(catalog: CatalogConfig, namespace: str | None) -> str | None:
    """Why the object store a declared catalog hands the engines does not answer at all, if so.

    An engine that cannot reach the store may say something else (DuckDB reports the failed
    commit as a write-write conflict): the store's endpoint is what the catalog tells its clients,
    ``s3.endpoint`` in its config or in a table's ``loadTable`` answer (one of ``namespace``'s).
    """
    try:
        from floe.execution.catalog_client import client

        rest = client(catalog)
        endpoint = rest.properties.get("s3.endpoint")
        if not endpoint and namespace:
            for identifier in rest.list_tables(namespace)[:1]:
                endpoint = rest.load_table(identifier).io.properties.get("s3.endpoint")
    except Exception:  # noqa: BLE001 - no table yet, no right to list: nothing to probe
        return None
    if not endpoint:
        return None
    silent = _silent(str(endpoint), "/")
    if silent is None:
        return None
    return (
        f"the object store at {endpoint}, where the catalog {catalog.name!r} keeps the tables' files, "
        f"does not answer ({silent})"
    )


def _silent(uri: str, path: str) -> str | None:
    """Why ``uri`` gives no HTTP answer at all to ``GET path`` (any answer, an error's too, is one)."""
    import http.client
    from urllib.parse import urlsplit

    split = urlsplit(uri)
    kind = http.client.HTTPSConnection if split.scheme == "https" else http.client.HTTPConnection
    connection = kind(split.hostname or "", split.port, timeout=PROBE_TIMEOUT)
    try:
        connection.request("GET", (split.path.rstrip("/") or "") + path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return None


def _last_port(state_dir: Path) -> int:
    try:
        return int((state_dir / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return 0
