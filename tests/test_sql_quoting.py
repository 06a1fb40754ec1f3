"""SQL floe builds from manifest values, read back by the engines' own parsers (hardening, issue 5).

Requirement: SQL built from manifest values (identifiers, URIs, paths) is quoted so that no value
can change the statement. Hypothesis writes hostile values (every kind of quote, backslashes,
semicolons, comments, newlines, Jinja delimiters, placeholders, NUL, unicode, very long strings)
into each value a statement embeds; the statement is built by floe's own functions and parsed by
the engine's parser. The property: the statement count and kinds, and every token that is not a
value, are those of the same statement built from harmless values, and each value reads back
exactly as it was given; a value no SQL text can hold (NUL) is refused with a floe error.

Where floe writes values into SQL text (everything else binds parameters or passes configuration):

- DuckDB ``get_catalog_attachment_sql`` (``CREATE SECRET``, ``ATTACH``): catalog name, uri,
  warehouse, client_id, oauth2_server_uri, and the secrets, rendered by
  :func:`floe.sqlsecrets.render_secret_placeholders` or bound by ``bind_secret_placeholders``;
  then written into the ``floe run`` profile, which dbt renders with Jinja before the plugin runs it;
- dbt-duckdb's own ``ATTACH … AS <catalog name>`` (unquoted) of the ``floe run`` profile;
- DuckDB ``set_statement`` (the connection check) and dbt-duckdb's own ``SET <key>`` (unquoted) of
  the profile's ``settings``;
- Snowflake ``schema_lookup_sql`` (the connection check), Trino ``schema_lookup_sql``.

Parsers: DuckDB's own (``duckdb.tokenize``, ``extract_statements``; each literal and identifier is
read back by DuckDB itself, and the ``CREATE SECRET`` of a token is executed for real). No
Snowflake or Trino parser runs offline: their statements are checked with sqlglot's dialects, a
cross-check. Redshift and the PostgreSQL example bind every value as a server-side parameter (their
own tests run those queries against the Redshift peer and a real PostgreSQL); Spark attaches
catalogs through configuration (``spark.sql.catalog.<name>.*``), never SQL, as tested below.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import hypothesis
import pytest
import sqlglot
from hypothesis import strategies as st
from sqlglot import exp

from floe.engines import snowflake, trino
from floe.engines.duckdb import KEYWORDS_NOT_NAMES, extension_files, set_statement
from floe.errors import FloeError, PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.plugins import Engine, EngineRegistry
from floe.secrets import is_credential_key
from floe.sqlquote import quote_identifier
from floe.sqlsecrets import bind_secret_placeholders, render_secret_placeholders

SETTINGS = hypothesis.settings(
    deadline=None,
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
        hypothesis.HealthCheck.filter_too_much,
    ],
)
EXAMPLES = hypothesis.settings(SETTINGS, max_examples=250)
"""Per SQL builder: the module stays well under a minute on two cores (about 30 s)."""
SECRET = "FLOE_SQLQ_SECRET"

FRAGMENTS = [
    "'",
    '"',
    "`",
    "\\",
    "\\'",
    "''",
    ";",
    "--",
    "/*",
    "*/",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "$$",
    "$1",
    "?",
    "%s",
    ":x",
    "(",
    ")",
    ",",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "{% endraw %}",
    "{% raw %}",
    "{{ env_var('" + SECRET + "') }}",
    "E'",
    "U&'",
    "e\\x27",
    "\u2028",
    "\x85",
    "é",
    "😀",
    "ß",
    "DROP TABLE t",
    "floe",
    "x",
]
_pieces = st.one_of(st.sampled_from(FRAGMENTS), st.text(min_size=1, max_size=4))
some_hostile = st.lists(_pieces, min_size=1, max_size=10).map("".join)
"""Mostly quoting and comment syntax, with any other characters (NUL included) in between."""
very_long = st.builds(lambda piece, times: piece * times, some_hostile, st.integers(50, 300))
some_value = st.one_of(some_hostile, some_hostile, some_hostile, very_long)
value = st.one_of(st.just(""), some_value)


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def registry() -> EngineRegistry:
    return EngineRegistry.discover()


@pytest.fixture(scope="module")
def engine(registry: EngineRegistry) -> Engine:
    found = registry.get("duckdb")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> ProfileTarget:
    project = tmp_path_factory.mktemp("product")
    return ProfileTarget("dev", "shop", project, project / ".floe")


# -- reading a DuckDB statement back ---------------------------------------------------------------


def duckdb_shape(duck: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, Any]]:
    """The tokens of ``sql`` as DuckDB's tokenizer cuts it, each literal and identifier read back.

    A string constant is read back by DuckDB (``SELECT <literal>``), an identifier too
    (``SELECT 1 AS <identifier>``): the values are what DuckDB's parser makes of floe's quoting.
    """
    data = sql.encode("utf-8")
    tokens = duckdb.tokenize(sql)  # offsets in bytes of the UTF-8 text
    shape: list[tuple[str, Any]] = []
    for index, (start, kind) in enumerate(tokens):
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(data)
        text = data[start:end].decode("utf-8").rstrip(" \t\r\n")
        if kind == duckdb.token_type.string_const:
            shape.append(("literal", duck.execute("SELECT " + text).fetchone()[0]))  # type: ignore[index]
        elif kind == duckdb.token_type.identifier:
            described = duck.execute("SELECT 1 AS " + text).description
            shape.append(("identifier", described[0][0]))
        else:
            shape.append((kind.name, text.upper()))
    return shape


def expected_shape(reference: list[tuple[str, Any]], values: Mapping[str, str]) -> list[tuple[str, Any]]:
    """``reference`` (a shape built from the marker values) with each marker replaced by its value."""
    if not values:
        return reference
    markers = re.compile("|".join(re.escape(m) for m in values))
    return [
        (kind, markers.sub(lambda m: values[m[0]], text) if kind in ("literal", "identifier") else text)
        for kind, text in reference
    ]


def assert_same_statement(
    duck: duckdb.DuckDBPyConnection, sql: str, reference: str, values: Mapping[str, str]
) -> None:
    """``sql`` is one statement of ``reference``'s kind and shape, holding ``values`` for the markers."""
    parsed = duck.extract_statements(sql)
    (expected_kind,) = (s.type for s in duck.extract_statements(reference))
    assert [s.type for s in parsed] == [expected_kind], sql
    assert duckdb_shape(duck, sql) == expected_shape(duckdb_shape(duck, reference), values), sql


