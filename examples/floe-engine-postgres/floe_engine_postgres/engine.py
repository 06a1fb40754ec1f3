"""The ``postgres`` engine: dbt-postgres profiles, a psycopg2 connection check, and error advice.

PostgreSQL runs the SQL; the pod floe starts only runs dbt, a thin client. Credentials reach dbt as
``{{ env_var('NAME') }}`` and reach :meth:`PostgresEngine.validate_connection` from ``os.environ``;
their values never appear in a profile, a message or a detail.

Importing this module is cheap: psycopg2 is imported inside the methods that connect, and the
config schema is read from the package when it is first asked for.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    Relation,
    SecretReference,
    ValidationResult,
    WorkerSetup,
    engine_error,
    exception_chain,
    first_line,
    first_lines,
    quote_identifier,
    run_check,
    secret_reference,
    secret_value,
)

from floe_engine_postgres._version import __version__

if TYPE_CHECKING:
    import pyarrow

ENGINE = "postgres"
DEFAULT_PORT = 5432
DEFAULT_SCHEMA = "public"
DEFAULT_THREADS = 4
DEFAULT_CONNECT_TIMEOUT = 10
LIBPQ_MIN_CONNECT_TIMEOUT = 2
"""libpq waits at least 2 s: it treats ``connect_timeout=1`` as 2."""

DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "512Mi"}
PIP_DRIVER = "pip install 'psycopg2-binary>=2.9,<3'"


@functools.cache
def _schema() -> dict[str, Any]:
    import json
    from importlib import resources

    text = resources.files(__package__).joinpath("config.schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class PostgresEngine(ComputePlugin):
    """PostgreSQL through dbt-postgres; validated with psycopg2, the driver dbt-postgres uses."""

    name: ClassVar[str] = ENGINE
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "postgres"
    description: ClassVar[str] = "PostgreSQL through dbt-postgres (distribution floe-engine-postgres)."

    def config_schema(self) -> Mapping[str, Any]:
        """The JSON Schema shipped as package data (``config.schema.json``)."""
        return _schema()

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-postgres output; the password only as ``{{ env_var('NAME') }}``.

        ``application_name`` names the data product, so a DBA sees in ``pg_stat_activity`` which
        product a session belongs to.
        """
        operation = "generate_dbt_profile"
        config = compute.config
        profile: dict[str, Any] = {
            "type": "postgres",
            "host": _required(compute, "host", operation),
            "port": int(config.get("port", DEFAULT_PORT)),
            "user": _required(compute, "user", operation),
            "password": _password_ref(compute, operation).as_env_var(),
            "dbname": _required(compute, "dbname", operation),
            "schema": str(config.get("schema", DEFAULT_SCHEMA)),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
            "connect_timeout": int(config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            "application_name": f"floe/{target.product}"[:63],
        }
        for key in ("sslmode", "sslrootcert"):
            if config.get(key) is not None:
                profile[key] = str(config[key])
        if config.get("keepalives_idle") is not None:
            profile["keepalives_idle"] = int(config["keepalives_idle"])
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        """dbt-core, the dbt-postgres adapter and its driver, each bounded on both sides."""
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-postgres>=1.11,<1.12",
            "psycopg2-binary>=2.9,<3",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Log in as dbt would, then check the schema dbt builds into can be written.

        Every wait is bounded by ``timeout``: libpq's ``connect_timeout`` (whole seconds, at least
        2), the server's ``statement_timeout`` for the queries, and a hard deadline around the
        whole check for a server that accepts and then never answers. Fails with what to fix when
        the password is refused, the database or role is missing, nothing listens, nothing answers,
        the server is a read-only standby, or the role may not create in the schema.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, progress, seconds)
            message = (
                f"compute {compute.name!r}: PostgreSQL {details['server_version']} at {_address(compute)}, "
                f"database {details['dbname']!r} as {details['current_user']!r}; schema "
                f"{details['schema']!r} {'exists' if details['schema_exists'] else 'will be created by dbt'}"
            )
            return message, details

        def no_answer(progress: Progress) -> tuple[str, str]:
            where, stage = _address(compute), progress["stage"]
            if stage in ("connecting", "starting the check", "importing psycopg2"):
                return (
                    f"no answer from {where} within {timeout:g} s while {stage}",
                    f"check that {where} is a PostgreSQL server reachable from here (firewall, VPN, "
                    "security group) and not overloaded; then retry",
                )
            return (
                f"{where} accepted the connection but stopped answering while {stage} ({timeout:g} s)",
                "the server or the network to it is overloaded or stalled; check the server's load and log",
            )

        # floe's frame for the check: a deadline a little under ``timeout``, the stage in every
        # failure, untranslated exceptions as advice, secrets redacted.
        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=no_answer,
            fix="check the compute's host, port, dbname, user and sslmode against the message",
            translate=self.translate_error,
            progress={"stage": "starting the check", "details": _where(compute)},
        )

    def _check(self, compute: ComputeConfig, progress: dict[str, Any], budget: float) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        operation = "validate_connection"
        started = time.monotonic()
        details: dict[str, Any] = progress["details"]
        progress["stage"] = "reading the password from the environment"
        password = secret_value(
            ENGINE, _password_ref(compute, operation), compute, operation, what="the password"
        )
        progress["stage"] = "importing psycopg2"
        try:
            import psycopg2  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise PluginExecutionError(
                ENGINE,
                operation,
                "the PostgreSQL driver psycopg2 is not installed",
                PIP_DRIVER,
                compute=compute.name,
            ) from None
        kwargs = _connect_arguments(compute, details, password, budget)
        progress["stage"] = "connecting"
        connection = psycopg2.connect(**kwargs)
        try:
            connection.autocommit = True
            schema = details["schema"]
            with connection.cursor() as cursor:
                # A SET rather than a startup option: connection poolers such as PgBouncer refuse
                # startup options they do not know. It ends before the hard deadline, so that a
                # blocked query is reported by the server.
                remaining = budget - (time.monotonic() - started)
                margin = max(0.5, min(1.0, remaining / 4))
                cursor.execute("set statement_timeout = %s", (max(100, int((remaining - margin) * 1000)),))
                progress["stage"] = "querying the server"
                cursor.execute(
                    "select current_setting('server_version'), current_user, current_database(), "
                    "pg_is_in_recovery(), has_database_privilege(current_database(), 'CREATE'), "
                    "exists (select 1 from pg_namespace where nspname = %s)",
                    (schema,),
                )
                version, user, dbname, standby, create_in_db, schema_exists = cursor.fetchone()
                details.update(
                    server_version=str(version),
                    current_user=str(user),
                    schema_exists=bool(schema_exists),
                    standby=bool(standby),
                )
                can_create = False
                if schema_exists:
                    progress["stage"] = f"checking privileges on schema {schema}"
                    cursor.execute("select has_schema_privilege(%s, 'CREATE')", (schema,))
                    can_create = bool(cursor.fetchone()[0])
        except Exception as exc:
            if getattr(exc, "pgcode", None) != "57014":  # query_canceled
                raise
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"{_address(compute)} accepted the login but did not answer the check's queries in time "
                f"(while {progress['stage']})",
                "the server is overloaded or a lock blocks the system catalogs: look at pg_stat_activity "
                "and pg_locks on the server, then retry",
                compute=compute.name,
            ) from None
        finally:
            connection.close()
        progress["stage"] = "done"
        _refuse_unusable(
            compute,
            schema,
            user,
            dbname,
            standby=bool(standby),
            schema_exists=bool(schema_exists),
            can_create=can_create,
            create_in_db=bool(create_in_db),
        )
        return details

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A thin client: the pod runs dbt (parsing, Jinja, waiting on the server), not the SQL.

        Requests ``cpu: 100m, memory: 256Mi``; limits ``cpu: 500m, memory: 512Mi``. The work runs
        on the PostgreSQL server, whose size floe does not manage.
        """
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: PostgreSQL has no Iceberg attachment.

        PostgreSQL stores the tables dbt builds in its own heap storage and has no built-in
        statement that attaches an Iceberg catalog; reaching Iceberg would need a third-party
        extension installed on the server, which this engine does not assume.
        """
        return None

    # -- floe run: the run hooks ----------------------------------------------------------------

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """PostgreSQL keeps dbt's tables in its own database: it cannot read or write the catalog's
        Iceberg tables in place. floe bridges them (:mod:`floe_engine_postgres.bridge`): a model
        another compute refs is read with :meth:`read_arrow` and published into the catalog; a
        model of another compute that a postgres model refs is loaded with :meth:`load_arrow`."""
        return CatalogAccess.bridged(
            f"PostgreSQL keeps the tables dbt builds in database {compute.config.get('dbname', '?')!r} at "
            f"{_address(compute)}; floe carries tables between it and the catalog through ADBC (binary COPY)"
        )

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
        """The relation's rows through ADBC's binary COPY, NUMERIC(p, s) as decimals."""
        from floe_engine_postgres import bridge

        return bridge.read_arrow(compute, relation)

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
        """``data`` copied into a staging table and swapped in, in one transaction."""
        from floe_engine_postgres import bridge

        return bridge.load_arrow(compute, relation, data)

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """The compiled profile (floe's default puts the run's namespace in ``schema``, which dbt
        creates in the database), with the run named in ``pg_stat_activity``."""
        run = super().run_profile(compute, profile, catalog, namespace)
        run["application_name"] = f"floe-run/{namespace}"[:63]
        return run

    def run_worker(
        self,
        compute: ComputeConfig,
        profile: dict[str, Any],
        catalog: CatalogConfig,
        environ: Mapping[str, str],
    ) -> WorkerSetup:
        """Forked from floe's fork server (dbt and psycopg2 imported once, no connection open at the
        fork), with nothing added to the environment: libpq reads nothing from it that the profile
        does not set."""
        return WorkerSetup(forkable=True)

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """psycopg2's errors (and dbt's wrappers of them) with what to do; ``None`` if unknown.

        Errors are recognised by class name and module text, so psycopg2 is never imported here.
        """
        found = _postgres_error(error)
        if found is None:
            return None
        classes, code, text = found
        advice = _advice(classes, code, text, compute)
        if advice is None:
            return None
        return engine_error(ENGINE, compute, advice, cause=classes[0] if classes else type(error).__name__)


