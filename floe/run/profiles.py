"""The dbt profile a transform runs with: the compiled profile, pointed at the shared Iceberg catalog.

``floe compile`` writes each compute's profile as the engine generates it. For ``floe run`` the
profile of a transform's compute (in the run's environment) also attaches the engine to the
catalog, under the catalog's name, and builds into the run's namespace, so that a model's relation
``<catalog>.<namespace>.<model>`` is the same Iceberg table on every engine:

- **DuckDB** (dbt adapter ``duckdb``): the target ``database`` is the catalog's name. The statements
  come from the engine's own ``get_catalog_attachment_sql``; the dbt-duckdb plugin
  :mod:`floe.run.duckdb_plugin` fills their secret placeholders from the environment and runs them
  on the connection (after the extensions load, before dbt-duckdb's ``attach``). The statements
  are written with their ``{{ env_var('NAME') }}`` placeholders only, each as a Jinja string
  literal (:func:`floe.sqlsecrets.jinja_string`) so that dbt's own rendering of the profile gives
  them to the plugin exactly, which binds each secret as a parameter. One ``attach`` entry
  repeats the catalog's alias: its ``ATTACH IF NOT EXISTS`` is a no-op once the plugin attached
  it, and it tells dbt-duckdb that ``database`` names an attached database (dbt-duckdb writes the
  alias unquoted, so the catalog's name must be letters, digits and underscores). The ``avro``,
  ``iceberg`` and ``httpfs`` extensions are added when the compute lacks them.
- **Spark** (``spark``, method ``session``): the catalog's ``spark.sql.catalog.<name>.*`` confs
  (:func:`floe.engines.spark.catalog_conf`, credentials as ``env_var`` placeholders that dbt renders),
  ``spark.sql.defaultCatalog=<name>`` and ``cache-enabled=false`` (Iceberg's caching catalog would
  serve Spark a table as it first loaded it, hiding the other engines' commits) go into
  ``server_side_parameters``; the Iceberg runtime jar and SQL extensions are added when the
  compute lacks ``iceberg: true``. Models, seeds and snapshots get ``file_format: iceberg`` through
  the generated project (see :func:`project_config`).

Other adapters have no way known to floe to attach a catalog: :func:`run_profile` says so.
Importing this module imports nothing beyond floe's light modules.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from floe.errors import FloeError, Problem
from floe.model import CatalogConfig, ComputeConfig
from floe.plugins import Engine

SUPPORTED_ADAPTERS = ("duckdb", "spark")
DUCKDB_PLUGIN = "floe.run.duckdb_plugin"
DUCKDB_CATALOG_EXTENSIONS = ("iceberg", "httpfs")
_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


def namespace(product: str, environment: str) -> str:
    """The catalog namespace (dbt schema) a product builds into in ``environment``.

    ``<product>_<environment>``, lower case, anything but letters, digits and ``_`` as ``_``: the
    same name for every engine, and distinct per environment in a shared catalog.
    """
    name = _IDENTIFIER.sub("_", f"{product}_{environment}".lower()).strip("_")
    return name if name and not name[0].isdigit() else f"p_{name}"


def run_profile(engine: Engine, compute: ComputeConfig, output: Mapping[str, Any],
                catalog: CatalogConfig, schema: str) -> dict[str, Any]:  # fmt: skip
    """``output`` (the compiled profile of ``compute``) attached to ``catalog``, building into ``schema``.

    :raises FloeError: the engine's adapter cannot attach an Iceberg catalog through floe.
    """
    adapter = engine.info.dbt_adapter
    profile = copy.deepcopy(dict(output))
    profile["schema"] = schema
    if adapter == "duckdb":
        return _duckdb(engine, compute, profile, catalog)
    if adapter == "spark":
        return _spark(compute, profile, catalog)
    raise FloeError([Problem(
        f"compute {compute.name!r} (engine {engine.name}, dbt adapter {adapter}) cannot run in "
        "`floe run`: floe knows how to attach only DuckDB and Spark to the shared Iceberg catalog",
        expected="a transform on a compute whose engine uses dbt-duckdb or dbt-spark",
        fix="select a duckdb or spark compute for this transform, or run it with dbt directly",
    )])  # fmt: skip


def project_config(adapter: str) -> dict[str, dict[str, Any]]:
    """Project-level configs the generated dbt project adds for ``adapter`` (the user's win)."""
    if adapter == "spark":
        return {key: {"+file_format": "iceberg"} for key in ("models", "seeds", "snapshots")}
    return {}


class UnattachableCatalog(FloeError):
    """An engine's worker cannot attach the manifest's catalog; :attr:`key` is the setting at fault
    (``("catalog", "name")``…), for the caller that knows which manifest declared it."""

    def __init__(self, key: tuple[str, ...], problems: list[Problem]) -> None:
        super().__init__(problems)
        self.key = key


def _plain_catalog_name(name: str) -> str:
    """A catalog name like ``name`` that dbt-duckdb can write unquoted."""
    from floe.engines.duckdb import KEYWORDS_NOT_NAMES

    plain = _IDENTIFIER.sub("_", name.lower()).strip("_") or "lake"
    return f"{plain}_lake" if plain in KEYWORDS_NOT_NAMES else plain


def _duckdb(engine: Engine, compute: ComputeConfig, profile: dict[str, Any],
            catalog: CatalogConfig) -> dict[str, Any]:  # fmt: skip
    from floe.engines.duckdb import extension_files, unquoted_name  # cheap: imports no duckdb
    from floe.sqlsecrets import jinja_string

    statements = engine.get_catalog_attachment_sql(compute, catalog)
    if not statements:
        raise UnattachableCatalog(("catalog", "type"), [Problem(
            f"compute {compute.name!r} (engine {engine.name}) cannot attach the {catalog.type} catalog "
            f"{catalog.name!r}: DuckDB attaches only Iceberg REST catalogs",
            fix="declare a REST catalog in the manifest, or remove `catalog:` to use the embedded one",
        )])  # fmt: skip
    if not unquoted_name(catalog.name):
        raise UnattachableCatalog(("catalog", "name"), [Problem(  # dbt-duckdb writes ``ATTACH … AS <alias>`` unquoted
            f"compute {compute.name!r} (engine {engine.name}) cannot attach the catalog {catalog.name!r}: "
            "dbt-duckdb writes the catalog's name into its ATTACH statement without quotes",
            expected="a catalog name of letters, digits and underscores that is not a keyword of DuckDB's SQL",
            fix=f"rename the catalog, such as {_plain_catalog_name(catalog.name)!r}",
        )])  # fmt: skip
    extensions = [str(e) for e in profile.get("extensions") or []]
    for file in extension_files(DUCKDB_CATALOG_EXTENSIONS, compute, "run"):
        if str(file) not in extensions and not any(e.endswith("/" + file.name) for e in extensions):
            extensions.append(str(file))
    profile["extensions"] = _avro_first(extensions)
    profile["database"] = catalog.name
    plugins = [p for p in profile.get("plugins") or [] if p.get("module") != DUCKDB_PLUGIN]
    plugins.append({"module": DUCKDB_PLUGIN, "config": {
        "floe_engine": engine.name,
        "floe_compute": compute.name,
        "floe_statements": [jinja_string(s) for s in statements],
    }})  # fmt: skip
    profile["plugins"] = plugins
    attach = [a for a in profile.get("attach") or [] if a.get("alias") != catalog.name]
    attach.append({"path": jinja_string(catalog.warehouse or ""), "alias": catalog.name})
    profile["attach"] = attach
    return profile


def _avro_first(extensions: list[str]) -> list[str]:
    """``extensions`` with avro moved to the front, the others in their order.

    dbt-duckdb loads ``extensions`` in list order, and with autoloading off
    (:func:`floe.engines.duckdb.connect_config`) DuckDB refuses ``LOAD iceberg`` unless avro is
    loaded already ("… automatically install the required extension 'avro'", DuckDB 1.5.5). The
    loop in :func:`_duckdb` appends what the profile lacks at the end, so a duckdb profile that
    lists iceberg but not avro (one the built-in engine did not generate: it puts avro before
    iceberg itself) would get avro after iceberg and fail to connect; this puts it first. On the
    built-in engine's profiles it changes no load that matters: it moves avro only ahead of other
    extensions (``httpfs, avro, iceberg`` becomes ``avro, httpfs, iceberg``).
    """
    avro = [e for e in extensions if e.endswith("avro.duckdb_extension") or e == "avro"]
    return avro + [e for e in extensions if e not in avro]


def _spark(compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig) -> dict[str, Any]:
    from floe.engines.spark import ICEBERG_EXTENSIONS, catalog_conf, iceberg_runtime_jar

    if profile.get("method") != "session":
        raise FloeError([Problem(
            f"compute {compute.name!r}: `floe run` attaches Spark to the catalog through the "
            f"SparkSession it builds (method session), not method {profile.get('method')}",
            fix="use method session, or configure the Thrift server with the catalog's "
                f"spark.sql.catalog.{catalog.name}.* confs and run dbt directly",
        )])  # fmt: skip
    params: dict[str, str] = {str(k): str(v) for k, v in (profile.get("server_side_parameters") or {}).items()}
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


def dbt_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every process of a run that imports dbt: the workers, the fork server."""
    env = dict(environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env["PYTHONUNBUFFERED"] = "1"
    source_root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if source_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, source_root])
    return env


def worker_environ(engine: Engine, compute: ComputeConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the dbt worker of ``compute``: floe's own, plus what the engine needs.

    dbt's anonymous usage statistics are off unless the user turned them on (a run must not wait
    on the network); Spark's session method gets Java and a loopback address
    (:func:`floe.engines.spark.runtime_environ`); floe stays importable from a source tree.
    """
    env = dbt_environ(environ)
    if engine.info.dbt_adapter == "spark":
        from floe.engines.spark import runtime_environ

        env.update(runtime_environ(compute, env))
    return env