def has_nul(*texts: str) -> bool:
    return any("\x00" in t for t in texts)


# -- DuckDB: CREATE SECRET and ATTACH of the Iceberg REST catalog ----------------------------------

AUTH = ["none", "token", "client", "client+oauth2_server_uri"]


def catalog_of(auth: str, delegation: str, **values: str) -> CatalogConfig:
    fields: dict[str, Any] = {
        "name": values["name"],
        "uri": values["uri"],
        "warehouse": values["warehouse"],
        "access_delegation": delegation,
    }
    if auth == "token":
        fields["token"] = SecretReference(SECRET)
    elif auth.startswith("client"):
        fields.update(client_id=values["client_id"], client_secret=SecretReference(SECRET))
        if auth.endswith("oauth2_server_uri"):
            fields["oauth2_server_uri"] = values["oauth2_server_uri"]
    return CatalogConfig(type="rest", **fields)


MARKERS = {
    key: f"floe-marker-{key}"
    for key in ("name", "uri", "warehouse", "client_id", "oauth2_server_uri", "secret")
}


def attachment(engine: Engine, auth: str, delegation: str, values: Mapping[str, str]) -> list[str]:
    statements = engine.get_catalog_attachment_sql(
        ComputeConfig("local", "duckdb", {}), catalog_of(auth, delegation, **values)
    )
    assert statements is not None
    return statements