plugin = PostgresEngine()
"""The instance floe loads through the entry point ``postgres = floe_engine_postgres:plugin``."""


# -- helpers ---------------------------------------------------------------------------------------


def _required(compute: ComputeConfig, key: str, operation: str) -> str:
    value = compute.config.get(key)
    if value is None or value == "":
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"the setting {key!r} is missing",
            f"add {key} to the compute's config in the manifest (see `floe schema --engine postgres`)",
            compute=compute.name,
        )
    return str(value)


def _password_ref(compute: ComputeConfig, operation: str) -> SecretReference:
    """The password's reference: dbt reads it as ``{{ env_var('NAME') }}``, the check from the environment."""
    return secret_reference(ENGINE, compute, "password", operation, required=True, example="PG_PASSWORD")


def _where(compute: ComputeConfig) -> dict[str, Any]:
    config = compute.config
    return {
        "host": str(config.get("host", "")),
        "port": config.get("port", DEFAULT_PORT),
        "dbname": str(config.get("dbname", "")),
        "user": str(config.get("user", "")),
        "schema": str(config.get("schema", DEFAULT_SCHEMA)),
    }


def _address(compute: ComputeConfig) -> str:
    return f"{compute.config.get('host', '?')}:{compute.config.get('port', DEFAULT_PORT)}"


