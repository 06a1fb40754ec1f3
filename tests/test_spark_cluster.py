"""Scale-out Spark for real: the lakehouse example on a Spark standalone cluster (a master and a worker
started from the pyspark wheel, :mod:`tests.support.spark_cluster`).

The example's Spark compute is pointed at the cluster (``master: spark://127.0.0.1:PORT``, and its
short form ``cluster: 127.0.0.1:PORT``): ``floe validate`` reaches the master, ``floe run`` builds
the staging transform on the cluster's executor (the master lists the application by its name,
``floe-<product>-<compute>``) into the catalog, and the DuckDB marts read Spark's tables in place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.spark_cluster import SparkCluster
from tests.support.spark_peer import free_port
from tests.test_run import engine_of, rows

ROOT = Path(__file__).resolve().parents[1]
LOCAL = 'master: "local[2]"'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    with SparkCluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


def lakehouse_on(tmp_path: Path, settings: str) -> Path:
    """The lakehouse example, its Spark compute on the cluster ``settings`` name."""
    product = tmp_path / "lakehouse"
    shutil.copytree(
        ROOT / "examples" / "lakehouse", product, ignore=shutil.ignore_patterns(".floe", "target")
    )
    manifest = product / "platform" / "enterprise.yaml"
    text = manifest.read_text()
    assert LOCAL in text, "the example's Spark compute changed"
    manifest.write_text(
        text.replace(LOCAL, settings + "\n          executor_memory: 768m\n          executor_cores: 1")
    )
    return product


def floe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "floe", *args], capture_output=True, text=True, timeout=600)


def test_floe_validate_reaches_the_clusters_master(cluster: SparkCluster, tmp_path: Path) -> None:
    for settings in (f'master: "{cluster.master}"', f'cluster: "{cluster.address}"'):
        product = lakehouse_on(tmp_path / settings.split(":")[0], settings)
        done = floe("validate", str(product), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        spark = next(r for r in json.loads(done.stdout)["computes"] if r["engine"] == "spark")
        assert (
            f"master {cluster.master}: accepts TCP connections (127.0.0.1:{cluster.port})" in spark["message"]
        )
    nobody = free_port()  # where no master listens, the check fails saying where
    product = lakehouse_on(tmp_path / "nobody", f'master: "spark://127.0.0.1:{nobody}"')
    done = floe("validate", str(product), "--json")
    assert done.returncode == 1
    spark = next(r for r in json.loads(done.stdout)["computes"] if r["engine"] == "spark")
    assert spark["status"] == "FAILED" and f"127.0.0.1:{nobody}" in spark["message"]


def test_floe_run_builds_on_the_cluster_and_duckdb_reads_it_in_place(
    cluster: SparkCluster, tmp_path: Path
) -> None:
    product = lakehouse_on(tmp_path, f'master: "{cluster.master}"')
    done = floe("run", str(product), "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert [(t["name"], t["engine"], t["status"]) for t in report["transforms"]] == [
        ("staging", "spark", "success"),
        ("marts", "duckdb", "success"),
    ]
    assert "floe-lakehouse-spark-local" in cluster.applications()  # Spark ran on the cluster, not locally
    assert engine_of(product, "lakehouse_dev", "stg_orders") is not None  # Spark wrote its snapshot
    revenue = rows(product, "lakehouse_dev", "customer_revenue", "customer_id")
    assert [(r["customer_id"], r["name"], r["country"], r["orders"], str(r["revenue"])) for r in revenue] == [
        (1, "Ada", "UK", 3, "50.85"),
        (2, "Bob", "US", 2, "26.90"),
        (3, "Cy", "FR", 1, "5.75"),
        (4, "Dee", "US", 1, "42.00"),
    ]  # order 8's customer 9 is unknown: staging drops it


@pytest.mark.parametrize(
    ("settings", "loopback"),
    [
        ({"master": "spark://127.0.0.1:7077"}, True),
        ({"cluster": "localhost:7078"}, True),
        ({"master": "spark://127.0.0.1:7077,localhost:7078"}, True),
        ({"master": "spark://spark.svc:7077"}, False),
        ({"cluster": "10.0.0.5"}, False),
        ({"master": "k8s://https://127.0.0.1:6443"}, False),
    ],
)
def test_a_driver_binds_to_loopback_only_for_a_master_on_loopback(
    settings: dict[str, str], loopback: bool
) -> None:
    """Executors on this host connect back to the driver: with a master on loopback it binds there too."""
    from floe.engines.spark import runtime_environ
    from floe.model import ComputeConfig

    environ = runtime_environ(ComputeConfig("s", "spark", settings), {"PATH": "/usr/bin"})
    assert ("SPARK_LOCAL_IP" in environ) is loopback
    assert (
        runtime_environ(ComputeConfig("s", "spark", settings), {"SPARK_LOCAL_IP": "10.1.1.1"}).get(
            "SPARK_LOCAL_IP"
        )
        is None
    )