@pytest.mark.req("REQ-013")
@EXAMPLES
@hypothesis.given(
    name=some_value,
    uri=some_value,
    warehouse=value,
    client_id=some_value,
    oauth2_server_uri=some_value,
    secret=some_value,
    auth=st.sampled_from(AUTH),
    delegation=st.sampled_from(["none", "vended-credentials"]),
)
def test_duckdb_catalog_attachment_keeps_its_statements(
    duck: duckdb.DuckDBPyConnection, engine: Engine, auth: str, delegation: str, **values: str
) -> None:
    values = dict(values)
    if auth == "none" or not auth.endswith("oauth2_server_uri"):
        values["oauth2_server_uri"] = MARKERS["oauth2_server_uri"]  # not in these statements
    if not auth.startswith("client"):
        values["client_id"] = MARKERS["client_id"]
    secret = values.pop("secret")
    references = attachment(engine, auth, delegation, {k: MARKERS[k] for k in values})
    catalog_values = [values[k] for k in ("name", "uri", "warehouse", "client_id", "oauth2_server_uri")]
    if has_nul(*catalog_values):
        with pytest.raises(PluginExecutionError, match="cannot be written into SQL") as info:
            attachment(engine, auth, delegation, values)
        assert "\x00" not in info.value.render()
        return
    statements = attachment(engine, auth, delegation, values)
    assert len(statements) == len(references) == (1 if auth == "none" else 2)
    hypothesis.event(f"built ({auth})")
    environ = {SECRET: secret}
    if has_nul(secret) and auth != "none":
        with pytest.raises(PluginExecutionError, match=SECRET) as refused:
            [render_secret_placeholders(s, environ, engine="duckdb") for s in statements]
        assert secret not in refused.value.render()
        return
    substitutions = {MARKERS[k]: values[k] for k in values} | {MARKERS["secret"]: secret}
    for sql, reference in zip(statements, references, strict=True):
        # rendered: each secret a literal
        rendered = render_secret_placeholders(sql, environ, engine="duckdb")
        rendered_reference = render_secret_placeholders(
            reference, {SECRET: MARKERS["secret"]}, engine="duckdb"
        )
        assert_same_statement(duck, rendered, rendered_reference, substitutions)
        # bound: each secret a parameter, the text never holds it
        bound, params = bind_secret_placeholders(sql, environ, engine="duckdb")
        bound_reference, _ = bind_secret_placeholders(reference, environ, engine="duckdb")
        assert params == [secret] * reference.count("env_var(")
        assert_same_statement(duck, bound, bound_reference, substitutions)


