"""How the DuckDB engine runs in ``floe run``: its worker attaches the Iceberg REST catalog in place.

The run profile (:func:`run_profile`) makes the catalog the target ``database``. The statements
come from the engine's own ``get_catalog_attachment_sql``; the dbt-duckdb plugin
:mod:`floe.engines.duckdb_plugin` fills their secret placeholders from the environment and runs
them on the connection (after the extensions load, before dbt-duckdb's ``attach``). The
statements are written with their ``{{ env_var('NAME') }}`` placeholders only, each as a Jinja
string literal (:func:`floe.sqlsecrets.jinja_string`) so that dbt's own rendering of the profile
gives them to the plugin exactly, which binds each secret as a parameter. One ``attach`` entry
repeats the catalog's alias: its ``ATTACH IF NOT EXISTS`` is a no-op once the plugin attached it,
and it tells dbt-duckdb that ``database`` names an attached database (dbt-duckdb writes the alias
unquoted, so the catalog's name must be letters, digits and underscores, and no keyword). The
``avro``, ``iceberg`` and ``httpfs`` extensions are added when the compute lacks them.

DuckDB's Iceberg support cannot rename or create views, so the run's project carries DuckDB's own
materializations (``macros/duckdb/``, :func:`macro_paths`).

This module is also the worker extension (``WorkerSetup.extension``) of DuckDB's workers: its
:func:`stop` closes dbt-duckdb's database when the worker exits (its file lock, its write-ahead
log), which the worker's fast exit would otherwise skip. Importing it imports no duckdb or dbt.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    Problem,
    UnattachableCatalog,
    WorkerSetup,
    floe_names,
    jinja_string,
)
from floe.engines.duckdb.settings import ENGINE, KEYWORDS_NOT_NAMES, extension_files, unquoted_name

PLUGIN_MODULE = "floe.engines.duckdb_plugin"
"""The dbt-duckdb plugin the run profile names."""
CATALOG_EXTENSIONS = ("iceberg", "httpfs")
MACROS = Path(__file__).resolve().parents[1] / "macros" / "duckdb"
_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


def catalog_access(compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
    """Attached, through ``ATTACH … (TYPE ICEBERG)``, when the catalog is a REST catalog whose name
    dbt-duckdb can write unquoted.

    :raises UnattachableCatalog: another kind of catalog, or a name dbt-duckdb cannot write.
    """
    if catalog.type != "rest" or not catalog.uri:
        raise UnattachableCatalog(
            ("catalog", "type"),
            [
                Problem(
                    f"compute {compute.name!r} (engine {ENGINE}) cannot attach the {catalog.type} catalog "
                    f"{catalog.name!r}: DuckDB attaches only Iceberg REST catalogs",
                    fix="declare a REST catalog in the manifest, or remove `catalog:` to use the embedded one",
                )
            ],
        )
    if not unquoted_name(catalog.name):
        raise UnattachableCatalog(
            ("catalog", "name"),
            [
                Problem(  # dbt-duckdb writes ``ATTACH … AS <alias>`` unquoted
                    f"compute {compute.name!r} (engine {ENGINE}) cannot attach the catalog {catalog.name!r}: "
                    "dbt-duckdb writes the catalog's name into its ATTACH statement without quotes",
                    expected="a catalog name of letters, digits and underscores that is not a keyword of DuckDB's SQL",
                    fix=f"rename the catalog, such as {_plain_catalog_name(catalog.name)!r}",
                )
            ],
        )
    return CatalogAccess.attached(
        f"every dbt connection runs ATTACH … AS {catalog.name} (TYPE ICEBERG) on the "
        "catalog's REST endpoint (floe's dbt-duckdb plugin)"
    )


def run_profile(
    statements: list[str],
    compute: ComputeConfig,
    profile: dict[str, Any],
    catalog: CatalogConfig,
    namespace: str,
) -> dict[str, Any]:
    """``profile`` attached to ``catalog`` by running ``statements``, building into ``namespace``."""
    catalog_access(compute, catalog)
    profile["schema"] = namespace
    extensions = [str(e) for e in profile.get("extensions") or []]
    for file in extension_files(CATALOG_EXTENSIONS, compute, "run"):
        if str(file) not in extensions and not any(e.endswith("/" + file.name) for e in extensions):
            extensions.append(str(file))
    profile["extensions"] = _avro_first(extensions)
    profile["database"] = catalog.name
    plugins = [p for p in profile.get("plugins") or [] if p.get("module") != PLUGIN_MODULE]
    plugins.append(
        {
            "module": PLUGIN_MODULE,
            "config": {
                "floe_engine": ENGINE,
                "floe_compute": compute.name,
                "floe_names": [catalog.name, *floe_names(compute)],
                "floe_statements": [jinja_string(s) for s in statements],
            },
        }
    )
    profile["plugins"] = plugins
    attach = [a for a in profile.get("attach") or [] if a.get("alias") != catalog.name]
    attach.append({"path": jinja_string(catalog.warehouse or ""), "alias": catalog.name})
    profile["attach"] = attach
    return profile


def worker_setup() -> WorkerSetup:
    """Forked from the run's fork server; this module closes DuckDB's database at the exit."""
    return WorkerSetup(extension=__name__)


def macro_paths() -> list[Path]:
    return [MACROS]


def stop() -> None:
    """Close dbt-duckdb's database environment (called by the worker at its exit, after dbt's
    connections were closed)."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    manager = getattr(connections, "DuckDBConnectionManager", None)
    environment = getattr(manager, "_ENV", None)
    if environment is not None:
        environment.close()


def release() -> None:
    """A warm worker's run is done: close the database (its file lock, the secrets it was given);
    the next run's dbt opens it again, in milliseconds."""
    stop()


def _plain_catalog_name(name: str) -> str:
    """A catalog name like ``name`` that dbt-duckdb can write unquoted."""
    plain = _IDENTIFIER.sub("_", name.lower()).strip("_") or "lake"
    return f"{plain}_lake" if plain in KEYWORDS_NOT_NAMES else plain


def _avro_first(extensions: list[str]) -> list[str]:
    """``extensions`` with avro moved to the front, the others in their order.

    dbt-duckdb loads ``extensions`` in list order, and with autoloading off
    (:func:`floe.engines.duckdb.connect_config`) DuckDB refuses ``LOAD iceberg`` unless avro is
    loaded already ("… automatically install the required extension 'avro'", DuckDB 1.5.5). The
    loop in :func:`run_profile` appends what the profile lacks at the end, so a duckdb profile that
    lists iceberg but not avro (one the built-in engine did not generate: it puts avro before
    iceberg itself) would get avro after iceberg and fail to connect; this puts it first. On the
    built-in engine's profiles it changes no load that matters: it moves avro only ahead of other
    extensions (``httpfs, avro, iceberg`` becomes ``avro, httpfs, iceberg``).
    """
    avro = [e for e in extensions if e.endswith("avro.duckdb_extension") or e == "avro"]
    return avro + [e for e in extensions if e not in avro]
