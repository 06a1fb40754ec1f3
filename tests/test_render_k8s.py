"""Kubernetes Jobs of a real data product: the example `shop`, compiled, rendered, checked by the
Kubernetes client's own models, with secrets only ever as ``secretKeyRef``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from kubernetes.client import ApiClient, V1Job

from floe import __version__
from floe.compiler import Compiled, compile_path
from floe.errors import FloeError
from floe.kubernetes import (
    HEADER,
    default_secret_name,
    dns_name,
    job_name,
    jobs_dir,
    label_value,
    render_jobs,
    render_plan,
    secret_key,
    validate_job,
    write_jobs,
)
from floe.plugins import EngineRegistry

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CANARY = "canary-Zq8vT3-do-not-leak"
CATALOG = """\
catalog:
  type: rest
  uri: http://polaris.data.svc:8181/api/catalog
  warehouse: lake
  client_id: floe
  client_secret: {secret_ref: POLARIS_CLIENT_SECRET}
"""


PLANS: dict[tuple[Any, ...], Any] = {}


def render(compiled: Compiled, environment: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """``render_jobs`` with the product's plan made once per set of transforms: each plan costs a
    ``dbt parse``, and these tests vary what the plan does not depend on (images, resources,
    secrets, names). The plan is ``render_plan``'s, of a copy of the same product."""
    key = (compiled.name, environment, tuple((t.name, t.path, t.compute) for t in compiled.transforms))
    if (
        key not in PLANS
        and compiled.source.kind == "DataProduct"
        and environment in compiled.governance.environments
    ):
        PLANS[key] = render_plan(compiled, environment, kwargs.get("engines"))
    return render_jobs(compiled, environment, *args, plan=PLANS.get(key), **kwargs)


@attrs.frozen
class FakeResponse:
    """What ``ApiClient.deserialize`` reads: JSON text in ``.data``."""

    data: str


