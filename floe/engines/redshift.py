"""The Amazon Redshift engine: dbt-redshift profiles, and connection checks with redshift_connector.

Authentication methods (dbt-redshift's ``method``):

- ``database``: a database user and its password.
- ``iam``: temporary database credentials from the AWS API, signed with the pod's AWS credentials
  (an ``iam_profile``, explicit keys, or the default chain such as IRSA). A provisioned cluster is
  named by ``cluster_id`` (``redshift:GetClusterCredentials``, user ``IAM:<user>``), Redshift
  Serverless by ``serverless_work_group`` (``redshift-serverless:GetCredentials``).

dbt-redshift's ``iam_role`` and IAM Identity Center methods are not offered: the first federates
groups differently and the browser flow cannot run in a pod.

``validate_connection`` connects with the keyword arguments dbt-redshift builds for the same
settings (including its ``sslmode`` translation: anything but ``disable`` means TLS verified
against the system CAs and redshift_connector's Amazon bundle), so what passes here connects in dbt.

Importing this module is cheap: redshift_connector, boto3, dbt and floe's schema machinery are
imported inside the methods that need them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from floe import __version__
from floe.enginekit import (
    CatalogAccess,
    CatalogConfig,
    ComputeConfig,
    ComputePlugin,
    PluginExecutionError,
    ProfileTarget,
    Progress,
    SecretReference,
    ValidationResult,
    exception_chain,
    first_line,
    run_check,
    secret_placeholder,
    secret_value,
    translate_client_error,
)

ENGINE = "redshift"
METHODS = ("database", "iam")
DEFAULT_PORT = 5439
DEFAULT_THREADS = 4
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PIP_INSTALL = "pip install 'dbt-redshift>=1.11,<1.12' 'redshift-connector>=2.1,<3'"
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "500m", "memory": "512Mi"}
_IAM_KEYS = (
    "iam_profile",
    "cluster_id",
    "serverless_work_group",
    "serverless_acct_id",
    "access_key_id",
    "secret_access_key",
    "db_groups",
    "autocreate",
)
_SECRET_KEYS = ("password", "secret_access_key")


class RedshiftEngine(ComputePlugin):
    """Amazon Redshift (provisioned or Serverless) through dbt-redshift: methods database and iam."""

    name: ClassVar[str] = "redshift"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "redshift"
    description: ClassVar[str] = "Amazon Redshift through dbt-redshift (password or IAM authentication)."

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/redshift.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-redshift output; the password and secret key only as ``{{ env_var('NAME') }}``.

        The method is inferred when not set: a password means ``database``, IAM settings
        (``cluster_id``, ``serverless_work_group``, ``iam_profile``…) mean ``iam``.
        ``serverless_work_group`` also sets dbt-redshift's ``is_serverless``.
        """
        operation = "generate_dbt_profile"
        settings = checked_settings(compute, operation)
        config = compute.config
        profile: dict[str, Any] = {
            "type": "redshift",
            "method": settings.method,
            "host": settings.host,
            "port": settings.port,
            "user": settings.user,
            "dbname": settings.dbname,
            "schema": settings.schema,
            "threads": settings.threads,
        }
        if settings.method == "database":
            profile["password"] = secret_placeholder(
                ENGINE, compute.config["password"], compute, operation, example="REDSHIFT_PASSWORD"
            )
        else:
            for key in ("iam_profile", "cluster_id", "serverless_acct_id", "access_key_id"):
                if config.get(key):
                    profile[key] = str(config[key])
            if config.get("serverless_work_group"):
                profile["serverless_work_group"] = str(config["serverless_work_group"])
                profile["is_serverless"] = True
            if config.get("secret_access_key") is not None:
                profile["secret_access_key"] = secret_placeholder(
                    ENGINE,
                    compute.config["secret_access_key"],
                    compute,
                    operation,
                    example="AWS_SECRET_ACCESS_KEY",
                )
            if config.get("db_groups"):
                profile["db_groups"] = [str(g) for g in config["db_groups"]]
            if config.get("autocreate") is not None:
                profile["autocreate"] = bool(config["autocreate"])
        if config.get("region"):
            profile["region"] = str(config["region"])
        if settings.sslmode is not None:
            profile["sslmode"] = settings.sslmode
        for key in ("connect_timeout",):
            if config.get(key) is not None:
                profile[key] = int(config[key])
        for key in ("autocommit", "ra3_node"):
            if config.get(key) is not None:
                profile[key] = bool(config[key])
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        return ["dbt-core>=1.11,<1.12", "dbt-redshift>=1.11,<1.12", "redshift-connector>=2.1,<3"]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Connect as dbt-redshift would, run ``select current_database(), current_user, version()``
        and look up the schema.

        The socket waits are bounded by what is left of ``timeout`` (and ``connect_timeout``), the
        whole check (AWS calls of the IAM method included) by a hard deadline a little under it. A
        missing schema is not a failure: dbt creates it.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, seconds, progress)
            message = (
                f"compute {compute.name!r}: connected to database {details['database']} at "
                f"{details['endpoint']} as {details['current_user']} ({details['server_version']})"
            )
            if details["schema_exists"]:
                message += f"; schema {details['schema']} exists"
            else:
                message += (
                    f"; schema {details['schema']} does not exist yet (dbt creates it on the first run)"
                )
            return message, details

        def no_answer(progress: Progress) -> tuple[str, str]:
            fix = (
                "check host and port (5439 by default), the security group / network ACLs that "
                "must let this pod in, and that the cluster is not paused"
            )
            if progress["stage"].startswith("asking AWS"):
                fix = (
                    "check that the pod reaches the AWS Redshift API (NAT, proxy or VPC endpoint) "
                    "and that its AWS credentials are available quickly"
                )
            where = progress.get("where", "the Redshift endpoint")
            return f"no answer from {where} within {timeout:g} s while {progress['stage']}", fix

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=no_answer,
            fix="check the compute's Redshift settings (host, port, dbname, method, sslmode)",
            translate=self.translate_error,
        )

    def _check(self, compute: ComputeConfig, budget: float, progress: dict[str, Any]) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        operation = "validate_connection"
        settings = checked_settings(compute, operation)
        endpoint = f"{settings.host}:{settings.port}"
        details: dict[str, Any] = {
            "endpoint": endpoint,
            "method": settings.method,
            "database": settings.dbname,
            "schema": settings.schema,
        }
        progress.update(details=details, where=endpoint)
        progress["stage"] = "importing redshift_connector"
        try:
            import redshift_connector
        except ImportError:
            raise PluginExecutionError(
                ENGINE, operation, "redshift_connector is not installed", PIP_INSTALL, compute=compute.name
            ) from None
        kwargs = self._connect_kwargs(compute, settings, budget)
        if settings.method == "iam":
            progress["stage"] = "asking AWS for temporary database credentials, then connecting"
        else:
            progress["stage"] = f"connecting to {endpoint}"
        connection = redshift_connector.connect(**kwargs)
        try:
            cursor = connection.cursor()
            progress["stage"] = "running select current_database(), current_user, version()"
            cursor.execute("select current_database(), current_user, version()")
            database, user, version = cursor.fetchone() or ("?", "?", "?")
            details.update(
                current_database=str(database),
                current_user=str(user),
                server_version=_short_version(str(version)),
            )
            progress["stage"] = f"looking up schema {settings.schema}"
            # a bound parameter: Redshift reads backslash escapes in literals, a parameter is never SQL
            cursor.execute("select count(*) from pg_namespace where nspname = %s", (settings.schema.lower(),))
            row = cursor.fetchone()
            details["schema_exists"] = bool(row and int(row[0]) > 0)
        finally:
            progress["stage"] = "closing the connection"
            connection.close()
        progress["stage"] = "done"
        return details

    @staticmethod
    def _connect_kwargs(compute: ComputeConfig, settings: Settings, budget: float) -> dict[str, Any]:
        """redshift_connector.connect's arguments, built the way dbt-redshift builds them."""
        config = compute.config
        operation = "validate_connection"
        sslmode = settings.sslmode or "prefer"  # dbt-redshift's default
        connect_timeout = config.get("connect_timeout")
        kwargs: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "database": settings.dbname,
            "region": str(config["region"]) if config.get("region") else None,
            "auto_create": bool(config.get("autocreate", False)),
            "db_groups": [str(g) for g in config.get("db_groups") or []],
            "timeout": min(budget, float(connect_timeout)) if connect_timeout else budget,
            # dbt-redshift: a host naming Redshift Serverless, or a workgroup, means Serverless
            "is_serverless": "serverless" in settings.host or bool(config.get("serverless_work_group")),
            "ssl": sslmode != "disable",
            "sslmode": None
            if sslmode == "disable"
            else ("verify-full" if sslmode == "verify-full" else "verify-ca"),
            "tcp_keepalive": True,
            "application_name": f"floe-{__version__}",
        }
        if settings.method == "database":
            kwargs.update(
                user=settings.user,
                password=secret_value(
                    ENGINE, compute.config["password"], compute, operation, what="password"
                ),
            )
            return kwargs
        kwargs.update(
            iam=True,
            user="",
            password="",
            db_user=settings.user,
            cluster_identifier=None if kwargs["is_serverless"] else str(config.get("cluster_id")),
            serverless_work_group=str(config["serverless_work_group"]) if kwargs["is_serverless"] else None,
            serverless_acct_id=str(config["serverless_acct_id"])
            if config.get("serverless_acct_id")
            else None,
        )
        if config.get("access_key_id"):
            kwargs["access_key_id"] = str(config["access_key_id"])
            kwargs["secret_access_key"] = secret_value(
                ENGINE, compute.config["secret_access_key"], compute, operation, what="secret_access_key"
            )
        else:
            kwargs["profile"] = str(config["iam_profile"]) if config.get("iam_profile") else None
        return kwargs

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A dbt client pod: the work runs on the Redshift cluster, so little CPU and memory.

        requests ``cpu: 100m, memory: 256Mi``; limits ``cpu: 500m, memory: 512Mi`` (``1Gi`` with
        more than 8 dbt threads).
        """
        limits = dict(DEFAULT_LIMITS)
        if int(compute.config.get("threads", DEFAULT_THREADS)) > 8:
            limits["memory"] = "1Gi"
        return {"requests": dict(DEFAULT_REQUESTS), "limits": limits}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Redshift cannot attach an Iceberg REST (or SQL) catalog by SQL.

        Redshift reads Iceberg tables only through the AWS Glue Data Catalog: the auto-mounted
        ``awsdatacatalog`` database, or an external schema (``CREATE EXTERNAL SCHEMA … FROM DATA
        CATALOG … IAM_ROLE 'arn:…'``) that the platform team creates once with an IAM role of
        the cluster. Neither takes a REST catalog URI or OAuth2 client credentials, so there is
        nothing a dbt session could run.
        """
        return None

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`): ``floe plan`` refuses a ref
        between its transforms and those of another compute."""
        return CatalogAccess.own_warehouse(
            "Redshift reads Iceberg only through the AWS Glue Data Catalog (an external schema the "
            "platform team creates), not a REST catalog; its transforms build in the compute's database"
        )

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a redshift_connector or AWS SDK error (also one dbt wrapped)."""
        return translate_client_error(ENGINE, error, compute, _client_error, _translate)


plugin = RedshiftEngine()
"""The instance the ``floe`` entry point ``redshift = floe.engines.redshift:plugin`` names."""


# -- settings --------------------------------------------------------------------------------------


class Settings:
    """The compute's settings with defaults applied and combinations checked."""

    def __init__(self, compute: ComputeConfig, operation: str) -> None:
        config = compute.config

        def fail(message: str, fix: str) -> PluginExecutionError:
            return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

        for key in ("host", "user", "dbname", "schema"):
            if not config.get(key):
                raise fail(f"{key} is not set", f"set {key} in the compute's config")
        self.host = str(config["host"])
        self.port = int(config.get("port", DEFAULT_PORT))
        self.user = str(config["user"])
        self.dbname = str(config["dbname"])
        self.schema = str(config["schema"])
        self.threads = int(config.get("threads", DEFAULT_THREADS))
        for key in _SECRET_KEYS:
            value = config.get(key)
            if value is not None and not isinstance(value, SecretReference):
                raise fail(
                    f"{key} must be a secret reference, not a value",
                    f"write {key}: {{secret_ref: NAME}} and set NAME in the environment",
                )
        iam_keys = [k for k in _IAM_KEYS if config.get(k) is not None]
        method = config.get("method")
        if method is None:
            method = "database" if config.get("password") is not None else ("iam" if iam_keys else None)
        if method is None:
            raise fail(
                "no credential is configured",
                "set password: {secret_ref: NAME} (method database), or cluster_id / "
                "serverless_work_group for method iam",
            )
        if method not in METHODS:
            raise fail(f"method {method!r} is not supported", f"use one of {', '.join(METHODS)}")
        self.method = str(method)
        if self.method == "database":
            if config.get("password") is None:
                raise fail("method database needs a password", "set password: {secret_ref: NAME}")
            if iam_keys:
                raise fail(
                    f"{', '.join(iam_keys)} only apply to method iam",
                    "set method: iam and remove password, or remove them",
                )
        else:
            if config.get("password") is not None:
                raise fail(
                    "password is set but method is iam (IAM issues temporary passwords)",
                    "remove password, or set method: database",
                )
            if not config.get("cluster_id") and not config.get("serverless_work_group"):
                raise fail(
                    "method iam needs cluster_id (provisioned) or serverless_work_group (Serverless)",
                    "set the cluster identifier or the Serverless workgroup name",
                )
            if config.get("cluster_id") and config.get("serverless_work_group"):
                raise fail(
                    "cluster_id and serverless_work_group are both set",
                    "keep cluster_id for a provisioned cluster, serverless_work_group for Serverless",
                )
            if bool(config.get("access_key_id")) != (config.get("secret_access_key") is not None):
                raise fail(
                    "access_key_id and secret_access_key go together",
                    "set both, or neither to use iam_profile or the pod's AWS credentials (IRSA)",
                )
            if config.get("access_key_id") and config.get("iam_profile"):
                raise fail("access_key_id and iam_profile are both set", "keep one source of AWS credentials")
        sslmode = config.get("sslmode")
        if sslmode is not None and sslmode not in SSL_MODES:
            raise fail(f"sslmode {sslmode!r} is not valid", f"use one of {', '.join(SSL_MODES)}")
        if self.method == "iam" and sslmode == "disable":
            raise fail(
                "method iam needs TLS, and sslmode is disable",
                "remove sslmode or set it to verify-ca or verify-full",
            )
        self.sslmode: str | None = str(sslmode) if sslmode is not None else None


def checked_settings(compute: ComputeConfig, operation: str) -> Settings:
    """The compute's :class:`Settings`, checked for ``operation`` (its errors name it)."""
    return Settings(compute, operation)


def _short_version(version: str) -> str:
    match = re.search(r"Redshift [0-9.]+", version)
    return match[0] if match else version.split(" on ")[0][:60]


# -- error translation -----------------------------------------------------------------------------

_FIELD = re.compile(r"'(?P<key>[A-Z])': (?P<quote>['\"])(?P<value>.*?)(?P=quote)(?=[,}])")
_CLIENT_MODULES = ("redshift_connector", "botocore", "boto3")
_AWS_CODE = re.compile(
    r"An error occurred \((?P<code>\w+)\) when calling the (?P<operation>\w+) operation: ?(?P<message>.*)"
)


def _is_client_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return any(module == m or module.startswith(m + ".") for m in _CLIENT_MODULES)


def _client_error(error: BaseException) -> tuple[list[str], str] | None:
    """Class names and text of the redshift_connector or AWS SDK error in ``error`` or its causes.

    dbt-redshift re-raises driver errors as dbt errors keeping only text (``DbtDatabaseError`` with
    the server's message, ``FailedToConnectError`` with the driver's): such a text counts when it
    carries the driver's or the server's wording.
    """
    for current in exception_chain(error):
        if any(_is_client_class(c) for c in type(current).__mro__) or (
            isinstance(current, OSError) and _raised_in_client(current)
        ):
            return [c.__name__ for c in type(current).__mro__], f"{type(current).__name__}: {current}"
    module = type(error).__module__ or ""
    text = str(error)
    if module.startswith("dbt") and (
        _FIELD.search(text) or _message_code(text) or _AWS_CODE.search(text) or "communication error" in text
    ):
        return [], text
    return None


def _raised_in_client(error: BaseException) -> bool:
    """Whether a plain OSError (a socket timeout during the startup read…) came from the driver."""
    frame = error.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if any(module == m or module.startswith(m + ".") for m in _CLIENT_MODULES):
            return True
        frame = frame.tb_next
    return False


def _message_code(message: str) -> str | None:
    """The SQLSTATE a Redshift message implies, for texts that lost their code."""
    patterns = (
        (r"password authentication failed", "28000"),
        (r'database "[^"]+" does not exist', "3D000"),
        (r'relation "[^"]+" does not exist', "42P01"),
        (r'schema "[^"]+" does not exist', "3F000"),
        (r'column "[^"]+" does not exist', "42703"),
        (r"permission denied", "42501"),
        (r"syntax error at or near", "42601"),
        (r"current transaction is aborted", "25P02"),
        (r"Serializable isolation violation", "40001"),
        (r"canceled on user's request|statement timeout|cancelled due to WLM", "57014"),
        (r"Disk Full", "53100"),
    )
    return next((code for pattern, code in patterns if re.search(pattern, message, re.I)), None)


def _target(compute: ComputeConfig | None) -> str:
    if compute is None or not compute.config.get("host"):
        return "the Redshift endpoint"
    return f"{compute.config['host']}:{compute.config.get('port', DEFAULT_PORT)}"


def _secret_name(compute: ComputeConfig | None, key: str) -> str:
    ref = compute.config.get(key) if compute is not None else None
    return f"the secret {ref.name}" if isinstance(ref, SecretReference) else f"the {key}"


def _method(compute: ComputeConfig | None) -> str | None:
    if compute is None:
        return None
    try:
        return checked_settings(compute, "translate_error").method
    except PluginExecutionError:
        return None


def _translate(classes: list[str], text: str, compute: ComputeConfig | None) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a driver or AWS SDK error, or ``None`` when not recognised."""
    fields = {m["key"]: m["value"] for m in _FIELD.finditer(text)}
    code = fields.get("C")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith("Error"):  # dbt's heading ("Database Error") over the message
        lines = lines[1:]
    message = fields.get("M") or " ".join(lines)
    if code is None and (not classes or "ProgrammingError" in classes):
        code = _message_code(message)  # dbt kept only the server's message
    where = _target(compute)
    if code is not None:
        return _sqlstate(code, message, compute, where)
    if aws := _AWS_CODE.search(text):
        return _aws_error(aws["code"], aws["operation"], first_line(aws["message"]), compute)
    lowered = text.lower()
    if "ProfileNotFound" in classes or ("could not be found" in lowered and "profile" in lowered):
        return (
            "get IAM credentials",
            first_line(text),
            "set iam_profile to a profile of the pod's AWS config (AWS_CONFIG_FILE / "
            "AWS_SHARED_CREDENTIALS_FILE), or remove it to use the pod's default AWS credentials",
        )
    if "NoCredentialsError" in classes or "unable to locate credentials" in lowered:
        return (
            "get IAM credentials",
            "no AWS credentials were found for method iam",
            "give the pod an IAM role (IRSA: a service account annotated with the role ARN), "
            "or set iam_profile, or access_key_id with secret_access_key",
        )
    if "NoRegionError" in classes or "must specify a region" in lowered:
        return ("get IAM credentials", "the AWS region is not known", "set region, such as us-east-1")
    if "EndpointConnectionError" in classes or "could not connect to the endpoint url" in lowered:
        return (
            "get IAM credentials",
            f"the AWS API cannot be reached: {first_line(text)[:200]}",
            "let the pod reach the Redshift API (NAT gateway, proxy, or a VPC interface endpoint)",
        )
    if "ssl must be enabled when using iam" in lowered:
        return ("connect", "IAM authentication needs TLS", "remove sslmode: disable")
    if "cluster_identifier must be provided" in lowered:
        return (
            "connect",
            "IAM authentication to a provisioned cluster needs its identifier",
            "set cluster_id (or serverless_work_group for Redshift Serverless)",
        )
    if "server refuses ssl" in lowered:
        return (
            "connect over TLS",
            f"{where} refused TLS",
            "Redshift always offers TLS: check that host and port reach Redshift (not another "
            "PostgreSQL-speaking service), or set sslmode: disable only for such a test server",
        )
    if "certificate verify failed" in lowered or "certificateverificationerror" in lowered:
        reason = re.search(r"certificate verify failed: ([^(\])']+)", text)
        return (
            "connect over TLS",
            f"the TLS certificate of {where} was not accepted{': ' + reason[1].strip() if reason else ''}",
            "redshift_connector trusts the system CAs and its bundled Amazon Redshift CAs: connect "
            "to the cluster's Amazon endpoint, or add the CA of your proxy/load balancer to the "
            "system bundle (SSL_CERT_FILE); with verify-full the host must match the certificate",
        )
    if "connection refused" in lowered or "errno 111" in lowered:
        return (
            "connect",
            f"nothing accepts connections at {where} (connection refused)",
            "check host and port (Redshift listens on 5439 by default), that the cluster is "
            "available (not paused or resizing) and publicly accessible or reachable from the pod",
        )
    if "name or service not known" in lowered or "gaierror" in lowered or "nodename nor servname" in lowered:
        return (
            "connect",
            f"the host name of {where} cannot be resolved",
            "check host (the cluster or workgroup endpoint, without port or database)",
        )
    if "connection time out" in lowered or "timed out" in lowered or "timeouterror" in lowered:
        return (
            "connect",
            f"{where} did not answer in time",
            "check the security group and network ACLs (inbound 5439 from the pod), that the "
            "cluster is available, or raise connect_timeout",
        )
    if "server socket closed" in lowered or "brokenpipe" in lowered or "connection reset" in lowered:
        return (
            "connect",
            f"{where} closed the connection",
            "check that host and port reach Redshift, and sslmode (a TLS-only proxy closes plain "
            "connections)",
        )
    if "communication error" in lowered:
        return (
            "connect",
            f"the connection to {where} failed: {first_line(text)[:200]}",
            "check host, port, sslmode and the network between the pod and Redshift",
        )
    return None


def _sqlstate(
    code: str, message: str, compute: ComputeConfig | None, where: str
) -> tuple[str, str, str] | None:
    first = first_line(message)[:300]
    if code in ("28000", "28P01"):
        if _method(compute) == "iam":
            user = compute.config.get("user") if compute is not None else None
            fix = (
                f"the temporary IAM credentials were refused: check that the database user {user} exists "
                "(or set autocreate: true) and that the IAM policy allows redshift:GetClusterCredentials "
                "for that dbuser"
            )
        else:
            fix = f"check user and the password in {_secret_name(compute, 'password')}"
        return "authentication", f"{where} refused the login: {first}", fix
    fixes = {
        "3D000": ("connect", "set dbname to an existing database of the cluster (dev by default)"),
        "42P01": (
            "run SQL",
            "check the name; if it is a model, build it first (dbt run --select "
            "+<model>); if it is a source, check that the table exists",
        ),
        "3F000": (
            "run SQL",
            "check the schema name; dbt creates its own schema, so a missing one is "
            "usually a source's or another model's schema",
        ),
        "42703": ("run SQL", "check the column names against the upstream model's columns"),
        "42601": ("parse SQL", "fix the SQL at the position shown (Redshift's SQL dialect)"),
        "42501": (
            "authorization",
            "ask a Redshift administrator to grant the privilege (GRANT … TO "
            "the dbt user), or use another schema",
        ),
        "25P02": ("run SQL", "an earlier statement of the transaction failed: fix that one first"),
        "40001": (
            "run SQL",
            "a concurrent transaction touched the same table: run dbt again, or "
            "lower threads for models that write the same tables",
        ),
        "57014": (
            "run a query",
            "the query was canceled (statement_timeout or a WLM rule): make it "
            "cheaper, or ask for a longer timeout / another WLM queue",
        ),
        "53100": ("run a query", "the cluster is out of disk: free space or resize the cluster"),
        "53200": (
            "run a query",
            "the query ran out of memory: simplify it or use a WLM queue with more memory",
        ),
    }
    if code not in fixes:
        return None
    operation, fix = fixes[code]
    return operation, f"Redshift {code}: {first}", fix


def _aws_error(
    code: str, operation: str, message: str, compute: ComputeConfig | None
) -> tuple[str, str, str]:
    text = f"AWS {operation} failed with {code}: {message[:200]}"
    if code in ("ClusterNotFound", "ClusterNotFoundFault"):
        return (
            "get IAM credentials",
            text,
            "check cluster_id and region (the cluster identifier, not its endpoint)",
        )
    if code == "ResourceNotFoundException":
        return ("get IAM credentials", text, "check serverless_work_group and region")
    if code in (
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
    ):
        source = (
            "the access key in access_key_id and " + _secret_name(compute, "secret_access_key")
            if (compute is not None and compute.config.get("access_key_id"))
            else "the AWS credentials of iam_profile (or of the pod's IAM role)"
        )
        return (
            "get IAM credentials",
            f"AWS rejected the credentials: {text}",
            f"check {source}: they must be valid and unexpired",
        )
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return (
            "get IAM credentials",
            text,
            "allow the IAM identity redshift:GetClusterCredentials (provisioned) or "
            "redshift-serverless:GetCredentials (Serverless) on this cluster, database and user",
        )
    return (
        "get IAM credentials",
        text,
        "check the IAM settings (cluster_id or serverless_work_group, "
        "region, iam_profile) against the message",
    )