def _ident(name: str) -> str:
    return quote_identifier(name) if not re.match(r"^[a-z_][a-z0-9_]*$", name) else name


# -- error translation -----------------------------------------------------------------------------

_PSYCOPG_MODULES = ("psycopg2", "psycopg2.errors", "psycopg2.extensions", "psycopg2._psycopg")
_SERVER_AT = re.compile(r'connection to server at "(?P<host>[^"]+)"(?: \([^)]*\))?, port (?P<port>\d+)')
_QUOTED = re.compile(r'"(?P<name>[^"]+)"')
_PG_TEXT = (
    "password authentication failed",
    "does not exist",
    "syntax error at or near",
    "permission denied",
    "Connection refused",
    "timeout expired",
    "could not translate host name",
    "no pg_hba.conf entry",
    "violates",
    "division by zero",
    "invalid input syntax",
    "deadlock detected",
    "canceling statement",
    "current transaction is aborted",
    "read-only transaction",
    "server closed the connection",
    "too many connections",
    "already exists",
)


def _is_psycopg_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return module in _PSYCOPG_MODULES or module.startswith("psycopg2.")


def _postgres_error(error: BaseException) -> tuple[list[str], str | None, str] | None:
    """The psycopg2 class names, SQLSTATE and text of the error in ``error`` or its causes.

    dbt-postgres raises ``DbtDatabaseError(str(e)) from e``; a dbt error whose text reads like a
    PostgreSQL message counts too when its cause was dropped.
    """
    for current in exception_chain(error):
        mro = type(current).__mro__
        if any(_is_psycopg_class(c) for c in mro):
            code = getattr(current, "pgcode", None)
            return (
                [c.__name__ for c in mro if _is_psycopg_class(c)],
                code if isinstance(code, str) else None,
                str(current),
            )
    dbt_database_error = any(
        (c.__module__ or "").startswith("dbt") and c.__name__.endswith("DatabaseError")
        for c in type(error).__mro__
    )
    if dbt_database_error and any(p in str(error) for p in _PG_TEXT):
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        body = lines[1:] if lines and lines[0].startswith("Database Error") else lines
        return [], None, "\n".join(body)
    return None


