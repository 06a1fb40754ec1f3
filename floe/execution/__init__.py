"""``floe run``: run every dbt transform of a data product on its compute, through one Iceberg catalog.

The entry point is :func:`floe.execution.runner.run` (the ``floe run`` command calls it). Importing this
package imports nothing heavy: dbt runs in worker processes (:mod:`floe.execution.worker`), pyiceberg
only when the embedded catalog starts or tables are shown.
"""
