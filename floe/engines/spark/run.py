"""How the Spark engine runs in ``floe run``: the SparkSession dbt-spark builds attaches the catalog.

With method ``session`` the catalog's ``spark.sql.catalog.<name>.*`` confs
(:func:`floe.engines.spark.settings.catalog_conf`, credentials as ``env_var`` placeholders that dbt
renders), ``spark.sql.defaultCatalog=<name>`` and ``cache-enabled=false`` (Iceberg's caching
catalog would serve Spark a table as it first loaded it, hiding the other engines' commits) go into
the profile's ``server_side_parameters``; the Iceberg runtime jar and SQL extensions are added when
the compute lacks ``iceberg: true``. Models, seeds and snapshots get ``file_format: iceberg``
(:func:`project_config`), and a view model is built as a table (``macros/spark/``).

Methods ``thrift`` and ``http`` reach a Spark server whose catalogs are configured on the server:
floe cannot attach the run's catalog there, so their transforms build in that server's own
warehouse.

This module is also the worker extension (``WorkerSetup.extension``) of a Spark compute's worker,
which starts afresh rather than forked (Spark's first act is to start Java, which a fork after
dbt's import would only delay): :func:`start` builds the SparkSession dbt-spark will ask for (the
same builder, the same confs, placeholders filled from the environment as dbt fills them) in a
thread and loads the catalog, so that Java's start overlaps dbt's parse and the upstream
transforms; dbt-spark's ``getOrCreate`` then finds it ready. :func:`stop` stops it at the exit.
Importing this module imports no pyspark or dbt.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from floe.enginekit import CatalogAccess, CatalogConfig, ComputeConfig, WorkerSetup
from floe.engines.spark.settings import ICEBERG_EXTENSIONS, catalog_conf, iceberg_runtime_jar, runtime_environ

MACROS = Path(__file__).resolve().parents[1] / "macros" / "spark"
FILE_FORMAT_KEYS = ("models", "seeds", "snapshots")


def is_session(compute: ComputeConfig) -> bool:
    return bool(compute.config.get("method", "session") == "session")


def catalog_access(compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
    if is_session(compute):
        return CatalogAccess.attached(
            f"the SparkSession dbt-spark builds has spark.sql.catalog.{catalog.name} "
            "(Iceberg's SparkCatalog) as its default catalog"
        )
    return CatalogAccess.own_warehouse(
        f"method {compute.config.get('method')}: the Spark server's catalogs are configured on the server, "
        "so floe cannot attach the run's catalog there; its transforms build in the server's own warehouse "
        "(method session attaches it)"
    )


def run_profile(
    compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
) -> dict[str, Any]:
    profile["schema"] = namespace
    if not is_session(compute):
        return profile
    params: dict[str, str] = {
        str(k): str(v) for k, v in (profile.get("server_side_parameters") or {}).items()
    }
    jar = str(iceberg_runtime_jar())
    jars = [j for j in params.get("spark.jars", "").split(",") if j]
    if not any("iceberg-spark-runtime" in j for j in jars):
        params["spark.jars"] = ",".join([*jars, jar])
    extensions = [e for e in params.get("spark.sql.extensions", "").split(",") if e]
    if ICEBERG_EXTENSIONS not in extensions:
        params["spark.sql.extensions"] = ",".join([*extensions, ICEBERG_EXTENSIONS])
    params.update(catalog_conf(catalog, with_secrets=True))
    params[f"spark.sql.catalog.{catalog.name}.cache-enabled"] = "false"
    params["spark.sql.defaultCatalog"] = catalog.name
    profile["server_side_parameters"] = params
    return profile


def project_config(compute: ComputeConfig) -> dict[str, dict[str, Any]]:
    """``+file_format: iceberg`` for models, seeds and snapshots of a session compute."""
    if not is_session(compute):
        return {}
    return {key: {"+file_format": "iceberg"} for key in FILE_FORMAT_KEYS}


def macro_paths(compute: ComputeConfig) -> list[Path]:
    return [MACROS] if is_session(compute) else []


def worker_setup(
    compute: ComputeConfig, profile: Mapping[str, Any], catalog: CatalogConfig, environ: Mapping[str, str]
) -> WorkerSetup:
    """A fresh process (Java first), with Java and a loopback address; warmed up when it attaches."""
    added = runtime_environ(compute, environ)
    if not is_session(compute):
        return WorkerSetup(environ=added, forkable=False)
    settings = {"spark_conf": dict(profile.get("server_side_parameters") or {}), "catalog": catalog.name}
    return WorkerSetup(environ=added, forkable=False, extension=__name__, settings=settings)


# -- in the worker ---------------------------------------------------------------------------------


def start(settings: Mapping[str, Any]) -> None:
    """Start the SparkSession dbt-spark will build, in a thread; see the module docstring."""
    from floe.enginekit import PLACEHOLDER

    catalog = str(settings["catalog"])
    rendered = {}
    for key, value in dict(settings["spark_conf"]).items():
        names = [m["name"] for m in PLACEHOLDER.finditer(str(value))]
        if any(not os.environ.get(n) for n in names):
            print("floe: not warming Spark up: a secret the Spark conf references is not set", flush=True)
            return
        rendered[key] = PLACEHOLDER.sub(lambda m: os.environ[m["name"]], str(value))

    def warm() -> None:
        started = time.monotonic()
        try:
            from pyspark.sql import SparkSession

            builder = SparkSession.builder.enableHiveSupport()  # exactly as dbt-spark's session method
            for key, value in rendered.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
            session.sql(f"SHOW NAMESPACES IN `{catalog}`").collect()
            print(f"floe: Spark warmed up in {time.monotonic() - started:.1f}s", flush=True)
        except Exception as exc:  # noqa: BLE001 - dbt-spark reports the same problem, in its words
            print(f"floe: warming Spark up failed: {type(exc).__name__}", flush=True)

    thread = threading.Thread(target=warm, name="floe-spark-warm-up", daemon=True)
    thread.start()
    _WARMING.append(thread)


_WARMING: list[threading.Thread] = []


def started() -> None:
    """Wait until the session :func:`start` began is up (or failed): a warm worker's host asks,
    so that Java starts with the worker's own environment, before a run's secrets reach it."""
    for thread in _WARMING:
        thread.join()


def stop() -> None:
    """Stop the SparkContext dbt-spark started in this worker (its JVM exits with the worker's pipe)."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()