@pytest.fixture(scope="module")
def iceberg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB with the iceberg extension loaded from its wheel, where secrets are really created."""
    directory = tmp_path_factory.mktemp("ext")
    connection = duckdb.connect(
        config={
            "extension_directory": str(directory),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unredacted_secrets": True,
        }
    )
    for file in extension_files(["iceberg"]):
        connection.load_extension(str(file))
    yield connection
    connection.close()


@pytest.mark.req("REQ-013")
@EXAMPLES
@hypothesis.given(name=some_value, token=some_value)
def test_duckdb_creates_the_secret_under_the_catalogs_name(
    iceberg: duckdb.DuckDBPyConnection, engine: Engine, name: str, token: str
) -> None:
    """Executed, not only parsed: DuckDB stores the secret under ``floe_catalog_<name>``, with the token."""
    hypothesis.assume(not has_nul(name, token))
    create, _attach = attachment(
        engine, "token", "none", {"name": name, "uri": "http://127.0.0.1:9", "warehouse": "wh"}
    )
    sql, params = bind_secret_placeholders(create, {SECRET: token}, engine="duckdb")
    iceberg.execute(sql, params)
    try:
        rows = iceberg.execute("SELECT name, secret_string FROM duckdb_secrets(redact := false)").fetchall()
        # DuckDB folds secret names to lower case, ASCII letters only, even when quoted
        folded = "".join(c.lower() if "A" <= c <= "Z" else c for c in f"floe_catalog_{name}")
        assert [row[0] for row in rows] == [folded]
        assert f"token={token}" in rows[0][1]
    finally:
        for (stored,) in iceberg.execute("SELECT name FROM duckdb_secrets()").fetchall():
            iceberg.execute("DROP SECRET " + quote_identifier(stored))


# -- dbt's Jinja rendering of the floe run profile -------------------------------------------------


def duckdb_run_profile(engine: Engine, target: ProfileTarget, catalog: CatalogConfig) -> dict[str, Any]:
    """The ``floe run`` profile of a DuckDB compute attached to ``catalog``, as dbt renders it."""
    from dbt.config.renderer import ProfileRenderer

    compute = ComputeConfig("local", "duckdb", {})
    profile = engine.run_profile(compute, engine.generate_dbt_profile(compute, target), catalog, "shop_dev")
    rendered: dict[str, Any] = ProfileRenderer({}).render_data(profile)
    return rendered


@pytest.mark.req("REQ-013")
@hypothesis.settings(SETTINGS, max_examples=200)
@hypothesis.given(
    name=st.sampled_from(["lake", "my_lake", "Lake2", "_l4"]), uri=some_value, warehouse=some_value
)
def test_the_run_profile_hands_the_plugin_the_statements_unchanged(
    engine: Engine, target: ProfileTarget, name: str, uri: str, warehouse: str
) -> None:
    """dbt renders every profile string with Jinja: the statements and the attach path survive it."""
    hypothesis.assume(not has_nul(uri, warehouse))
    catalog = catalog_of("token", "none", name=name, uri=uri, warehouse=warehouse)
    rendered = duckdb_run_profile(engine, target, catalog)
    (plugin,) = [p for p in rendered["plugins"] if p["module"] == "floe.engines.duckdb_plugin"]
    statements = engine.get_catalog_attachment_sql(ComputeConfig("local", "duckdb", {}), catalog)
    assert plugin["config"]["floe_statements"] == statements
    assert [a["path"] for a in rendered["attach"] if a["alias"] == name] == [warehouse]


@pytest.mark.req("REQ-013")
@EXAMPLES
@hypothesis.given(
    name=st.one_of(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
        st.sampled_from(["lake-eu", "Select", *sorted(KEYWORDS_NOT_NAMES)]),
        some_value,
    ),
    warehouse=value,
)
def test_dbt_duckdbs_attach_keeps_its_statement_or_the_name_is_refused(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    target: ProfileTarget,
    name: str,
    warehouse: str,
) -> None:
    """dbt-duckdb runs its own ``ATTACH IF NOT EXISTS '<path>' AS <alias>``, the alias unquoted.

    A catalog name that would not stay one identifier there, or that DuckDB's parser takes for a
    keyword, is refused with a floe error.
    """
    from dbt.adapters.duckdb.credentials import Attachment

    hypothesis.assume(not has_nul(name, warehouse))
    catalog = catalog_of("none", "none", name=name, uri="http://127.0.0.1:9", warehouse=warehouse)
    try:
        rendered = duckdb_run_profile(engine, target, catalog)
    except FloeError as exc:
        assert not SETTING_NAME.fullmatch(name) or name.lower() in KEYWORDS_NOT_NAMES, exc.render()
        assert "without quotes" in exc.render()
        hypothesis.event("catalog name refused")
        return
    (attach,) = [a for a in rendered["attach"] if a["alias"] == name]
    sql = Attachment(**attach).to_sql()  # dbt-duckdb's own statement
    assert_same_statement(
        duck,
        sql,
        "ATTACH IF NOT EXISTS 'floe-marker-path' AS floe_marker_alias",
        {"floe-marker-path": warehouse, "floe_marker_alias": name},
    )


# -- DuckDB: settings ------------------------------------------------------------------------------

SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_setting_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
setting_key = st.one_of(_setting_name, _setting_name, some_value, st.sampled_from(sorted(KEYWORDS_NOT_NAMES)))


def dbt_duckdb_set_statements(settings: Mapping[str, Any]) -> list[str]:
    """The statements dbt-duckdb's own ``initialize_cursor`` runs for the profile's ``settings``."""
    from dbt.adapters.duckdb.environments import Environment

    class Recorder:
        def __init__(self) -> None:
            self.statements: list[str] = []

        def execute(self, sql: str) -> None:
            self.statements.append(sql)

    cursor = Recorder()
    credentials: Any = types.SimpleNamespace(settings=dict(settings), retries=None)  # what it reads
    Environment.initialize_cursor(credentials, cursor)
    return cursor.statements


@pytest.mark.req("REQ-012")
@EXAMPLES
@hypothesis.given(key=setting_key, setting=st.one_of(value, st.integers(), st.booleans()))
def test_duckdb_settings_keep_their_set_statements(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    target: ProfileTarget,
    key: str,
    setting: Any,
) -> None:
    compute = ComputeConfig("local", "duckdb", {"settings": {key: setting}})
    refusable = (
        not SETTING_NAME.fullmatch(key)
        or key.lower() in KEYWORDS_NOT_NAMES
        or is_credential_key(key)
        or has_nul(str(setting))
    )
    try:
        profile = engine.generate_dbt_profile(compute, target)
    except PluginExecutionError as exc:
        assert refusable, exc.render()
        assert "\x00" not in exc.render()
        hypothesis.event("refused")
        return
    assert SETTING_NAME.fullmatch(key) and not has_nul(str(setting))
    hypothesis.event("accepted")
    settings = profile["settings"]
    assert str(settings[key]) == str(setting)
    for sql in [set_statement(key, setting), *dbt_duckdb_set_statements({key: setting})]:
        reference = (
            set_statement("floe_marker_key", "floe-marker-value")
            if sql.startswith('SET "')
            else "SET floe_marker_key = 'floe-marker-value'"
        )
        assert_same_statement(
            duck, sql, reference, {"floe_marker_key": key, "floe-marker-value": str(setting)}
        )


@pytest.mark.req("REQ-014")
@EXAMPLES
@hypothesis.given(key=some_value, setting=some_value)
def test_duckdb_set_statement_keeps_its_statement(
    duck: duckdb.DuckDBPyConnection, key: str, setting: str
) -> None:
    """floe's own ``SET`` (the connection check) quotes any key, not only the names the profile lets by."""
    try:
        sql = set_statement(key, setting)
    except ValueError:
        assert has_nul(key, setting)
        return
    assert_same_statement(
        duck,
        sql,
        set_statement("floe_marker_key", "floe-marker-value"),
        {"floe_marker_key": key, "floe-marker-value": setting},
    )


