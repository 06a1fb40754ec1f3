"""The BigQuery engine: dbt-bigquery profiles, and a connection check with google-cloud-bigquery.

Four ways to authenticate, dbt-bigquery's ``method``:

- ``oauth``: Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, GKE Workload
  Identity, ``gcloud auth application-default login``). Nothing secret is in the profile.
- ``service-account``: the secret ``keyfile`` holds the *path* of a key file (for instance a mounted
  Kubernetes secret); the profile has ``keyfile: {{ env_var('NAME') }}``.
- ``service-account-json``: the secret ``keyfile_json`` holds the key file's JSON. dbt renders
  ``{{ env_var() }}`` to a string but dbt-bigquery wants a mapping, so the profile has
  ``keyfile_json: {{ fromjson(env_var('NAME')) }}``: dbt renders profiles natively, so the value
  becomes the mapping itself (and ``true``/``null`` in the JSON survive, as they would not through
  a Python literal).
- ``oauth-secrets``: an access ``token``, or a ``refresh_token`` with ``client_id`` and
  ``client_secret`` (and ``token_uri``), each secret only as ``{{ env_var('NAME') }}``.

Importing this module is cheap: dbt, google-cloud-bigquery and google-auth are imported inside the
methods that need them.
"""

from __future__ import annotations

import importlib
import json
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
    engine_error,
    exception_chain,
    first_line,
    run_check,
    secret_reference,
    secret_value,
)

ENGINE = "bigquery"
DEFAULT_METHOD = "oauth"
DEFAULT_THREADS = 4
SCOPES = (
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/drive",
)
"""The scopes dbt-bigquery asks for (less ``userinfo.email``, which BigQuery does not need)."""
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1", "memory": "1Gi"}
"""BigQuery does the work; the pod runs dbt (parse, compile, polling jobs), ~250 MB at rest."""
PIP_INSTALL = "pip install 'dbt-bigquery>=1.11,<1.13' 'google-cloud-bigquery>=3.25,<4'"

METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "oauth": (),
    "service-account": ("keyfile",),
    "service-account-json": ("keyfile_json",),
    "oauth-secrets": ("token", "refresh_token", "client_id", "client_secret", "token_uri"),
}
"""The credential settings each method uses; any other credential setting is a mistake."""
CREDENTIAL_KEYS = (
    "keyfile",
    "keyfile_json",
    "token",
    "refresh_token",
    "client_id",
    "client_secret",
    "token_uri",
)
SECRET_KEYS = ("keyfile", "keyfile_json", "token", "refresh_token", "client_secret")
PASSED_THROUGH = (
    "execution_project",
    "location",
    "priority",
    "maximum_bytes_billed",
    "job_execution_timeout_seconds",
    "job_creation_timeout_seconds",
    "job_retries",
    "job_retry_deadline_seconds",
    "api_endpoint",
)
"""Settings that go into the profile under the same name as in floe's config."""
DBT_SECRET_PREFIX = "DBT_ENV_SECRET_"
_REASON = re.compile(r"'reason':\s*'([A-Za-z]+)'")


