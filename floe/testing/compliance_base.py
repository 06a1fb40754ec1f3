"""What every behaviour class of the compliance suite shares (REQ-020).

:class:`EngineTestBase` holds the fixtures an engine's author provides (the engine's name and what
it can do), the fixtures of the suite itself, and :func:`call_hook`: the suite calls an engine's own
hooks, not floe's :class:`~floe.plugins.Engine` wrapper around them, wherever a check is about the
engine — the wrapper adds a deadline, error translation, redaction and the manifest's resource
overrides, and would make a broken engine look compliant.

The suite needs floe and pytest only (plus the engine's own dbt adapter): nothing here imports an
optional integration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.errors import FloeError, PluginExecutionError
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, ValidationResult
from floe.plugins import Engine, EngineRegistry

_ENV_VAR = re.compile(r"\{\{\s*env_var\(\s*'([^']+)'\s*\)\s*\}\}")
SILENT_TIMEOUT = 3.0
"""Seconds given to ``validate_connection`` against a peer that never answers."""
VALIDATION_TIMEOUT = 10.0
"""Seconds given to ``validate_connection`` against a live peer (REQ-014's limit)."""
GRACE = 2.0
"""Seconds past its ``timeout`` the suite waits for an engine's own ``validate_connection`` before
calling it hung: room for a thread to be scheduled on a loaded machine, not for the engine."""


@attrs.frozen
class Endpoint:
    """A live peer: settings that reach it, and the environment its secret references read.

    ``dbt_debug=False`` declares that dbt cannot run against this peer (an emulator that answers the
    engine's client but not its dbt adapter): neither ``dbt debug`` nor a transform in ``floe run``
    is checked then, and the suite says so in its report (as skipped, with this reason).
    """

    config: Mapping[str, Any]
    environ: Mapping[str, str] = attrs.field(factory=dict)
    dbt_debug: bool = True


def render_env_vars(value: Any, environ: Mapping[str, str]) -> Any:
    """A profile with ``{{ env_var('X') }}`` replaced by values, as dbt renders it."""
    if isinstance(value, str):
        return _ENV_VAR.sub(lambda m: environ.get(m.group(1), ""), value)
    if isinstance(value, Mapping):
        return {k: render_env_vars(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [render_env_vars(v, environ) for v in value]
    return value


def call_hook(engine: Engine, hook: str, **kwargs: Any) -> Any:
    """The engine's own implementation of ``hook``, called with ``kwargs``: no deadline, no
    translation, no redaction, no merging — what the engine itself does."""
    return engine._hooks[hook](**kwargs)


def validate_directly(
    engine: Engine, compute: ComputeConfig, target: ProfileTarget, timeout: float
) -> ValidationResult:
    """The engine's own ``floe_validate_connection``, which must return within ``timeout``.

    A :class:`~floe.errors.FloeError` it raises (or an exception its own ``floe_translate_error``
    turns into one) counts as a failed result with that error's text: floe reports both so. A hook
    still running ``GRACE`` seconds after its ``timeout``, an exception nobody translated, or
    anything but a :class:`~floe.model.ValidationResult` fails the test.
    """

    def check() -> Any:
        return call_hook(engine, "floe_validate_connection", compute=compute, target=target, timeout=timeout)

    try:
        outcome = call_with_deadline(check, timeout + GRACE)
    except DeadlineExceeded:
        pytest.fail(
            f"the engine's own validate_connection did not return within its timeout of {timeout:g} s "
            f"(waited {GRACE:g} s more): bound every wait of the check (connect, read, login) by "
            "`timeout`; floe's outer deadline hides this from users but leaves a thread blocked"
        )
    except FloeError as exc:
        return ValidationResult(False, exc.render(), {})
    except Exception as exc:  # noqa: BLE001 - judged below: translated by the engine, or a failure
        translated = call_hook(engine, "floe_translate_error", error=exc, compute=compute)
        if not isinstance(translated, PluginExecutionError):
            pytest.fail(
                f"validate_connection raised {type(exc).__name__}: {exc}; return "
                "ValidationResult(False, <what to fix>) or raise a floe error instead"
            )
        return ValidationResult(False, translated.render(), {})
    if not isinstance(outcome, ValidationResult):
        pytest.fail(
            f"validate_connection returned {type(outcome).__name__}, not a floe.model.ValidationResult"
        )
    return outcome


def engine_output(engine: Engine, hook: str, compute: ComputeConfig | None, **kwargs: Any) -> tuple[Any, str]:
    """The value the engine's own ``hook`` returns and its text, or ``None`` and the text a user
    would read of what it raised (the engine's own translation of it, when it has one)."""
    if compute is not None:
        kwargs["compute"] = compute
    try:
        value = call_hook(engine, hook, **kwargs)
    except FloeError as exc:
        return None, exc.render()
    except Exception as exc:  # noqa: BLE001 - the text of the error is what is checked
        translated = call_hook(engine, "floe_translate_error", error=exc, compute=compute)
        if isinstance(translated, FloeError):
            return None, translated.render()
        return None, f"{type(exc).__name__}: {exc}"
    return value, repr(value)


def assert_actionable(message: str) -> None:
    """A message a user can act on: not empty, no stack trace, not a dump."""
    assert message.strip(), "an empty message is not actionable"
    assert "Traceback" not in message and 'File "' not in message, f"a stack trace leaked: {message[:300]}"
    assert len(message) < 2000, "a message this long is a dump, not advice"


class EngineTestBase:
    """The fixtures every behaviour class of the suite uses; subclass a behaviour class, not this."""

    # -- fixtures a plugin author provides ------------------------------------------------------

    @pytest.fixture
    def engine_name(self) -> str:
        pytest.fail(
            "BaseComputePluginTests needs the engine's name: add to your test class\n"
            "    @pytest.fixture\n    def engine_name(self) -> str:\n        return 'myengine'\n"
            "(the name your plugin registers under the entry-point group `floe`)"
        )

    @pytest.fixture
    def compute_settings(self) -> dict[str, Any]:
        """A valid ``config`` for the engine; no server needs to answer it."""
        return {}

    @pytest.fixture
    def engine_endpoint(self) -> Endpoint:
        """A live (or emulated) peer the engine reaches: ``dbt debug`` and a successful check."""
        pytest.fail(
            "the compliance suite needs a live peer of your engine to run `dbt debug` and a "
            "successful validate_connection against (REQ-012, REQ-014): add an `engine_endpoint` "
            "fixture returning floe.testing.Endpoint(config=<settings that reach it>, "
            "environ=<the secrets they reference>); an emulator or a local database will do"
        )

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]] | None:
        """``(host, port) -> config`` reaching a server there: for engines reached over a network."""
        return None

    @pytest.fixture
    def local_settings(self) -> Callable[[Path], dict[str, Any]] | None:
        """``path -> config`` opening a database at that path: declares that the engine has no
        network endpoint (as DuckDB), a claim the suite then checks with paths that cannot work."""
        return None

    @pytest.fixture
    def catalog(self) -> CatalogConfig:
        """The Iceberg catalog to attach to (one ``sql_executor`` can reach, if the engine attaches
        by SQL)."""
        return CatalogConfig(type="rest", name="lake", uri="http://127.0.0.1:9/catalog", warehouse="wh")

    @pytest.fixture
    def sql_executor(self) -> Callable[[list[str], ComputeConfig], None] | None:
        """How to run SQL statements on the engine, for engines that attach the catalog by SQL."""
        return None

    @pytest.fixture
    def attaches_catalog_by_sql(
        self, sql_executor: Callable[[list[str], ComputeConfig], None] | None
    ) -> bool | None:
        """Whether ``get_catalog_attachment_sql`` returns statements (``True``, implied by a
        ``sql_executor``) or ``None`` because the engine reaches the catalog another way
        (``False``: server configuration, session settings); ``None`` is undeclared."""
        return True if sql_executor is not None else None

    @pytest.fixture
    def client_error(self) -> BaseException:
        pytest.fail(
            "BaseComputePluginTests needs a real exception from your engine's client to check "
            "error translation (REQ-018): add a `client_error` fixture that provokes one, e.g. by "
            "running invalid SQL or connecting to a refused port, and returns it"
        )

    # -- fixtures of the suite ------------------------------------------------------------------

    @pytest.fixture
    def engine(self, engine_name: str) -> Engine:
        registry = EngineRegistry.discover()
        mine = [p for p in registry.problems if p.plugin == engine_name]
        assert not mine, "the engine plugin did not load: " + "; ".join(p.render() for p in mine)
        found = registry.get(engine_name)
        assert found is not None, (
            f"no engine {engine_name!r} is installed (installed: {', '.join(registry.names())}); "
            "register it under the entry-point group `floe` and install the distribution"
        )
        return found

    @pytest.fixture
    def target(self, tmp_path: Path) -> ProfileTarget:
        project = tmp_path / "product"
        project.mkdir()
        return ProfileTarget("dev", "compliance", project, project / ".floe")

    @pytest.fixture
    def compute(self, engine_name: str, compute_settings: dict[str, Any]) -> ComputeConfig:
        return ComputeConfig("compliance", engine_name, dict(compute_settings))

    @pytest.fixture
    def endpoint_env(self, engine_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        for key, value in engine_endpoint.environ.items():
            monkeypatch.setenv(key, value)
        yield
