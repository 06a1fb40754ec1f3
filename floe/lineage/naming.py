"""Dataset names by the OpenLineage naming spec.

A model built in the shared Iceberg catalog is one table whichever engine wrote or read it, so it
is one dataset: named by its location in storage (``file`` + path, ``s3://bucket`` + key…, the
spec's names for file systems and object stores), which is what OpenLineage's own Spark
integration names an Iceberg table of a REST catalog by, with the catalog's name for it
(``<namespace>.<table>`` under the catalog's URI) as a symlink. Lineage from floe and from a Spark
job reading the same table with OpenLineage's listener lines up.

A relation an engine builds in its own warehouse is named ``<engine>://<compute>`` +
``<database>.<schema>.<table>``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

OBJECT_STORES = {
    "s3": "s3",
    "s3a": "s3",
    "s3n": "s3",
    "gs": "gs",
    "abfs": "abfss",
    "abfss": "abfss",
    "wasb": "wasbs",
    "wasbs": "wasbs",
}
"""Object store schemes and the spec's canonical one (``s3a://`` is ``s3://``)."""


@attrs.frozen
class DatasetName:
    namespace: str
    name: str


def from_location(location: str) -> DatasetName:
    """The dataset of a table stored at ``location`` (a URI, or a local path)."""
    split = urlsplit(location)
    scheme = split.scheme.lower()
    path = split.path.rstrip("/") or "/"
    if scheme in ("", "file"):
        return DatasetName("file", path if split.netloc in ("", "localhost") else f"//{split.netloc}{path}")
    if scheme in OBJECT_STORES:
        return DatasetName(f"{OBJECT_STORES[scheme]}://{split.netloc}", path.lstrip("/"))
    return DatasetName(f"{scheme}://{split.netloc}", path)


def catalog_namespace(uri: str) -> str:
    """The namespace of a catalog's own names for its tables: its URI, without credentials."""
    split = urlsplit(uri)
    host = split.hostname or ""
    netloc = f"{host}:{split.port}" if split.port else host
    return split._replace(netloc=netloc, query="", fragment="").geturl().rstrip("/")


def own_warehouse(engine: str, compute: str, relation: str) -> DatasetName:
    """A relation ``<database>.<schema>.<table>`` a compute builds in its engine's own warehouse."""
    return DatasetName(f"{engine}://{compute}", relation)
