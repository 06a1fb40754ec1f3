"""OpenLineage from ``floe run``: what a lineage back end receives, on real runs.

A loopback receiver (``tests/support/lineage_receiver.py``) collects the events over HTTP, sent by
the OpenLineage client configured by its own environment variable (``OPENLINEAGE_URL``). The
lakehouse example runs once (Spark → DuckDB through the embedded Iceberg catalog, ~30 s) for the
events, the dataset graph and the facets; a failing run and the back-end failures use small
DuckDB products. Every event is parsed with the OpenLineage client's generated classes, strictly
(an unknown key, a wrong type, a run id that is not a UUID fail).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cattrs
import jsonschema
import pytest
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.facet_v2 import (
    catalog_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    symlinks_dataset,
    tags_run,
)
from openlineage.client.generated import base

import floe
from floe.lineage.facets import FloeComputeRunFacet, FloeHandoffsRunFacet, FloeRunFacet
from floe.lineage.naming import DatasetName, from_location
from tests.support.lineage_receiver import Receiver
from tests.test_run import DUO_FILES, declare_catalog, product

ROOT = Path(__file__).resolve().parents[1]
CANARY = "canary-7Hq2-lineage-never-shows"
API_KEY = "canary-api-key-9Zt4"
RUN_FACETS = {
    "parent": parent_run.ParentRunFacet,
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "tags": tags_run.TagsRunFacet,
    "floe_run": FloeRunFacet,
    "floe_compute": FloeComputeRunFacet,
    "floe_handoffs": FloeHandoffsRunFacet,
}
JOB_FACETS = {"jobType": job_type_job.JobTypeJobFacet, "sql": sql_job.SQLJobFacet}
DATASET_FACETS = {
    "schema": schema_dataset.SchemaDatasetFacet,
    "symlinks": symlinks_dataset.SymlinksDatasetFacet,
    "catalog": catalog_dataset.CatalogDatasetFacet,
}
FLOE_FACETS = json.loads((ROOT / "floe/jsonschema/lineage-facets.schema.json").read_text())


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def facets(registry: dict[str, type]) -> Any:
        def structure(data: dict[str, Any], _: Any) -> dict[str, Any]:
            found = {}
            for key, value in data.items():
                value = dict(value)
                url = value.pop("_schemaURL")
                facet = converter.structure(value, registry[key])
                assert facet._schemaURL == url, (key, url)
                found[key] = facet
            return found

        return structure

    converter.register_structure_hook(dict[str, base.RunFacet] | None, facets(RUN_FACETS))
    converter.register_structure_hook(dict[str, base.JobFacet] | None, facets(JOB_FACETS))
    converter.register_structure_hook(dict[str, base.DatasetFacet] | None, facets(DATASET_FACETS))
    return converter


CONVERTER = _converter()


def parse(event: dict[str, Any]) -> RunEvent:
    """The event as the client's generated classes read it (validators included)."""
    data = dict(event)
    url = data.pop("schemaURL")
    parsed = CONVERTER.structure(data, RunEvent)
    assert parsed.schemaURL == url
    return parsed


def check_events(events: list[dict[str, Any]]) -> list[RunEvent]:
    """Parse every event; check what the spec requires and how floe ties the runs together."""
    parsed = [parse(e) for e in events]
    runs: dict[str, list[RunEvent]] = defaultdict(list)
    for event in parsed:
        assert event.eventTime and event.producer and event.job.namespace and event.job.name
        assert event.eventType is not None
        runs[event.run.runId].append(event)
    for run_id, run_events in runs.items():
        states = [e.eventType for e in run_events]
        assert states[0] == RunState.START and states.count(RunState.START) == 1, (run_id, states)
        assert len([s for s in states if s in (RunState.COMPLETE, RunState.FAIL, RunState.ABORT)]) == 1, (
            states
        )
        assert len({e.job.name for e in run_events}) == 1
    roots = [e for e in parsed if "parent" not in (e.run.facets or {})]
    assert {e.run.runId for e in roots} == {roots[0].run.runId}, "one run of the product, the root"
    root_id = roots[0].run.runId
    for event in parsed:
        parent = (event.run.facets or {}).get("parent")
        if parent is None:
            continue
        assert parent.run.runId in runs, "every parent is a run with events of its own"
        assert parent.root.run.runId == root_id
        (above,) = {e.job.name for e in runs[parent.run.runId]}
        assert parent.job.name == above
    return parsed


