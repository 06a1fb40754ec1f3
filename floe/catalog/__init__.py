"""Iceberg catalogs that floe runs itself.

:mod:`floe.catalog.rest_server` holds :class:`~floe.catalog.rest_server.EmbeddedCatalog`, the
default catalog of ``floe run``: a small Iceberg REST catalog server on ``127.0.0.1``, backed by
pyiceberg's ``SqlCatalog`` (a SQLite file in WAL mode) with a ``file://`` warehouse under the
product's ``.floe/`` directory. Every engine attaches to it as it would attach to a production
REST catalog.
"""