@pytest.fixture(scope="module")
def registry() -> EngineRegistry:
    return EngineRegistry.discover()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example product with prod reading a MotherDuck token, a catalog secret, and a domain
    lowering the large compute's memory limit; the token's value (a canary) is in the environment."""
    shutil.copytree(EXAMPLES / "platform", tmp_path / "platform")
    shutil.copytree(EXAMPLES / "shop", tmp_path / "shop", ignore=shutil.ignore_patterns("target", ".floe"))
    enterprise = tmp_path / "platform/enterprise.yaml"
    text = enterprise.read_text().replace(
        "duckdb: { schema: analytics }",
        "duckdb: { schema: analytics, path: 'md:shop', motherduck_token: {secret_ref: MOTHERDUCK_TOKEN} }",
    )
    enterprise.write_text(text + CATALOG)
    sales = tmp_path / "platform/domains/sales.yaml"
    sales.write_text(
        sales.read_text().replace(
            "config: { threads: 6 }",
            "config: { threads: 6 }\n        resources: { limits: { memory: 10Gi } }",
        )
    )
    monkeypatch.setenv("MOTHERDUCK_TOKEN", CANARY)
    monkeypatch.setenv("POLARIS_CLIENT_SECRET", CANARY + "-catalog")
    return tmp_path / "shop"


def compiled_shop(shop: Path, registry: EngineRegistry) -> Compiled:
    return compile_path(shop, registry)


def by_transform(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {job["metadata"]["labels"]["floe.dev/transform"]: job for job in jobs}


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def test_every_job_deserializes_into_the_kubernetes_v1job_model(shop: Path, registry: EngineRegistry) -> None:
    compiled = compiled_shop(shop, registry)
    api = ApiClient()
    for env in ("dev", "prod"):
        jobs = render(compiled, env, None, "data", engines=registry)
        assert [j["metadata"]["labels"]["floe.dev/transform"] for j in jobs] == ["staging", "marts"]
        for job in jobs:
            model = api.deserialize(FakeResponse(json.dumps(job)), "V1Job")
            assert isinstance(model, V1Job)
            assert (model.api_version, model.kind) == ("batch/v1", "Job")
            assert model.metadata.name and model.metadata.namespace == "data"
            assert model.spec.backoff_limit == 0 and model.spec.ttl_seconds_after_finished > 0
            pod = model.spec.template.spec
            assert pod.restart_policy == "Never" and pod.init_containers is None and pod.volumes is None
            assert len(pod.containers) == 1
            c = pod.containers[0]
            assert c.name and c.image == f"floe:{__version__}"
            transform = job["metadata"]["labels"]["floe.dev/transform"]
            assert c.command == ["floe", "run", "/workspace/shop", "--env", env, "--select", transform]
            assert c.env[0].name == "FLOE_ENV" and c.env[0].value == env
            assert model.metadata.labels == {
                "app.kubernetes.io/name": "floe",
                "floe.dev/product": "shop",
                "floe.dev/transform": transform,
                "floe.dev/compute": {"staging": "duckdb-large", "marts": "duckdb"}[transform],
                "floe.dev/environment": env,
            }
            assert model.spec.template.metadata.labels == model.metadata.labels
            # the plan's order: marts waits for staging's Job
            assert (
                model.metadata.annotations["floe.dev/depends-on"]
                == {"staging": "", "marts": f"shop-staging-{env}"}[transform]
            )
            # nothing was dropped by the model: it serializes back to the very manifest
            assert api.sanitize_for_serialization(model) == job
            assert validate_job(job).metadata.name == job["metadata"]["name"]


def test_secret_refs_are_secret_key_refs_and_never_values(shop: Path, registry: EngineRegistry) -> None:
    compiled = compiled_shop(shop, registry)
    prod = by_transform(render(compiled, "prod", engines=registry))
    dev = by_transform(render(compiled, "dev", engines=registry))
    ref = {"secretKeyRef": {"name": "floe-shop-secrets", "key": "motherduck-token"}}
    catalog = {"secretKeyRef": {"name": "floe-shop-secrets", "key": "polaris-client-secret"}}
    assert container(prod["marts"])["env"] == [
        {"name": "FLOE_ENV", "value": "prod"},
        {"name": "MOTHERDUCK_TOKEN", "valueFrom": ref},
        {"name": "POLARIS_CLIENT_SECRET", "valueFrom": catalog},
    ]
    # the token is referenced only where that environment's settings of the compute reference it
    for job in (prod["staging"], dev["staging"], dev["marts"]):
        assert [e["name"] for e in container(job)["env"]] == ["FLOE_ENV", "POLARIS_CLIENT_SECRET"]
    for job in [*prod.values(), *dev.values()]:
        for var in container(job)["env"][1:]:
            assert set(var) == {"name", "valueFrom"}
    custom = render(compiled, "prod", secret_name="shop-prod-credentials", engines=registry)
    keys = {e["valueFrom"]["secretKeyRef"]["name"] for j in custom for e in container(j)["env"][1:]}
    assert keys == {"shop-prod-credentials"}

    written = [
        *write_jobs(list(prod.values()), jobs_dir(compiled, "prod")),
        *write_jobs(list(dev.values()), jobs_dir(compiled, "dev")),
    ]
    assert sorted(p.parent.name for p in written) == ["dev", "dev", "prod", "prod"]
    for path in written:
        text = path.read_text()
        assert CANARY not in text
        assert text.startswith(HEADER)
    assert CANARY not in json.dumps(list(prod.values()) + list(dev.values()))


def test_every_job_reads_the_manifests_lineage_key_as_a_secret_key_ref(
    shop: Path, registry: EngineRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    enterprise = shop.parent / "platform/enterprise.yaml"
    enterprise.write_text(
        enterprise.read_text() + "lineage:\n  transport: {type: http, url: 'http://marquez.data.svc',"
        " auth: {type: api_key, api_key: {secret_ref: LINEAGE_API_KEY}}}\n"
    )
    monkeypatch.setenv("LINEAGE_API_KEY", CANARY + "-lineage")
    jobs = render(compiled_shop(shop, registry), "dev", engines=registry)
    key = {"secretKeyRef": {"name": "floe-shop-secrets", "key": "lineage-api-key"}}
    for job in jobs:
        assert {"name": "LINEAGE_API_KEY", "valueFrom": key} in container(job)["env"]
    assert CANARY not in json.dumps(jobs)


def test_names_are_dns_1123_unique_and_deterministic(shop: Path, registry: EngineRegistry) -> None:
    (shop / "models/marts/core").mkdir()
    (shop / "floe.yaml").write_text(
        (shop / "floe.yaml").read_text()
        + (
            "  - {type: dbt, path: models/marts/core/, name: core_orders}\n"
            "  - {type: dbt, path: models/marts/core/, name: core-orders}\n"
            f"  - {{type: dbt, path: models/marts/core/, name: {'x' * 63}}}\n"
        )
    )
    compiled = compiled_shop(shop, registry)
    names = []
    for env in ("dev", "prod"):
        jobs = render(compiled, env, engines=registry)
        assert jobs == render(compiled, env, engines=registry)
        names += [job["metadata"]["name"] for job in jobs]
        for job in jobs:
            assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in job["metadata"]["labels"].values())
    assert all(DNS_1123.match(n) and len(n) <= 63 for n in names), names
    assert len(set(names)) == len(names) == 10
    # the plan's build order: the transforms with nothing to wait for first, in declaration order
    assert (names[0], names[4]) == ("shop-staging-dev", "shop-marts-dev")
    assert names[1].startswith("shop-core-orders-dev-") and names[2] == "shop-core-orders-dev"
    assert names[3].startswith("shop-xxxx") and len(names[3]) == 63  # truncated, with a hash suffix


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("shop", "staging", "prod"), "shop-staging-prod"),
        (("Shop", "staging", "prod"), None),
        (("shop", "a_b", "dev"), None),
        (("p" * 40, "t" * 40, "dev"), None),
        (("_", "_", "_"), None),
    ],
)
def test_dns_name(parts: tuple[str, str, str], expected: str | None) -> None:
    name = job_name(*parts)
    assert DNS_1123.match(name) and len(name) <= 63
    assert name == job_name(*parts)
    if expected is not None:
        assert name == expected
    else:
        assert re.search(r"-?[0-9a-f]{8}$", name)
    assert job_name("shop", "a_b", "dev") != job_name("shop", "a-b-dev", "") != job_name("shop", "a", "b-dev")
    assert dns_name("x" * 100) != dns_name("x" * 101)


def test_label_values_and_secret_keys() -> None:
    assert label_value("duckdb-large") == "duckdb-large"
    for raw in ("ends_", "-starts", "a" * 64, "spa ce"):
        value = label_value(raw)
        assert LABEL_VALUE.match(value) and len(value) <= 63 and value != raw
    assert secret_key("MOTHERDUCK_TOKEN") == "motherduck-token"
    assert secret_key("_PG_PASSWORD") == "-pg-password"
    assert default_secret_name("shop") == "floe-shop-secrets"
    assert DNS_1123.match(default_secret_name("sales_shop"))


@pytest.mark.req("REQ-015")
def test_resources_are_the_engines_requirements_with_manifest_overrides(
    shop: Path, registry: EngineRegistry
) -> None:
    compiled = compiled_shop(shop, registry)
    gov = compiled.governance
    for env in ("dev", "prod"):
        jobs = by_transform(render(compiled, env, engines=registry))
        for transform in compiled.transforms:
            compute = gov.compute_for(transform.compute, env)
            expected = registry.engines[compute.engine].get_resource_requirements(compute)
            assert container(jobs[transform.name])["resources"] == expected
        # enterprise requests and cpu limit, the sales domain's memory limit
        assert container(jobs["staging"])["resources"] == {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "10Gi"},
        }
        # the engine's defaults where no manifest overrides them
        assert container(jobs["marts"])["resources"] == {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }


@pytest.mark.req("REQ-024")
def test_a_transform_runs_on_the_same_compute_and_image_in_every_environment(
    shop: Path, registry: EngineRegistry
) -> None:
    compiled = compiled_shop(shop, registry)
    dev = by_transform(render(compiled, "dev", engines=registry))
    prod = by_transform(render(compiled, "prod", engines=registry))
    for name in dev:
        labels = dev[name]["metadata"]["labels"], prod[name]["metadata"]["labels"]
        assert labels[0]["floe.dev/compute"] == labels[1]["floe.dev/compute"]
        assert container(dev[name])["image"] == container(prod[name])["image"]
        assert container(dev[name])["resources"] == container(prod[name])["resources"]


def test_unknown_environment_is_a_clear_error(shop: Path, registry: EngineRegistry) -> None:
    compiled = compiled_shop(shop, registry)
    with pytest.raises(FloeError, match=r"unknown environment 'staging'.*knows dev, prod") as info:
        render(compiled, "staging", engines=registry)
    assert info.value.problems[0].expected == "one of dev, prod"
    with pytest.raises(FloeError) as typo:
        render(compiled, "prd", engines=registry)
    assert typo.value.problems[0].fix == "did you mean 'prod'?"


def test_a_manifest_has_no_jobs(shop: Path, registry: EngineRegistry) -> None:
    compiled = compile_path(shop.parent / "platform/domains/sales.yaml", registry)
    with pytest.raises(FloeError, match="is a manifest, not a data product"):
        render(compiled, "dev", engines=registry)


def test_options_are_checked_and_applied(shop: Path, registry: EngineRegistry) -> None:
    compiled = compiled_shop(shop, registry)
    job = render(
        compiled,
        "prod",
        "registry.example.com/floe-shop:1.2.0",
        "analytics",
        engines=registry,
        ttl_seconds=600,
    )[0]
    assert container(job)["image"] == "registry.example.com/floe-shop:1.2.0"
    assert job["metadata"]["namespace"] == "analytics" and job["spec"]["ttlSecondsAfterFinished"] == 600
    assert "namespace" not in render(compiled, "prod", engines=registry)[0]["metadata"]
    with pytest.raises(FloeError) as info:
        render(compiled, "prod", "bad image", "Not_A_Namespace", secret_name="Bad_Secret", engines=registry)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 3 and "image 'bad image'" in messages[0]
    assert "namespace 'Not_A_Namespace'" in messages[1] and "secret name 'Bad_Secret'" in messages[2]


def test_validation_rejects_what_the_model_would_drop_or_refuse(shop: Path, registry: EngineRegistry) -> None:
    job = render(compiled_shop(shop, registry), "dev", engines=registry)[0]
    typo = json.loads(json.dumps(job))
    container(typo)["imagePullPolicyy"] = "Always"
    with pytest.raises(
        FloeError, match=r"\$\.spec\.template\.spec\.containers\[0\]\.imagePullPolicyy: unknown"
    ):
        validate_job(typo)
    nameless = json.loads(json.dumps(job))
    del container(nameless)["name"]
    with pytest.raises(FloeError, match=r"not a valid batch/v1 Job.*name"):
        validate_job(nameless)
    empty = json.loads(json.dumps(job))
    del empty["spec"]
    with pytest.raises(FloeError, match="required field is missing"):
        validate_job(empty)
    long_name = json.loads(json.dumps(job))
    long_name["metadata"]["name"] = "x" * 64
    with pytest.raises(FloeError, match="not a DNS-1123 label"):
        validate_job(long_name)


def test_write_jobs_is_atomic_per_file_and_removes_stale_jobs_of_that_environment(
    shop: Path, registry: EngineRegistry
) -> None:
    compiled = compiled_shop(shop, registry)
    prod_dir, dev_dir = jobs_dir(compiled, "prod"), jobs_dir(compiled, "dev")
    assert prod_dir == shop / "target/floe/k8s/prod"
    write_jobs(render(compiled, "prod", engines=registry), prod_dir)
    write_jobs(render(compiled, "dev", engines=registry), dev_dir)
    (prod_dir / "notes.yaml").write_text("# not floe's\nkind: ConfigMap\n")
    assert sorted(p.name for p in prod_dir.iterdir()) == [
        "notes.yaml",
        "shop-marts-prod.yaml",
        "shop-staging-prod.yaml",
    ]

    # the marts transform goes away: its prod Job file goes with it, dev is not touched
    (shop / "floe.yaml").write_text(
        (shop / "floe.yaml").read_text().replace("  - type: dbt\n    path: models/marts/\n", "")
    )
    smaller = compiled_shop(shop, registry)
    written = write_jobs(render(smaller, "prod", engines=registry), prod_dir)
    assert written == [prod_dir / "shop-staging-prod.yaml"]
    assert sorted(p.name for p in prod_dir.iterdir()) == ["notes.yaml", "shop-staging-prod.yaml"]
    assert sorted(p.name for p in dev_dir.iterdir()) == ["shop-marts-dev.yaml", "shop-staging-dev.yaml"]
    loaded = yaml.safe_load(written[0].read_text())
    assert loaded == render(smaller, "prod", engines=registry)[0]
    with pytest.raises(FloeError, match="several environments"):
        write_jobs(
            render(compiled, "prod", engines=registry) + render(compiled, "dev", engines=registry), prod_dir
        )