# -- Snowflake and Trino (sqlglot's dialects: no engine parser runs offline) -----------------------


def _literals(tree: exp.Expression) -> list[str]:
    return [node.this for node in tree.find_all(exp.Literal) if node.is_string]


@pytest.mark.req("REQ-014")
@EXAMPLES
@hypothesis.given(database=some_value, schema=some_value)
def test_snowflake_schema_lookup_keeps_its_statement(database: str, schema: str) -> None:
    try:
        sql = snowflake.schema_lookup_sql(database, schema)
    except ValueError:
        assert has_nul(database, schema)
        return
    trees = sqlglot.parse(sql, read="snowflake")
    assert len(trees) == 1 and isinstance(trees[0], exp.Show), sql
    show = trees[0]
    wanted = snowflake.sql_identifier(schema)[1:-1].replace('""', '"')
    assert (show.name, show.args["terse"], show.args["scope_kind"]) == ("SCHEMAS", True, "DATABASE")
    assert _literals(show) == [wanted]
    scope = show.args["scope"]
    expected_database = snowflake.sql_identifier(database)[1:-1].replace('""', '"')
    assert isinstance(scope, exp.Table) and scope.this.quoted and scope.name == expected_database


@pytest.mark.req("REQ-014")
@EXAMPLES
@hypothesis.given(catalog=some_value, schema=some_value)
def test_trino_schema_lookup_keeps_its_statement(catalog: str, schema: str) -> None:
    try:
        sql = trino.schema_lookup_sql(catalog, schema)
    except ValueError:
        assert has_nul(catalog, schema)
        return
    trees = sqlglot.parse(sql, read="trino")
    assert len(trees) == 1 and isinstance(trees[0], exp.Select), sql
    select = trees[0]
    (table,) = select.find_all(exp.Table)
    assert (table.catalog, table.db, table.name) == (catalog, "information_schema", "schemata")
    assert _literals(select) == [schema.lower()]
    assert [c.name for c in select.find_all(exp.Column)] == ["schema_name", "schema_name"]


# -- values that never become SQL text -------------------------------------------------------------


@pytest.mark.req("REQ-013")
@hypothesis.settings(SETTINGS, max_examples=50)
@hypothesis.given(uri=some_value, warehouse=some_value)
def test_spark_attaches_catalogs_through_configuration_not_sql(uri: str, warehouse: str) -> None:
    from floe.engines.spark import catalog_conf, plugin

    catalog = CatalogConfig(type="rest", name="lake", uri=uri, warehouse=warehouse)
    assert plugin.get_catalog_attachment_sql(ComputeConfig("s", "spark", {}), catalog) is None
    conf = catalog_conf(catalog, with_secrets=True)
    assert conf["spark.sql.catalog.lake.uri"] == uri
    assert conf["spark.sql.catalog.lake.warehouse"] == warehouse
    assert all(key.startswith("spark.sql.catalog.lake") for key in conf)