def graph(parsed: list[RunEvent]) -> tuple[set[tuple[str, str]], dict[str, DatasetName]]:
    """The dataset graph (edges by the datasets' names) and, per job, the dataset it writes."""
    edges, writes = set(), {}
    for event in parsed:
        if event.eventType != RunState.COMPLETE:
            continue
        for output in event.outputs or []:
            writes[event.job.name] = DatasetName(output.namespace, output.name)
            for source in event.inputs or []:
                edges.add((source.name.rsplit("/", 1)[-1], output.name.rsplit("/", 1)[-1]))
    return edges, writes


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("lineage") / "lakehouse"
    shutil.copytree(ROOT / "examples/lakehouse", root, ignore=shutil.ignore_patterns(".floe", "target"))
    with Receiver() as receiver:
        env = {
            **os.environ,
            "OPENLINEAGE_URL": receiver.url,
            "OPENLINEAGE_API_KEY": API_KEY,
            "OPENLINEAGE_NAMESPACE": "acme-floe",
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
        done = subprocess.run(
            [sys.executable, "-m", "floe", "run", str(root), "--env", "dev", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        yield {
            "root": root,
            "done": done,
            "events": list(receiver.events),
            "bodies": list(receiver.bodies),
            "headers": list(receiver.headers),
            "report": json.loads(done.stdout) if done.stdout else None,
        }


def test_the_lakehouse_run_sends_events_every_one_parsing_with_the_clients_classes(
    lakehouse: dict[str, Any],
) -> None:
    assert lakehouse["done"].returncode == 0, lakehouse["done"].stderr
    parsed = check_events(lakehouse["events"])
    jobs = {e.job.name for e in parsed}
    nodes = [
        "seed.lakehouse.raw_customers",
        "seed.lakehouse.raw_orders",
        "model.lakehouse.stg_customers",
        "model.lakehouse.stg_orders",
        "model.lakehouse.customer_revenue",
        "model.lakehouse.daily_revenue",
    ]
    assert jobs == {
        "lakehouse.dev",
        "lakehouse.dev.staging",
        "lakehouse.dev.marts",
        *(f"lakehouse.dev.{n}" for n in nodes),
    }
    assert {e.job.namespace for e in parsed} == {"acme-floe"}  # OPENLINEAGE_NAMESPACE, as for dbt-ol
    assert all(e.eventType in (RunState.START, RunState.COMPLETE) for e in parsed)
    # each node's run hangs under its transform's, each transform's under the product's
    parents = {e.job.name: e.run.facets["parent"].job.name for e in parsed if "parent" in e.run.facets}
    assert parents["lakehouse.dev.model.lakehouse.stg_orders"] == "lakehouse.dev.staging"
    assert parents["lakehouse.dev.model.lakehouse.daily_revenue"] == "lakehouse.dev.marts"
    assert parents["lakehouse.dev.marts"] == "lakehouse.dev"
    # the client's API key went in the header, never in an event
    assert all(h.get("Authorization") == f"Bearer {API_KEY}" for h in lakehouse["headers"])
    assert not [b for b in lakehouse["bodies"] if API_KEY.encode() in b]


def test_the_dataset_graph_has_one_dataset_per_model_and_single_edges_from_spark_to_duckdb(
    lakehouse: dict[str, Any],
) -> None:
    parsed = check_events(lakehouse["events"])
    edges, writes = graph(parsed)
    assert edges == {
        ("raw_customers", "stg_customers"),
        ("raw_orders", "stg_orders"),
        ("stg_customers", "stg_orders"),
        ("stg_orders", "customer_revenue"),
        ("stg_customers", "customer_revenue"),
        ("stg_orders", "daily_revenue"),
    }
    datasets = {(d.namespace, d.name) for e in parsed for d in [*(e.inputs or []), *(e.outputs or [])]}
    assert len(datasets) == 6, datasets  # one per model and seed: Spark's output is DuckDB's input
    warehouse = lakehouse["root"] / ".floe/iceberg/floe/warehouse/lakehouse_dev"
    stg_orders = writes["lakehouse.dev.model.lakehouse.stg_orders"]  # written by Spark …
    assert stg_orders == DatasetName("file", str(warehouse / "stg_orders"))
    revenue = next(
        e for e in parsed if e.job.name.endswith("customer_revenue") and e.eventType == RunState.COMPLETE
    )
    assert stg_orders in [DatasetName(i.namespace, i.name) for i in revenue.inputs]  # … read by DuckDB
    assert revenue.run.facets["floe_compute"].engine == "duckdb"
    spark = next(e for e in parsed if e.job.name.endswith("stg_orders") and e.eventType == RunState.COMPLETE)
    assert spark.run.facets["floe_compute"].engine == "spark"
    output = spark.outputs[0]
    assert [f.name for f in output.facets["schema"].fields] == [
        "order_id",
        "customer_id",
        "amount",
        "ordered_at",
    ]
    assert output.facets["schema"].fields[2].type == "decimal(10, 2)"
    (link,) = output.facets["symlinks"].identifiers
    assert (link.name, link.type) == ("lakehouse_dev.stg_orders", "TABLE")
    assert link.namespace == lakehouse["report"]["catalog"]["uri"]
    assert (output.facets["catalog"].framework, output.facets["catalog"].name) == ("iceberg", "floe")
    assert "from lakehouse_dev.raw_orders" in spark.job.facets["sql"].query
    assert spark.job.facets["sql"].dialect == "spark" and revenue.job.facets["sql"].dialect == "duckdb"


def test_floes_facets_say_the_compute_why_it_is_allowed_and_each_hand_off(lakehouse: dict[str, Any]) -> None:
    parsed = check_events(lakehouse["events"])
    for event in lakehouse["events"]:
        for name, facet in event["run"].get("facets", {}).items():
            if name.startswith("floe_"):
                definition = facet["_schemaURL"].split("#/$defs/")[1]
                jsonschema.validate(facet, {**FLOE_FACETS, "$ref": f"#/$defs/{definition}"})
    staging = next(
        e for e in parsed if e.job.name == "lakehouse.dev.staging" and e.eventType == RunState.COMPLETE
    )
    compute = staging.run.facets["floe_compute"]
    assert (compute.compute, compute.engine, compute.catalogAccess["inPlace"]) == (
        "spark-local",
        "spark",
        True,
    )
    assert compute.allowedBy[0].startswith("approved by manifest 'acme-lakehouse' (")
    assert "platform/enterprise.yaml:" in compute.allowedBy[0]
    assert any("transform 'staging'" in step and "floe.yaml:" in step for step in compute.allowedBy)
    marts = next(
        e for e in parsed if e.job.name == "lakehouse.dev.marts" and e.eventType == RunState.COMPLETE
    )
    (handoff,) = marts.run.facets["floe_handoffs"].handoffs
    plan = floe.plan(lakehouse["root"], env="dev")
    (crossing,) = plan.crossings
    assert {k: handoff[k] for k in crossing.to_json()} == crossing.to_json()  # the plan's crossing, as it is
    assert (handoff["from_compute"], handoff["to_compute"], handoff["kind"]) == (
        "spark-local",
        "duckdb",
        "in_place",
    )
    assert handoff["relations"] == ["floe.lakehouse_dev.stg_customers", "floe.lakehouse_dev.stg_orders"]
    run = next(e for e in parsed if e.job.name == "lakehouse.dev" and e.eventType == RunState.COMPLETE)
    assert run.run.facets["floe_run"].namespace == "lakehouse_dev"
    assert run.run.facets["processing_engine"].name == "floe"


# -- a failing run, secrets, and a back end that is down or slow --------------------------------------


def failing_product(tmp_path: Path, served: Any) -> Path:
    """DuckDB computes on a declared REST catalog whose client secret is the canary; the secret
    also reaches a model's SQL (through env_var), and a model that fails prints its SQL."""
    root = product(
        tmp_path / "failing",
        "failing",
        """
        - {type: dbt, name: base, path: models/base/, compute: duckdb-b}
        - {type: dbt, name: left, path: models/left/, compute: duckdb}
        - {type: dbt, name: after_left, path: models/after_left/, compute: duckdb}
        - {type: dbt, name: right, path: models/right/, compute: duckdb}
    """,
        {
            **DUO_FILES,
            "models/left/lefty.sql": "select n, '{{ env_var(\"FLOE_LINEAGE_SECRET\") }}' as tag from {{ ref('numbers') }} where nope\n",
            "models/right/righty.sql": "select sum(n) as total, '{{ env_var(\"FLOE_LINEAGE_SECRET\") }}' as tag "
            "from {{ ref('numbers') }}\n",
        },
    )
    declare_catalog(root, served, "FLOE_LINEAGE_SECRET", f"oauth2_server_uri: {served.uri}/v1/oauth/tokens")
    return root


def test_a_failing_run_sends_fail_and_abort_events_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from floe.catalog.rest_server import EmbeddedCatalog

    monkeypatch.setenv("FLOE_LINEAGE_SECRET", CANARY)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", API_KEY)
    with EmbeddedCatalog(tmp_path / "lake", name="lake") as served, Receiver() as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        lines = io.StringIO()
        report = floe.run(failing_product(tmp_path, served), env="dev", progress=lines)
        events = list(receiver.events)
        bodies = list(receiver.bodies)
    assert {t.name: t.status for t in report.transforms} == {
        "base": "success",
        "left": "failed",
        "after_left": "skipped",
        "right": "success",
    }
    assert CANARY not in lines.getvalue()
    parsed = check_events(events)
    final = {
        e.job.name.split(".", 2)[2] if e.job.name.count(".") > 1 else "run": e
        for e in parsed
        if e.eventType != RunState.START
    }
    assert (
        final["run"].eventType == RunState.FAIL and "left" in final["run"].run.facets["errorMessage"].message
    )
    assert (
        final["left"].eventType == RunState.FAIL
        and "nope" in final["left"].run.facets["errorMessage"].message
    )
    assert final["model.failing.lefty"].eventType == RunState.FAIL
    assert final["after_left"].eventType == RunState.ABORT
    assert "'left' failed" in final["after_left"].run.facets["errorMessage"].message
    assert final["right"].eventType == RunState.COMPLETE and final["base"].eventType == RunState.COMPLETE
    righty = final["model.failing.righty"]
    assert "sum(n) as total" in righty.job.facets["sql"].query  # the SQL is there, the secret is not
    # the declared catalog's tables are located through it, with its client credentials
    assert righty.outputs[0].namespace == "file" and righty.outputs[0].name.endswith("/failing_dev/righty")
    assert righty.outputs[0].facets["catalog"].name == "lake"
    leaked = [json.loads(b)["job"]["name"] for b in bodies if CANARY.encode() in b or API_KEY.encode() in b]
    assert not leaked, f"a secret reached the lineage back end in the events of {leaked}"


def quick_product(tmp_path: Path) -> Path:
    return product(
        tmp_path / "quick",
        "quick",
        "- {type: dbt, name: base, path: models/base/, compute: duckdb}",
        {"models/base/numbers.sql": DUO_FILES["models/base/numbers.sql"]},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_back_end_that_is_down_never_fails_the_run_and_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    lines = io.StringIO()
    report = floe.run(quick_product(tmp_path), env="dev", progress=lines)
    assert report.success
    reported = [line for line in lines.getvalue().splitlines() if line.startswith("lineage:")]
    assert len(reported) == 1, lines.getvalue()
    assert "not delivered to http http://127.0.0.1:" in reported[0] and "ConnectionError" in reported[0]
    assert not [k for k in os.environ if k.startswith("OPENLINEAGE__")]  # the client's aliases went away


def test_a_slow_back_end_delays_the_end_of_the_run_by_at_most_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver answers each event after 30 s; the run waits for them at most 2 s, then ends."""
    monkeypatch.setenv("FLOE_LINEAGE_TIMEOUT", "2")
    with Receiver(delay=30) as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TIMEOUT", "60")
        lines = io.StringIO()
        report = floe.run(quick_product(tmp_path), env="dev", progress=lines)
        assert report.success
        assert 2 <= report.phases["observers"] < 4  # the bound, and not the receiver's 30 s
        reported = [line for line in lines.getvalue().splitlines() if line.startswith("lineage:")]
        assert len(reported) == 1 and "still being sent" in reported[0], lines.getvalue()
        assert len(receiver.events) >= 1  # the first event did arrive


def test_lineage_is_off_without_configuration_and_with_openlineage_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from floe.lineage.settings import settings

    assert not settings({}, cwd=tmp_path, home=tmp_path).enabled
    assert settings({"OPENLINEAGE_URL": "http://x"}, cwd=tmp_path, home=tmp_path).enabled
    assert not settings(
        {"OPENLINEAGE_URL": "http://x", "OPENLINEAGE_DISABLED": "true"}, tmp_path, tmp_path
    ).enabled
    (tmp_path / "openlineage.yml").write_text("transport: {type: console}\n")
    assert settings({}, cwd=tmp_path, home=tmp_path / "nobody").why.endswith("openlineage.yml")
    with Receiver() as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
        assert floe.run(quick_product(tmp_path), env="dev").success
        assert receiver.events == []


def test_dataset_names_follow_the_naming_spec_for_table_locations() -> None:
    assert from_location("file:///srv/wh/ns/t") == DatasetName("file", "/srv/wh/ns/t")
    assert from_location("/srv/wh/ns/t/") == DatasetName("file", "/srv/wh/ns/t")
    assert from_location("s3a://lake/wh/ns/t") == DatasetName("s3://lake", "wh/ns/t")
    assert from_location("gs://lake/wh/t") == DatasetName("gs://lake", "wh/t")
    assert from_location("abfs://c@acct.dfs.core.windows.net/wh/t") == DatasetName(
        "abfss://c@acct.dfs.core.windows.net", "wh/t"
    )
    assert from_location("hdfs://nn:8020/wh/t") == DatasetName("hdfs://nn:8020", "/wh/t")


# -- the enterprise manifest's transport ----------------------------------------------------------------


def governed_product(tmp_path: Path, transport: str, namespace: str = "acme-governed") -> Path:
    """The quick product under an enterprise manifest whose ``lineage:`` has ``transport`` (YAML
    lines under ``transport:``)."""
    root = quick_product(tmp_path)
    manifest = root / "platform" / "enterprise.yaml"
    block = f"lineage:\n  namespace: {namespace}\n  transport:\n" + "".join(
        f"    {line.strip()}\n" for line in transport.strip().splitlines()
    )
    manifest.write_text(manifest.read_text() + block)
    return root


def leaks(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` (artifacts, dbt's logs, the run's state) that holds ``secret``."""
    return [
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    ]


def test_the_enterprise_manifests_http_transport_gets_the_events_with_its_api_key_as_a_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's transport wins over OPENLINEAGE_URL (a decoy receiver gets nothing) and its
    namespace over OPENLINEAGE_NAMESPACE; the key comes from the secret reference, reaches the
    back end only as the Authorization header, and no event, artifact, log or progress line."""
    monkeypatch.setenv("FLOE_LINEAGE_KEY", API_KEY)
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "from-the-shell")
    with Receiver() as receiver, Receiver() as decoy:
        monkeypatch.setenv("OPENLINEAGE_URL", decoy.url)
        root = governed_product(
            tmp_path,
            f"""
            type: http
            url: {receiver.url}
            timeout: 5
            auth: {{type: api_key, api_key: {{secret_ref: FLOE_LINEAGE_KEY}}}}
        """,
        )
        lines = io.StringIO()
        report = floe.run(root, env="dev", progress=lines)
        events, bodies, headers = list(receiver.events), list(receiver.bodies), list(receiver.headers)
        assert decoy.events == []
    assert report.success, lines.getvalue()
    parsed = check_events(events)
    assert {e.job.namespace for e in parsed} == {"acme-governed"}
    assert {e.job.name for e in parsed} >= {"quick.dev", "quick.dev.base", "quick.dev.model.quick.numbers"}
    assert {h.get("Authorization") for h in headers} == {f"Bearer {API_KEY}"}
    assert not [b for b in bodies if API_KEY.encode() in b]
    assert API_KEY not in lines.getvalue()
    assert not leaks(root, API_KEY)
    compiled = json.loads((root / "target/floe/compiled.json").read_text())
    assert compiled["lineage"]["transport"]["auth"]["api_key"] == {"secret_ref": "FLOE_LINEAGE_KEY"}


def test_the_enterprise_manifests_file_transport_writes_the_events_to_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    target = tmp_path / "lineage" / "events.jsonl"
    target.parent.mkdir()
    root = governed_product(tmp_path, f"type: file\nlog_file_path: {target}\nappend: true")
    lines = io.StringIO()
    assert floe.run(root, env="dev", progress=lines).success, lines.getvalue()
    events = [json.loads(line) for line in target.read_text().splitlines()]
    parsed = check_events(events)
    assert [e.eventType for e in parsed if e.job.name == "quick.dev"] == [RunState.START, RunState.COMPLETE]
    assert "lineage:" not in lines.getvalue()


def test_openlineage_disabled_still_turns_off_the_manifests_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    with Receiver() as receiver:
        root = governed_product(tmp_path, f"type: http\nurl: {receiver.url}")
        assert floe.run(root, env="dev").success
        assert receiver.events == []


def test_an_unset_lineage_secret_is_reported_once_and_never_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOE_LINEAGE_UNSET", raising=False)
    with Receiver() as receiver:
        root = governed_product(
            tmp_path,
            f"type: http\nurl: {receiver.url}\n"
            "auth: {type: api_key, api_key: {secret_ref: FLOE_LINEAGE_UNSET}}",
        )
        lines = io.StringIO()
        assert floe.run(root, env="dev", progress=lines).success
        assert receiver.events == []
    reported = [line for line in lines.getvalue().splitlines() if line.startswith("lineage:")]
    assert len(reported) == 1, lines.getvalue()
    assert (
        "FLOE_LINEAGE_UNSET" in reported[0]
        and "manifest 'acme'" in reported[0]
        and "enterprise.yaml:" in reported[0]
    )


def test_the_manifests_transport_keys_map_one_to_one_onto_the_clients() -> None:
    """Every key the schema takes reaches the OpenLineage client's config of its transport, as
    written, through the client's own transport factory."""
    from openlineage.client.transport import get_default_factory

    from floe.governed_fields import LINEAGE_TRANSPORT_KEYS
    from floe.lineage.settings import transport_config
    from floe.model import SecretReference
    from floe.schemas import SchemaStore
    from floe.specs import LineageAuthSpec, LineageSpec, LineageTransportSpec

    found = SchemaStore().subschema_at(
        "https://floe.dev/schemas/v1/manifest.schema.json", ("lineage", "transport")
    )
    assert found is not None
    assert set(found[0]["properties"]) - {"type"} == {k for ks in LINEAGE_TRANSPORT_KEYS.values() for k in ks}
    every = {
        "url": "http://127.0.0.1:9",
        "endpoint": "v2/lineage",
        "timeout": 1.5,
        "verify": False,
        "compression": "gzip",
        "auth": LineageAuthSpec("api_key", SecretReference("FLOE_LINEAGE_KEY")),
        "log_file_path": "/tmp/floe-lineage.jsonl",
        "append": True,
    }
    for kind, keys in LINEAGE_TRANSPORT_KEYS.items():
        spec = LineageSpec(LineageTransportSpec(kind, **{k: every[k] for k in keys}))
        transport = get_default_factory().create(transport_config(spec, {"FLOE_LINEAGE_KEY": API_KEY}))
        assert transport.kind == kind
        for key in keys:
            value = getattr(transport.config, key)
            if key == "auth":
                assert value.get_bearer() == f"Bearer {API_KEY}"
            else:
                assert str(value) == str(every[key]), key