def _connect_arguments(
    compute: ComputeConfig, details: Mapping[str, Any], password: str, budget: float
) -> dict[str, Any]:
    """``psycopg2.connect``'s arguments for the check: the profile's login, a connect timeout within ``budget``."""
    config = compute.config
    configured = int(config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    connect_timeout = max(LIBPQ_MIN_CONNECT_TIMEOUT, min(configured, math.floor(budget)))
    kwargs: dict[str, Any] = {
        "host": details["host"],
        "port": details["port"],
        "user": details["user"],
        "dbname": details["dbname"],
        "password": password,
        "connect_timeout": connect_timeout,
        "application_name": "floe-validate",
    }
    for key in ("sslmode", "sslrootcert"):
        if config.get(key) is not None:
            kwargs[key] = str(config[key])
    if config.get("keepalives_idle") is not None:
        kwargs["keepalives_idle"] = int(config["keepalives_idle"])
    return kwargs


def _refuse_unusable(
    compute: ComputeConfig,
    schema: str,
    user: str,
    dbname: str,
    *,
    standby: bool,
    schema_exists: bool,
    can_create: bool,
    create_in_db: bool,
) -> None:
    """Raise when dbt could log in but not build: a standby, or no right to create in the schema."""
    operation = "validate_connection"
    if standby:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"{_address(compute)} is a read-only standby (in recovery); dbt cannot build there",
            "point host at the primary server",
            compute=compute.name,
        )
    if schema_exists and not can_create:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"user {user!r} may not create tables in schema {schema!r} of database {dbname!r}",
            f"ask the schema's owner to run GRANT USAGE, CREATE ON SCHEMA {_ident(schema)} TO "
            f"{_ident(user)}; or set schema to one the user owns",
            compute=compute.name,
        )
    if not schema_exists and not create_in_db:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"schema {schema!r} does not exist in database {dbname!r} and user {user!r} may not create it",
            f"create it (CREATE SCHEMA {_ident(schema)} AUTHORIZATION {_ident(user)}) or GRANT "
            f"CREATE ON DATABASE {_ident(dbname)} TO {_ident(user)}",
            compute=compute.name,
        )


class _Facts:
    """What advice quotes about an error: its text, SQLSTATE, the server, the user and the name it names."""

    def __init__(
        self, classes: list[str], code: str | None, text: str, compute: ComputeConfig | None
    ) -> None:
        config: Mapping[str, Any] = compute.config if compute is not None else {}
        self.classes, self.code, self.text = classes, code, text
        self.first = (
            first_line(text.split("failed: ", 1)[-1]) if "connection to server" in text else first_line(text)
        )
        server = _SERVER_AT.search(text)
        if "host" in config:
            self.where = f"{config['host']}:{config.get('port', DEFAULT_PORT)}"
        elif server:
            self.where = f"{server['host']}:{server['port']}"
        else:
            self.where = "the server"
        self.user = str(config["user"]) if config.get("user") else None
        self.who = f"user {self.user!r}" if self.user else "the user"
        self.grantee = _ident(self.user) if self.user else "<user>"
        ref = config.get("password")
        self.secret = (
            f"the secret {ref.name}" if isinstance(ref, SecretReference) else "the password's secret"
        )
        quoted = _QUOTED.findall(self.first)
        self.name = quoted[0] if quoted else "?"
        self.sqlstate = code or ""


