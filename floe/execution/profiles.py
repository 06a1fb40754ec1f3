"""The dbt profile a transform runs with, and the environment of the process that runs it.

``floe compile`` writes each compute's profile as the engine generates it. For ``floe run`` every
transform builds into one namespace (:func:`namespace`), and the compute's engine changes the
compiled profile for the run (``floe_run_profile``): an engine whose worker attaches the shared
Iceberg catalog makes the catalog the target database, so that a model's relation
``<catalog>.<namespace>.<model>`` is the same Iceberg table on every engine; an engine that
declares nothing builds into its own warehouse under the namespace.

Importing this module imports nothing beyond floe's light modules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from floe.model import WorkerSetup

_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


def namespace(product: str, environment: str) -> str:
    """The catalog namespace (dbt schema) a product builds into in ``environment``.

    ``<product>_<environment>``, lower case, anything but letters, digits and ``_`` as ``_``: the
    same name for every engine, and distinct per environment in a shared catalog.
    """
    name = _IDENTIFIER.sub("_", f"{product}_{environment}".lower()).strip("_")
    return name if name and not name[0].isdigit() else f"p_{name}"


def dbt_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every process of a run that imports dbt: the workers, the fork server.

    dbt's anonymous usage statistics are off unless the user turned them on (a run must not wait
    on the network); output is unbuffered; floe stays importable from a source tree.
    """
    env = dict(environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env["PYTHONUNBUFFERED"] = "1"
    source_root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if source_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, source_root])
    return env


def worker_environ(setup: WorkerSetup, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a compute's dbt worker: :func:`dbt_environ`, plus what its engine adds."""
    env = dbt_environ(environ)
    env.update(setup.environ)
    return env