# -- manifests: a value is refused with a floe error, or reaches the SQL as it was written ----------

MANIFEST = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {{name: acme}}
plugins:
  compute:
    approved: [duckdb]
    default: duckdb
catalog:
  type: rest
  name: {name}
  uri: {uri}
  warehouse: {warehouse}
  client_id: {client_id}
  client_secret: {{secret_ref: {secret}}}
"""


def yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar, every character outside printable ASCII escaped."""
    escaped = "".join(
        c
        if 0x20 <= ord(c) < 0x7F and c not in '"\\'
        else f"\\x{ord(c):02x}"
        if ord(c) < 0x100
        else f"\\u{ord(c):04x}"
        if ord(c) < 0x10000
        else f"\\U{ord(c):08x}"
        for c in text
    )
    return '"' + escaped + '"'


@pytest.mark.req("REQ-013")
@hypothesis.settings(
    SETTINGS,
    max_examples=60,
    suppress_health_check=[*SETTINGS.suppress_health_check, hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    name=st.one_of(*[st.sampled_from(["lake", "my_lake", "lake-eu"])] * 3, some_value),
    uri=some_value,
    warehouse=some_value,
    client_id=some_value,
    secret=st.one_of(st.just(SECRET), st.just(SECRET), some_value),
)
def test_manifest_values_are_refused_or_reach_the_sql_unchanged(
    tmp_path: Path, duck: duckdb.DuckDBPyConnection, registry: EngineRegistry, engine: Engine, **values: str
) -> None:
    from floe.compiler import compile_path

    path = tmp_path / "enterprise.yaml"
    path.write_text(MANIFEST.format(**{k: yaml_quoted(v) for k, v in values.items()}), encoding="utf-8")
    try:
        compiled = compile_path(path, registry)
    except FloeError as exc:
        text = exc.render()
        assert "Traceback" not in text and str(path.name) in text
        hypothesis.event("refused by the manifest's schema")
        return
    catalog = compiled.catalog
    assert catalog is not None
    hypothesis.event("accepted")
    assert (catalog.name, catalog.uri, catalog.warehouse, catalog.client_id) == (
        values["name"],
        values["uri"],
        values["warehouse"],
        values["client_id"],
    )
    assert catalog.client_secret == SecretReference(values["secret"])
    if has_nul(values["uri"], values["warehouse"], values["client_id"], values["name"]):
        with pytest.raises(PluginExecutionError, match="cannot be written into SQL"):
            engine.get_catalog_attachment_sql(ComputeConfig("local", "duckdb", {}), catalog)
        return
    statements = engine.get_catalog_attachment_sql(ComputeConfig("local", "duckdb", {}), catalog)
    assert statements is not None
    markers = {
        "name": "lake",
        "uri": "floe-marker-uri",
        "warehouse": "floe-marker-warehouse",
        "client_id": "floe-marker-client",
    }
    references = engine.get_catalog_attachment_sql(
        ComputeConfig("local", "duckdb", {}),
        CatalogConfig(
            type="rest",
            name="floe-marker-name",
            uri=markers["uri"],
            warehouse=markers["warehouse"],
            client_id=markers["client_id"],
            client_secret=SecretReference(SECRET),
        ),
    )
    assert references is not None
    environ = {values["secret"]: "s3cret", SECRET: "s3cret"}
    substitutions = {
        "floe-marker-name": catalog.name,
        **{markers[k]: values[k] for k in markers if k != "name"},
    }
    for sql, reference in zip(statements, references, strict=True):
        assert_same_statement(
            duck,
            render_secret_placeholders(sql, environ, engine="duckdb"),
            render_secret_placeholders(reference, environ, engine="duckdb"),
            substitutions,
        )


def test_quoting_functions_refuse_what_no_statement_can_hold() -> None:
    from floe.sqlquote import quote_backslash_literal, quote_identifier, quote_literal

    quote: Callable[[str], str]
    for quote in (quote_identifier, quote_literal, quote_backslash_literal):
        for text in ("a\x00b", "\ud800"):
            with pytest.raises(ValueError):
                quote(text)
    assert quote_backslash_literal("it's \\") == "'it\\'s \\\\'"
    assert quote_literal("it's \\") == "'it''s \\'"