def _advice(
    classes: list[str], code: str | None, text: str, compute: ComputeConfig | None
) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a PostgreSQL error, or ``None`` when nothing fits."""
    facts = _Facts(classes, code, text, compute)
    for rule in (_connecting, _running_sql, _by_class):
        advice = rule(facts)
        if advice is not None:
            return advice
    return None


def _connecting(facts: _Facts) -> tuple[str, str, str] | None:
    """Advice for a login or connection that failed, or a connection lost."""
    code = facts.code
    text = facts.text
    first = facts.first
    where = facts.where
    user = facts.user
    who = facts.who
    grantee = facts.grantee
    secret = facts.secret
    name = facts.name
    sqlstate = facts.sqlstate
    if "password authentication failed" in text:
        return (
            "connect",
            f"the server at {where} refused the password of {who}",
            f"check the value of {secret} and that the role {user or '<user>'} exists with LOGIN (floe never "
            "prints the value); a role that does not exist is reported this way too",
        )
    if "no password supplied" in text:
        return (
            "connect",
            f"the server at {where} asks for a password and none was sent",
            f"set {secret.removeprefix('the secret ')} in the environment dbt runs in",
        )
    if code in (None, "28000") and re.search(r'role "[^"]+" does not exist', text):
        return (
            "connect",
            f"the role {name!r} does not exist on {where}",
            "correct user in the compute's config, or ask a DBA to CREATE ROLE ... LOGIN",
        )
    if code in (None, "3D000") and re.search(r'database "[^"]+" does not exist', text):
        return (
            "connect",
            f"the database {name!r} does not exist on {where}",
            f"correct dbname in the compute's config, or create it: CREATE DATABASE {_ident(name)} "
            f"OWNER {grantee}",
        )
    if "Connection refused" in text:
        return (
            "connect",
            f"nothing accepts connections at {where} (connection refused)",
            "check host and port (PostgreSQL's default port is 5432), that the server is running, "
            "and that its listen_addresses covers this client's network",
        )
    if "timeout expired" in text:
        return (
            "connect",
            f"no answer from {where} within the connect timeout",
            "check that host and port reach PostgreSQL (firewall, VPN, security group); if the "
            "server is only slow to accept, raise connect_timeout",
        )
    if "could not translate host name" in text:
        return (
            "connect",
            f"the host name {name!r} does not resolve",
            "correct host in the compute's config, or fix DNS where dbt runs",
        )
    if "Network is unreachable" in text or "No route to host" in text:
        return (
            "connect",
            f"{where} is not reachable from here: {first}",
            "check the network route, VPN or proxy between dbt and the server",
        )
    if "no pg_hba.conf entry" in text:
        return (
            "connect",
            f"the server at {where} has no pg_hba.conf rule admitting this login: {first}",
            "ask a DBA to add a pg_hba.conf line for this client address, user and database; if "
            "the server admits only SSL (hostssl), set sslmode: require",
        )
    if "server does not support SSL" in text:
        return (
            "connect",
            f"sslmode requires SSL but the server at {where} does not offer it",
            "set sslmode to prefer or disable, or enable ssl on the server",
        )
    if "certificate" in text and ("verify" in text or "root certificate" in text or "does not match" in text):
        return (
            "connect",
            f"the server certificate of {where} was not accepted: {first}",
            "set sslrootcert to the CA file that signed the server certificate, and make host "
            "match the certificate's name (verify-full), or use sslmode: require",
        )
    if "too many connections" in text or "remaining connection slots" in text or sqlstate == "53300":
        return (
            "connect",
            f"the server at {where} has no free connection slots: {first}",
            "lower threads in the compute's config, close idle sessions, or raise max_connections",
        )
    if any(
        s in text
        for s in (
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery mode",
            "not yet accepting connections",
        )
    ):
        return (
            "connect",
            f"the server at {where} is not accepting connections yet: {first}",
            "wait until the server has finished starting (or failing over), then retry",
        )
    if "permission denied for database" in text or "CONNECT privilege" in text:
        return (
            "connect",
            f"{who} may not connect to that database: {first}",
            f"ask a DBA to GRANT CONNECT ON DATABASE <dbname> TO {grantee}",
        )
    if any(
        s in text
        for s in (
            "server closed the connection unexpectedly",
            "terminating connection",
            "connection already closed",
            "SSL SYSCALL error",
        )
    ):
        return (
            "run SQL",
            f"the connection to {where} was lost: {first}",
            "check the server log (crash, restart, or an administrator ending the session); if an "
            "idle firewall drops connections, set keepalives_idle below its timeout",
        )
    return None


def _running_sql(facts: _Facts) -> tuple[str, str, str] | None:
    """Advice for a statement the server refused, by SQLSTATE or message."""
    text = facts.text
    first = facts.first
    grantee = facts.grantee
    sqlstate = facts.sqlstate
    is_ = set(facts.classes).__contains__
    if sqlstate == "42P01" or re.search(r'relation "[^"]+" does not exist', text):
        return (
            "run SQL",
            first,
            "if it is a model, build it first (dbt run --select +<model>); if it "
            "is a source, check its schema and table name and that the user can see it",
        )
    if sqlstate == "3F000" or re.search(r'schema "[^"]+" does not exist', text):
        return (
            "run SQL",
            first,
            "create the schema or correct the schema/source name; dbt creates "
            "its target schema itself when the user has CREATE on the database",
        )
    if sqlstate == "42703" or re.search(r'column "[^"]+" does not exist', text):
        return (
            "run SQL",
            first,
            "check the column name against the upstream model's columns "
            "(PostgreSQL folds unquoted names to lower case)",
        )
    if sqlstate == "42883" or (re.search(r"function .+ does not exist", text)):
        return (
            "run SQL",
            first,
            "check the function name and add explicit casts to its arguments "
            "(PostgreSQL does not convert argument types implicitly)",
        )
    if sqlstate == "42601" or "syntax error at or near" in text:
        return (
            "parse SQL",
            first_lines(text, 3),
            "fix the SQL syntax at the position shown (PostgreSQL's dialect)",
        )
    if sqlstate == "42501" or "permission denied for" in text or "must be owner of" in text:
        return (
            "run SQL",
            first,
            f"ask the object's owner to GRANT the privilege to {grantee}, or build "
            "into a schema the user owns",
        )
    if sqlstate == "42P07" or (sqlstate.startswith("42") and "already exists" in text):
        return ("run SQL", first, "drop or rename the existing object, or choose another schema")
    if sqlstate == "25006" or "read-only transaction" in text:
        return ("run SQL", first, "point host at the primary server; a standby only reads")
    if sqlstate == "25P02" or "current transaction is aborted" in text:
        return (
            "run SQL",
            first,
            "an earlier statement in the same transaction failed: fix the first error in the log",
        )
    if sqlstate == "57014" or "canceling statement" in text:
        return (
            "run SQL",
            first,
            "the statement ran past statement_timeout or was cancelled: make "
            "the model cheaper (incremental, indexes) or ask a DBA to raise the role's "
            "statement_timeout",
        )
    if sqlstate in ("40P01", "40001") or "deadlock detected" in text or "could not serialize" in text:
        return (
            "run SQL",
            first,
            "another transaction conflicted; retry, and lower threads if models write the same tables",
        )
    if sqlstate.startswith("23") or is_("IntegrityError") or "violates" in text:
        return (
            "run SQL",
            first,
            "the data breaks a constraint: deduplicate or filter the rows in the "
            "model, or relax the constraint",
        )
    if (
        sqlstate.startswith("22")
        or is_("DataError")
        or "division by zero" in text
        or "invalid input syntax" in text
    ):
        return (
            "run SQL",
            first,
            "a value does not fit its type or operation: add casts, NULLIF for "
            "divisors, or filter the bad rows",
        )
    if sqlstate.startswith("53"):
        return (
            "run SQL",
            first,
            "the server ran out of a resource (disk, memory, connections): free "
            "it, or lower threads and make the model cheaper",
        )
    if sqlstate == "0A000" or is_("NotSupportedError"):
        return (
            "run SQL",
            first,
            "the feature is not supported by this PostgreSQL version or "
            "configuration; rewrite the SQL or upgrade the server",
        )
    return None


def _by_class(facts: _Facts) -> tuple[str, str, str] | None:
    """Advice by psycopg2's exception class, when neither the SQLSTATE nor the text told more."""
    classes = facts.classes
    first = facts.first
    where = facts.where
    is_ = set(facts.classes).__contains__
    if is_("InterfaceError"):
        return (
            "use the connection",
            first,
            "the connection was closed or misused; rerun, and report "
            "it to floe-engine-postgres if it repeats",
        )
    if is_("OperationalError"):
        return (
            "connect",
            f"{where}: {first}",
            "check host, port, dbname, user and sslmode, and that the server is running and reachable",
        )
    if is_("ProgrammingError"):
        return ("run SQL", first, "check the SQL and the names it uses against the database")
    if is_("InternalError"):
        return ("run SQL", first, "the server reported an internal error: check the server log and retry")
    if classes:
        return (
            "run SQL",
            first or classes[0],
            "see the PostgreSQL message; check the SQL and the server log",
        )
    return None
