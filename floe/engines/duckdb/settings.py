"""What a DuckDB compute's settings mean: the database file, the offline extension setup, the
profile's ``settings`` and the extension files in their wheels.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from floe.enginekit import (
    PLAIN_NAME,
    ComputeConfig,
    PluginExecutionError,
    ProfileTarget,
    is_credential_key,
    quote_identifier,
    quote_literal,
    secret_reference,
)

ENGINE = "duckdb"
EXTENSIONS_DIR = "duckdb_extensions"
"""Directory under the state directory that DuckDB installs the wheels' extension files into."""
DEFAULT_SCHEMA = "main"
DEFAULT_THREADS = 4
REQUIRED_EXTENSIONS = {"iceberg": ("avro",)}
"""Extensions that another extension needs loaded before it (DuckDB would try to download them)."""

DEFAULT_REQUESTS = {"cpu": "1", "memory": "2Gi"}
DEFAULT_LIMITS = {"cpu": "2", "memory": "4Gi"}
MEMORY_HEADROOM_GI = 1
"""GiB a pod needs besides DuckDB's ``memory_limit``: Python, dbt, and DuckDB's own overhead."""

_MOTHERDUCK_PREFIXES = ("md:", "motherduck:")
_EXTENSION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""What a settings key must be: dbt-duckdb writes the key into ``SET <key> = …`` without quotes."""
_DUCKDB_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_GI = 2**30


# -- profile pieces, shared by the profile and the validation ------------------------------------


def database_path(compute: ComputeConfig, target: ProfileTarget) -> str:
    """The database: ``path`` against the project directory, or ``<state>/<env>/<compute>.duckdb``.

    ``:memory:`` and MotherDuck paths (``md:…``) are kept as they are.
    """
    configured = compute.config.get("path")
    if configured is None:
        state = _absolute(target.state_dir, target.project_dir)
        return os.path.abspath(state / target.environment / f"{compute.name}.duckdb")
    text = str(configured)
    if text == ":memory:" or _is_motherduck(text):
        return text
    return os.path.abspath(_absolute(Path(text).expanduser(), target.project_dir))


def connect_config(compute: ComputeConfig, target: ProfileTarget) -> dict[str, Any]:
    """Options for ``duckdb.connect``: the offline extension setup, and ``access_mode``.

    They must be connect-time options: dbt-duckdb installs the extensions right after connecting,
    before it applies ``settings``.
    """
    config: dict[str, Any] = {
        "extension_directory": extension_directory(target),
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if compute.config.get("read_only"):
        config["access_mode"] = "READ_ONLY"
    return config


KEYWORDS_NOT_NAMES = frozenset(
    """
    all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create default deferrable desc describe distinct do else end except false fetch for foreign from
    group having in initially intersect into lambda lateral leading limit not null offset on only or
    order pivot pivot_longer pivot_wider placing primary qualify references returning select show some
    summarize symmetric table then to trailing true union unique unpivot using variadic when where
    window with
    anti asof at authorization binary by collation concurrently cross freeze full glob ilike inner is
    isnull join left like natural notnull outer overlaps positional right semi similar tablesample
    unpack verbose
""".split()
)
"""DuckDB keywords (its reserved and type/function-name keywords) that cannot stand unquoted
where DuckDB expects a name: dbt-duckdb writes a profile's ``settings`` keys (``SET <key> = …``)
and its ``attach`` aliases (``ATTACH … AS <alias>``) unquoted, so such a name fails every run with
a parser error. No DuckDB setting has such a name; tests/test_engine_duckdb.py derives the set
from the installed DuckDB, for both statements."""


def unquoted_name(name: str) -> bool:
    """Whether DuckDB reads ``name`` as one name where dbt-duckdb writes it unquoted (a settings key,
    an attached catalog's alias): letters, digits and underscores, and no keyword of :data:`KEYWORDS_NOT_NAMES`."""
    return bool(PLAIN_NAME.fullmatch(name)) and name.lower() not in KEYWORDS_NOT_NAMES


def cursor_settings(
    compute: ComputeConfig, target: ProfileTarget, path: str, operation: str
) -> dict[str, Any]:
    """The profile's ``settings``: user settings, ``memory_limit``, ``threads``, the offline setup.

    The offline setup is repeated here (after the user's settings, so they cannot undo it) because
    dbt-duckdb SETs these on every cursor.
    """
    config = compute.config
    user: Mapping[str, Any] = config.get("settings") or {}
    for key in user:
        if not unquoted_name(str(key)):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"settings key {str(key)!r} is not a DuckDB setting name"
                + (
                    " (dbt-duckdb sends `SET <key> = …` unquoted, and DuckDB's parser takes this "
                    "word for SQL)"
                    if PLAIN_NAME.fullmatch(str(key))
                    else ""
                ),
                "use the setting's name as SELECT name FROM duckdb_settings() lists it: letters, "
                "digits and underscores, such as preserve_insertion_order",
                compute=compute.name,
            )
        if is_credential_key(str(key)):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"settings.{key} looks like a credential and would be written into the profile",
                "remove it; a MotherDuck token goes in motherduck_token: {secret_ref: NAME}",
                compute=compute.name,
            )
    settings: dict[str, Any] = dict(user)
    if config.get("memory_limit") is not None:
        settings["memory_limit"] = str(config["memory_limit"])
    if config.get("duckdb_threads") is not None:
        settings["threads"] = int(config["duckdb_threads"])
    settings.update(connect_config(compute, target))
    settings.pop("access_mode", None)  # connect-time only: DuckDB refuses to SET it
    token = secret_reference(ENGINE, compute, "motherduck_token", operation, example="MOTHERDUCK_TOKEN")
    if token is not None:
        if not _is_motherduck(path):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"motherduck_token is set but the database {path} is not a MotherDuck database",
                "set path to md:<database> to use MotherDuck, or remove motherduck_token "
                "(DuckDB refuses the setting without the MotherDuck extension)",
                compute=compute.name,
            )
        settings["motherduck_token"] = token.as_env_var()
    for key, value in settings.items():
        _quoted(quote_literal, str(value), f"settings.{key}", compute, operation)
    return settings


