"""The Snowflake engine's hooks: :class:`SnowflakeEngine` and the ``plugin`` the entry point names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from floe import __version__
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
    engine_error,
    first_line,
    run_check,
)
from floe.engines.snowflake.errors import _snowflake_error, _translate
from floe.engines.snowflake.settings import (
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    DEFAULT_THREADS,
    ENGINE,
    SECRET_KEYS,
    check_settings,
    endpoint,
    key_path,
    schema_name,
)
from floe.engines.snowflake.validate import _check, _success_message

if TYPE_CHECKING:
    import pyarrow


class SnowflakeEngine(ComputePlugin):
    """Snowflake through dbt-snowflake; validation with snowflake-connector-python."""

    name: ClassVar[str] = "snowflake"
    version: ClassVar[str] = __version__
    dbt_adapter: ClassVar[str] = "snowflake"
    description: ClassVar[str] = (
        "Snowflake through dbt-snowflake: password, key pair, OAuth or browser SSO logins."
    )

    # -- configuration --------------------------------------------------------------------------

    def config_schema(self) -> Mapping[str, Any]:
        from floe.schemas import schema_file

        return schema_file("engines/snowflake.schema.json")

    # -- REQ-012: the dbt profile ---------------------------------------------------------------

    def generate_dbt_profile(self, compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
        """A dbt-snowflake output: account, user, role, database, warehouse, schema, credentials.

        ``authenticator`` is ``oauth`` or ``externalbrowser`` for those methods and absent for
        password and key pair (dbt-snowflake picks key-pair authentication from the key). A
        relative ``private_key_path`` is made absolute against the project directory.

        :raises PluginExecutionError: the settings are inconsistent (see :func:`check_settings`).
        """
        method = check_settings(compute, "generate_dbt_profile")
        config = compute.config
        profile: dict[str, Any] = {
            "type": "snowflake",
            "account": str(config["account"]),
            "database": str(config["database"]),
            "warehouse": str(config["warehouse"]),
            "schema": schema_name(compute, target),
            "threads": int(config.get("threads", DEFAULT_THREADS)),
        }
        for key in ("user", "role", "query_tag", "host", "protocol"):
            if config.get(key) is not None:
                profile[key] = str(config[key])
        for key in ("port", "connect_timeout"):
            if config.get(key) is not None:
                profile[key] = int(config[key])
        if config.get("client_session_keep_alive") is not None:
            profile["client_session_keep_alive"] = bool(config["client_session_keep_alive"])
        if method in ("oauth", "externalbrowser"):
            profile["authenticator"] = method
        for key in SECRET_KEYS:
            ref = config.get(key)
            if isinstance(ref, SecretReference):
                profile[key] = ref.as_env_var()
        if config.get("private_key_path") is not None:
            profile["private_key_path"] = key_path(compute, target)
        return profile

    # -- REQ-017: packages ----------------------------------------------------------------------

    def get_required_dbt_packages(self) -> list[str]:
        """dbt, dbt-snowflake and the connector floe validates with (the versions floe tests)."""
        return [
            "dbt-core>=1.11,<1.12",
            "dbt-snowflake>=1.11,<1.13",
            "snowflake-connector-python>=3.12,<5",
        ]

    # -- REQ-014: validation --------------------------------------------------------------------

    def validate_connection(
        self, compute: ComputeConfig, target: ProfileTarget, timeout: float
    ) -> ValidationResult:
        """Log in with the Snowflake connector as dbt would, then use the warehouse and database.

        Steps: check the settings and secrets; log in (account, user, role, credentials); read
        ``current_version()``; ``USE WAREHOUSE``; ``USE DATABASE``; look the schema up (a missing
        schema is fine: dbt creates it). Each step that fails says what to fix.

        The connector's login, socket and network timeouts are set to the time left, its retries
        do not wait, platform detection (cloud metadata probes) and client telemetry are off, and
        the whole check runs under a hard deadline, so a refused port fails at once and a silent
        server within ``timeout``. OCSP stays in the connector's default fail-open mode (it applies
        to https only). ``externalbrowser`` cannot log in unattended: the check asks the account
        for its SSO login URL instead, which proves the account, the network and the SSO setup.
        """

        def check(progress: Progress, seconds: float) -> tuple[str, dict[str, Any]]:
            details = _check(compute, target, seconds, progress)
            return _success_message(compute, details), details

        def no_answer(progress: Progress) -> tuple[str, str]:
            where = endpoint(compute)
            return (
                f"Snowflake at {where} did not answer within {timeout:g} s while {progress['stage']}",
                f"check that {where} is reachable from here (network, firewall, proxy, private "
                "link) and that the warehouse is not queued; then retry",
            )

        return run_check(
            ENGINE,
            compute,
            timeout,
            check,
            no_answer=no_answer,
            fix="check the compute's Snowflake settings against the message",
            translate=self.translate_error,
        )

    # -- REQ-015: resources ---------------------------------------------------------------------

    def get_resource_requirements(self, compute: ComputeConfig) -> dict[str, dict[str, str]]:
        """A small pod: dbt compiles and sends SQL, Snowflake's warehouse does the work.

        Requests ``cpu: 100m, memory: 256Mi``; limits ``cpu: 1, memory: 1Gi`` (see
        :data:`DEFAULT_LIMITS`).
        """
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}

    # -- REQ-013: the Iceberg catalog -----------------------------------------------------------

    def get_catalog_attachment_sql(self, compute: ComputeConfig, catalog: CatalogConfig) -> list[str] | None:
        """``None``: Snowflake reaches an Iceberg catalog through account objects, not session SQL.

        An account administrator creates a ``CATALOG INTEGRATION`` (``CATALOG_SOURCE =
        ICEBERG_REST``) and an ``EXTERNAL VOLUME`` once, with privileges dbt's role does not
        have; tables then name them (dbt-snowflake's ``table_format='iceberg'``,
        ``external_volume``, ``catalog`` configs). Nothing is run per connection.
        """
        return None

    def catalog_access(self, compute: ComputeConfig, catalog: CatalogConfig) -> CatalogAccess:
        """Its own warehouse (see :meth:`get_catalog_attachment_sql`), bridged: floe carries a model
        between the catalog and the compute's database through the connector
        (:mod:`floe.engines.snowflake.bridge`)."""
        return CatalogAccess.bridged(
            "Snowflake reaches an Iceberg catalog through a catalog integration and an external volume an"
            " account administrator creates once; floe attaches nothing per session, so its transforms "
            "build in the compute's database, and floe carries tables in and out through the connector "
            "(Arrow results; Parquet, PUT and COPY INTO)"
        )

    def read_arrow(self, compute: ComputeConfig, relation: Relation) -> pyarrow.Table:
        """The relation's rows as Arrow, through the connector."""
        from floe.engines.snowflake import bridge as snowflake_bridge

        return snowflake_bridge.read_arrow(compute, relation)

    def load_arrow(self, compute: ComputeConfig, relation: Relation, data: pyarrow.RecordBatchReader) -> int:
        """``data`` through Parquet, a temporary stage and ``COPY INTO`` a staging table swapped in."""
        from floe.engines.snowflake import bridge as snowflake_bridge

        return snowflake_bridge.load_arrow(compute, relation, data)

    # -- REQ-018: errors ------------------------------------------------------------------------

    def translate_error(
        self, error: BaseException, compute: ComputeConfig | None
    ) -> PluginExecutionError | None:
        """An actionable error for a Snowflake connector error (also one dbt wrapped), else ``None``.

        Classes are matched by module and name, so nothing is imported. The cause chain is read
        for the network reason (refused, unknown host, timeout, TLS).
        """
        found = _snowflake_error(error)
        if found is None:
            return None
        translated = _translate(found, error, compute)
        if translated is None:
            return None
        return engine_error(ENGINE, compute, translated, cause=first_line(found.text))


plugin = SnowflakeEngine()
"""The instance the ``floe`` entry point ``snowflake = floe.engines.snowflake:plugin`` names."""