class BigQueryEngine(ComputePlugin):
    """Google BigQuery through dbt-bigquery."""

    name: ClassVar[str] = "bigquery"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "bigquery"
    description: ClassVar[str] = (
        "Google BigQuery through dbt-bigquery; credentials only as secret references."
    )

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/bigquery.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-bigquery output: ``method``, ``project``, ``dataset``, ``threads``, the job settings
        and the method's credentials, each secret only as a dbt ``env_var`` expression."""
        settings = checked_settings(compute, "generate_dbt_profile")
        config = compute.config
        profile: dict[str, Any] = {
            "type": "bigquery",
            "method": settings.method,
            "project": str(config["project"]),
            "dataset": str(config["dataset"]),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
        }
        for key in PASSED_THROUGH:
            if config.get(key) is not None:
                value = config[key]
                profile[key] = value if isinstance(value, (int, bool)) else str(value)
        for key, ref in settings.secrets.items():
            expression = ref.as_env_var()
            if key == "keyfile_json":
                expression = "{{ fromjson(env_var('" + ref.name + "')) }}"
            profile[key] = expression
        for key in ("client_id", "token_uri"):
            if config.get(key) is not None:
                profile[key] = str(config[key])
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-bigquery>=1.11,<1.13",
            "google-cloud-bigquery>=3.25,<4",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Authenticate as dbt would, read the dataset, and run ``select 1`` as a query job.

        Each HTTP call gets the time left (connect and read), nothing is retried, and the whole
        check runs under a hard deadline a little under ``timeout``. The message says what to fix;
        it never holds a secret's value.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = self._check(compute, progress, seconds)
            message = (
                f"compute {compute.name!r}: BigQuery answered at {details['endpoint']} as "
                f"{details['method']}; dataset {details['project']}.{details['dataset']} "
                f"({details.get('location') or 'unknown location'}) exists and select 1 ran"
            )
            return message, details

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=lambda progress: (
                f"no answer from {progress['details'].get('endpoint', 'the BigQuery API')} within "
                f"{timeout:g} s while {progress['stage']}",
                "check that the endpoint is reachable from where floe runs (firewall, proxy, "
                "private connectivity) and, if api_endpoint is set, that it points at the BigQuery API",
            ),
            fix="check the compute's BigQuery settings (project, dataset, method and its secrets)",
            translate=self.translate_error,
            margin=0.3,
        )

    def _check(self, compute: ComputeConfig, progress: dict[str, Any], budget: float) -> dict[str, Any]:
        """The body of :meth:`validate_connection`; runs in the deadline's worker thread."""
        import time

        start = time.monotonic()

        def left() -> float:
            return max(0.1, budget - (time.monotonic() - start))

        operation = "validate_connection"
        settings = checked_settings(compute, operation)
        config = compute.config
        project, dataset = str(config["project"]), str(config["dataset"])
        endpoint = str(config.get("api_endpoint") or "https://bigquery.googleapis.com")
        details: dict[str, Any] = progress["details"]
        details.update(
            {"method": settings.method, "project": project, "dataset": dataset, "endpoint": endpoint}
        )
        progress["stage"] = "importing google-cloud-bigquery"
        try:
            bigquery = importlib.import_module("google.cloud.bigquery")
            client_options = importlib.import_module("google.api_core.client_options")
        except ImportError as exc:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"google-cloud-bigquery cannot be imported ({exc})",
                PIP_INSTALL,
                compute=compute.name,
            ) from None
        progress["stage"] = f"loading the {settings.method} credentials"
        credentials = google_credentials(settings, compute, operation)
        progress["stage"] = "creating the BigQuery client"
        options = (
            client_options.ClientOptions(api_endpoint=str(config["api_endpoint"]))
            if config.get("api_endpoint")
            else None
        )
        client = bigquery.Client(
            project=str(config.get("execution_project") or project),
            credentials=credentials,
            location=str(config["location"]) if config.get("location") else None,
            client_options=options,
        )
        try:
            progress["stage"] = f"reading the dataset {project}.{dataset}"
            found = client.get_dataset(
                bigquery.DatasetReference(project, dataset), timeout=left(), retry=None
            )
            details["location"] = found.location
            progress["stage"] = "running select 1"
            job_config = bigquery.QueryJobConfig(use_legacy_sql=False)
            if config.get("maximum_bytes_billed"):
                job_config.maximum_bytes_billed = int(config["maximum_bytes_billed"])
            rows = client.query_and_wait(
                "select 1 as floe_check",
                job_config=job_config,
                location=str(config.get("location") or found.location or "") or None,
                api_timeout=left(),
                wait_timeout=left(),
                retry=None,
                job_retry=None,
            )
            values = [tuple(row.values()) for row in rows]
        finally:
            client.close()
        if values != [(1,)]:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"select 1 returned {values!r} instead of one row with 1",
                "check that api_endpoint points at the BigQuery API and not at another service",
                compute=compute.name,
            )
        details["stage"] = "done"
        return dict(details)

    # -- REQ-015 and REQ-013 --------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A small pod: BigQuery runs the queries; the pod runs dbt, which only submits and polls."""
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: BigQuery has no session-level ``ATTACH``.

        BigQuery reads Iceberg tables through BigLake (external tables or a BigLake metastore
        catalog) that are created once in the project, outside dbt's session, with a connection
        resource and IAM grants; a dbt run then addresses them as ordinary ``project.dataset.table``
        names. There is no SQL a session could run to attach an Iceberg REST catalog.
        """
        return None

    def run_profile(
        self, compute: ComputeConfig, profile: dict[str, Any], catalog: CatalogConfig, namespace: str
    ) -> dict[str, Any]:
        """The compiled profile building into the run's namespace as its ``dataset`` (dbt-bigquery
        refuses a profile with both ``dataset`` and its alias ``schema``, floe's default key)."""
        run = {key: value for key, value in profile.items() if key != "schema"}
        run["dataset"] = namespace
        return run

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`): ``floe plan`` refuses a ref
        between its transforms and those of another compute."""
        return CatalogAccess.own_warehouse(
            "BigQuery reads Iceberg through BigLake resources created once in the project, not through a "
            "session; its transforms build in the compute's project and dataset"
        )

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a google-cloud / google-auth / requests error (also one that dbt
        wrapped, found through ``__cause__``/``__context__`` or dbt's message), else ``None``."""
        found = _client_error(error)
        if found is None:
            return None
        names, text = found
        method = str(compute.config.get("method", DEFAULT_METHOD)) if compute is not None else None
        explained = explain(names, text, compute, method)
        if explained is None:
            return None
        return engine_error(ENGINE, compute, explained, cause=f"{names[0]}: {first_line(text)}")


plugin = BigQueryEngine()
"""The instance the ``floe`` entry point ``bigquery = floe.engines.bigquery:plugin`` names."""


# -- settings ----------------------------------------------------------------------------------------


class Settings:
    """The method and the secret references it uses, checked against each other."""

    def __init__(self, method: str, secrets: dict[str, SecretReference]) -> None:
        self.method = method
        self.secrets = secrets


def checked_settings(compute: ComputeConfig, operation: str) -> Settings:
    """The compute's method and secrets, or an error naming the setting to fix.

    A credential that the method does not use is an error (not silently dropped): it usually means
    the method is wrong.
    """
    config = compute.config
    method = str(config.get("method", DEFAULT_METHOD))

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    if method not in METHOD_KEYS:
        raise fail(f"unknown method {method!r}", f"use one of: {', '.join(METHOD_KEYS)}")
    for key in ("project", "dataset"):
        if not config.get(key):
            raise fail(f"{key} is not set", f"set {key} in the compute's config")
    stray = [k for k in CREDENTIAL_KEYS if config.get(k) is not None and k not in METHOD_KEYS[method]]
    if stray:
        users = sorted({m for m, keys in METHOD_KEYS.items() if stray[0] in keys})
        raise fail(
            f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} set but method is {method}",
            f"remove {', '.join(stray)}, or set method to {' or '.join(users)}",
        )
    refs: dict[str, SecretReference] = {}
    for key in SECRET_KEYS:
        ref = secret_reference(ENGINE, compute, key, operation, example="BIGQUERY_TOKEN")
        if ref is not None:
            refs[key] = ref
    required = {"service-account": ("keyfile",), "service-account-json": ("keyfile_json",)}.get(method, ())
    for key in required:
        if key not in refs:
            raise fail(f"method {method} needs {key}", f"set {key}: {{secret_ref: NAME}}")
    if method == "oauth-secrets" and "token" not in refs:
        missing = [k for k in ("refresh_token", "client_id", "client_secret") if config.get(k) is None]
        if missing:
            raise fail(
                f"method oauth-secrets needs token, or refresh_token with client_id and client_secret "
                f"(missing: {', '.join(missing)})",
                "set token: {secret_ref: NAME}, or refresh_token and client_secret as secret "
                "references with client_id",
            )
    keyfile_json = refs.get("keyfile_json")
    if keyfile_json is not None and keyfile_json.name.startswith(DBT_SECRET_PREFIX):
        raise fail(
            f"the keyfile_json secret {keyfile_json.name} starts with {DBT_SECRET_PREFIX}: dbt "
            "renders such variables only as text, and dbt-bigquery needs the key as a mapping",
            "name the secret without that prefix, or use method service-account with the key "
            "file's path in keyfile",
        )
    return Settings(method, refs)


def google_credentials(settings: Settings, compute: ComputeConfig, operation: str) -> Any:
    """google-auth credentials for the method, built the way dbt-bigquery builds them."""
    config = compute.config
    method = settings.method

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    if method == "oauth":
        google_auth = importlib.import_module("google.auth")
        auth_errors = importlib.import_module("google.auth.exceptions")
        try:
            credentials, _ = google_auth.default(scopes=list(SCOPES))
        except auth_errors.DefaultCredentialsError as exc:
            raise fail(
                f"no Application Default Credentials were found ({first_line(str(exc))[:200]})",
                "set GOOGLE_APPLICATION_CREDENTIALS to a key file, run under GKE Workload Identity, "
                "or choose method service-account / service-account-json / oauth-secrets",
            ) from None
        return credentials
    if method == "service-account":
        service_account = importlib.import_module("google.oauth2.service_account")
        ref = settings.secrets["keyfile"].name
        path = secret_value(ENGINE, settings.secrets["keyfile"], compute, operation, what="keyfile")
        try:
            return service_account.Credentials.from_service_account_file(path, scopes=list(SCOPES))
        except OSError as exc:
            raise fail(
                f"the key file named by {ref} cannot be read ({exc.strerror or type(exc).__name__})",
                f"set {ref} to the path of a readable service-account key file (JSON)",
            ) from None
        except ValueError as exc:
            raise fail(
                f"the file named by {ref} is not a service-account key ({first_line(str(exc))[:200]})",
                "download a new JSON key for the service account (IAM > Service accounts > Keys)",
            ) from None
    if method == "service-account-json":
        service_account = importlib.import_module("google.oauth2.service_account")
        ref = settings.secrets["keyfile_json"].name
        text = secret_value(ENGINE, settings.secrets["keyfile_json"], compute, operation, what="keyfile_json")
        try:
            info = json.loads(text)
        except ValueError:
            raise fail(
                f"the secret {ref} (keyfile_json) does not hold JSON",
                f"set {ref} to the content of the service-account key file (JSON)",
            ) from None
        if not isinstance(info, dict):
            raise fail(
                f"the secret {ref} (keyfile_json) holds JSON that is not an object",
                f"set {ref} to the content of the service-account key file",
            )
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
        except ValueError as exc:
            raise fail(
                f"the secret {ref} is not a service-account key ({first_line(str(exc))[:200]})",
                "download a new JSON key for the service account (IAM > Service accounts > Keys)",
            ) from None
    oauth2 = importlib.import_module("google.oauth2.credentials")

    token = (
        secret_value(ENGINE, settings.secrets["token"], compute, operation, what="token")
        if "token" in settings.secrets
        else None
    )
    refresh = (
        secret_value(ENGINE, settings.secrets["refresh_token"], compute, operation, what="refresh_token")
        if "refresh_token" in settings.secrets
        else None
    )
    secret = (
        secret_value(ENGINE, settings.secrets["client_secret"], compute, operation, what="client_secret")
        if "client_secret" in settings.secrets
        else None
    )
    return oauth2.Credentials(
        token=token,
        refresh_token=refresh,
        client_id=str(config["client_id"]) if config.get("client_id") else None,
        client_secret=secret,
        token_uri=str(config.get("token_uri") or "https://oauth2.googleapis.com/token"),
        scopes=list(SCOPES),
    )


# -- errors ------------------------------------------------------------------------------------------

_CLIENT_MODULES = ("google.", "requests.", "urllib3.")


def _client_error(error: BaseException) -> tuple[list[str], str] | None:
    """Class names and text of the Google/HTTP client error in ``error`` or its causes."""
    for current in exception_chain(error):
        module = type(current).__module__ or ""
        if module.startswith(_CLIENT_MODULES) and not module.startswith("google.protobuf"):
            return [c.__name__ for c in type(current).__mro__], str(current)
    module = type(error).__module__ or ""
    if module.startswith("dbt"):
        text = str(error)
        markers = (
            "invalid_grant",
            "Access Denied",
            "Not found: Dataset",
            "Not found: Project",
            "Request had invalid authentication",
            "Connection refused",
            "Failed to resolve",
            "Read timed out",
            "Max retries exceeded",
        )
        if any(m in text for m in markers):
            return [type(error).__name__], text
    return None


def explain(
    names: list[str], text: str, compute: ComputeConfig | None, method: str | None
) -> tuple[str, str, str] | None:
    """``(operation, message, fix)`` for a client error, by class name and text, or ``None``."""
    first = first_line(text)[:400]
    config = compute.config if compute is not None else {}
    where = str(config.get("api_endpoint") or "the BigQuery API (bigquery.googleapis.com)")
    dataset = f"{config.get('project', '<project>')}.{config.get('dataset', '<dataset>')}"
    credentials_fix = _credentials_fix(config, method)

    def is_(*wanted: str) -> bool:
        return any(n in names for n in wanted)

    if "necessary fields need to refresh" in text:
        return (
            "authenticate",
            "BigQuery rejected the access token (HTTP 401) and it cannot be refreshed",
            credentials_fix,
        )
    if is_("RefreshError") or "invalid_grant" in text or "invalid_client" in text:
        return ("authenticate", f"Google's token endpoint refused the credentials: {first}", credentials_fix)
    if is_("DefaultCredentialsError"):
        return (
            "authenticate",
            f"no Application Default Credentials: {first}",
            "set GOOGLE_APPLICATION_CREDENTIALS, run under GKE Workload Identity, or choose another method",
        )
    if is_("Unauthorized") or "Request had invalid authentication" in text or text.startswith("401 "):
        return ("authenticate", f"BigQuery rejected the credentials (HTTP 401): {first}", credentials_fix)
    if is_("Forbidden") or "Access Denied" in text or text.startswith("403 "):
        reason = _REASON.search(text)
        why = reason.group(1) if reason else ""
        if why in ("billingNotEnabled", "accessDenied", "") or "Access Denied" in text:
            fix = (
                f"grant the principal roles/bigquery.jobUser on the project "
                f"{config.get('execution_project') or config.get('project', '<project>')} and "
                f"roles/bigquery.dataEditor on the dataset {dataset}; check billing is enabled"
            )
        else:
            fix = "wait for the quota or rate limit to reset, or raise it in the Cloud console (IAM & Admin > Quotas)"
        return ("run a BigQuery job", f"BigQuery refused the request (HTTP 403): {first}", fix)
    if is_("NotFound") or "Not found:" in text:
        if "Project" in text:
            fix = "correct project (and execution_project): the project ID, not its name or number"
        elif "Dataset" in text:
            fix = (
                f"create the dataset (bq mk --dataset {str(dataset).replace('.', ':', 1)}) or let dbt "
                "create it by granting roles/bigquery.dataEditor on the project; or correct "
                "project/dataset (and location)"
            )
        else:
            fix = "check the name: build upstream models first (dbt run --select +<model>)"
        return ("find a BigQuery resource", f"not found (HTTP 404): {first}", fix)
    if is_("BadRequest") or text.startswith("400 "):
        return (
            "run a BigQuery job",
            f"BigQuery refused the request (HTTP 400): {first}",
            "fix the SQL or the setting named in the message (location, maximum_bytes_billed)",
        )
    if (
        is_("Timeout", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError", "TimeoutError")
        or "timed out" in text
    ):
        return (
            "reach BigQuery",
            f"no answer from {where} in time: {first}",
            "check network access to the endpoint (firewall, proxy, private connectivity) and "
            "that api_endpoint, if set, is the BigQuery API",
        )
    if (
        is_("ConnectionError", "NewConnectionError", "MaxRetryError", "TransportError")
        or "Connection refused" in text
    ):
        if "refused" in text:
            message = f"the connection to {where} was refused: {first}"
        elif "resolve" in text or "Name or service not known" in text or "nodename" in text:
            message = f"the host of {where} cannot be resolved: {first}"
        else:
            message = f"cannot reach {where}: {first}"
        return (
            "reach BigQuery",
            message,
            "check api_endpoint (scheme, host and port) and network access from where dbt runs "
            "(DNS, firewall, proxy)",
        )
    if is_("GoogleAPICallError", "GoogleAPIError"):
        return (
            "call BigQuery",
            f"BigQuery answered with an error: {first}",
            "see the message; retry later if it is transient (HTTP 5xx)",
        )
    return None


def _credentials_fix(config: Mapping[str, Any], method: str | None) -> str:
    def name(key: str) -> str:
        value = config.get(key)
        return value.name if isinstance(value, SecretReference) else key

    if method == "service-account":
        return (
            f"check that the key file named by {name('keyfile')} is a current key of an enabled "
            "service account (keys can be deleted or disabled); create a new key if needed"
        )
    if method == "service-account-json":
        return (
            f"check that {name('keyfile_json')} holds a current key of an enabled service account "
            "(keys can be deleted or disabled); create a new key if needed"
        )
    if method == "oauth-secrets":
        if config.get("refresh_token") is not None:
            return (
                f"check {name('refresh_token')}, client_id and {name('client_secret')}: the refresh "
                "token must be issued to that client and not revoked; token_uri must be the "
                "issuer's token endpoint"
            )
        return (
            f"the access token in {name('token')} is invalid or expired: renew it, or use "
            "refresh_token with client_id and client_secret so it is refreshed"
        )
    return (
        "check the Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, Workload "
        "Identity binding, or gcloud auth application-default login)"
    )
