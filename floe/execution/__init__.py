"""``floe plan`` and ``floe run``: every dbt transform of a data product on its compute, through one
Iceberg catalog.

The entry points are :func:`floe.plan` and :func:`floe.run` (:mod:`floe.api`; the commands call
them). The modules, each with one job: :mod:`~floe.execution.plan` (what a run will do, and every
problem knowable before it starts), :mod:`~floe.execution.parse` (the plan's dbt parse),
:mod:`~floe.execution.graph` (the transform DAG from dbt's nodes), :mod:`~floe.execution.catalog`
(the catalog's life), :mod:`~floe.execution.workers` and :mod:`~floe.execution.worker` (the dbt
processes), :mod:`~floe.execution.forkserver`, :mod:`~floe.execution.scheduler` (pure: when each
transform builds), :mod:`~floe.execution.runner` (carries a run out), :mod:`~floe.execution.report`.

This package names no engine and imports none: what an engine needs in a run is asked of it
through its hooks (:mod:`floe.hookspecs`). Importing it imports nothing heavy: dbt runs in worker
processes, pyiceberg only when the embedded catalog starts or tables are shown.
"""