def set_statement(key: str, value: Any) -> str:
    """``SET "key" = 'value'``: how floe applies one of :func:`cursor_settings` to a connection."""
    return f"SET {quote_identifier(key)} = {quote_literal(str(value))}"


def extension_directory(target: ProfileTarget) -> str:
    """Where DuckDB installs the extension files: ``<state>/duckdb_extensions``."""
    return os.path.abspath(_absolute(target.state_dir, target.project_dir) / EXTENSIONS_DIR)


def ordered_extensions(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, each preceded by the extensions it needs (avro before iceberg)."""
    ordered: list[str] = []
    for name in names:
        for needed in (*REQUIRED_EXTENSIONS.get(name, ()), name):
            if needed not in ordered:
                ordered.append(needed)
    return ordered


def extension_files(
    names: Iterable[str], compute: ComputeConfig | None = None, operation: str = "load extensions"
) -> list[Path]:
    """The extension files of ``names`` (with what they need) in their wheels, in load order.

    Extension ``X`` is the file
    ``<package duckdb_extension_X>/extensions/v<duckdb version>/X.duckdb_extension``;
    the package is located without importing it, and DuckDB's version is read from its metadata.

    :raises PluginExecutionError: a wheel is missing or built for another DuckDB version; the fix
        names the ``pip install`` command.
    """
    ordered = ordered_extensions(names)
    if not ordered:
        return []
    compute_name = compute.name if compute is not None else None
    version = _duckdb_version(compute_name, operation)
    files: list[Path] = []
    for name in ordered:
        if not _EXTENSION_NAME.match(name):
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"{name!r} is not a DuckDB extension name",
                "use lower-case extension names such as iceberg or httpfs",
                compute=compute_name,
            )
        install = f"pip install duckdb-extension-{name.replace('_', '-')}=={version}"
        spec = importlib.util.find_spec(f"duckdb_extension_{name}")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the DuckDB extension {name!r} is not installed (no Python package duckdb_extension_{name})",
                install,
                compute=compute_name,
            )
        wheel_dir = Path(locations[0]) / "extensions"
        file = wheel_dir / f"v{version}" / f"{name}.duckdb_extension"
        if not file.is_file():
            built_for = sorted(p.name for p in wheel_dir.glob("v*")) if wheel_dir.is_dir() else []
            raise PluginExecutionError(
                ENGINE,
                operation,
                f"the installed wheel of the DuckDB extension {name!r} has no build for DuckDB "
                f"{version} (it has: {', '.join(built_for) or 'nothing'})",
                install,
                compute=compute_name,
            )
        files.append(file)
    return files


# -- helpers ---------------------------------------------------------------------------------------


def _requested(compute: ComputeConfig) -> list[str]:
    return [str(n) for n in compute.config.get("extensions") or []]


def _absolute(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _is_motherduck(path: str) -> bool:
    return path.lower().startswith(_MOTHERDUCK_PREFIXES)


def _gi(quantity: str) -> int:
    return int(quantity.removesuffix("Gi"))


def _duckdb_version(compute: str | None, operation: str) -> str:
    from importlib import metadata

    try:
        return metadata.version("duckdb")
    except metadata.PackageNotFoundError:
        raise PluginExecutionError(
            ENGINE,
            operation,
            "DuckDB is not installed",
            "pip install 'duckdb>=1.5.5,<1.6' dbt-duckdb",
            compute=compute,
        ) from None


def _extension_name(file: Path) -> str:
    return file.name.removesuffix(".duckdb_extension")


def _quoted(
    quote: Callable[[str], str], value: str, what: str, compute: ComputeConfig, operation: str
) -> str:
    """``quote(value)``, or a floe error naming ``what`` when no SQL text can hold the value."""
    try:
        return quote(value)
    except ValueError as exc:
        raise PluginExecutionError(
            ENGINE,
            operation,
            f"{what} cannot be written into SQL: {exc}",
            f"remove the character from {what}",
            compute=compute.name,
        ) from None


def _file_kind(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a FIFO", "a directory"…)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"
