"""The engine kit (:mod:`floe.enginekit`): the helpers every engine shares, once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from floe.enginekit import (
    ComputeConfig,
    PluginExecutionError,
    SecretReference,
    exception_chain,
    secret_placeholder,
    secret_reference,
    secret_value,
    translate_client_error,
)


def test_the_cause_chain_is_walked_once_each_even_in_a_loop() -> None:
    inner = KeyError("inner")
    middle = ValueError("middle")
    outer = RuntimeError("outer")
    middle.__context__ = inner
    outer.__cause__ = middle
    inner.__context__ = outer  # a loop, as a re-raise inside an except block can make
    assert [str(e) for e in exception_chain(outer)] == ["outer", "middle", "'inner'"]
    long = RuntimeError("0")
    current = long
    for i in range(1, 200):
        current.__cause__ = RuntimeError(str(i))
        current = current.__cause__
    assert len(list(exception_chain(long, limit=10))) == 10


def test_secret_references_are_checked_where_they_are_used() -> None:
    compute = ComputeConfig(
        "wh",
        "acme",
        {
            "password": SecretReference("ACME_PASSWORD"),
            "token": "literal",
            "key": SecretReference("not a name"),
        },
    )
    assert secret_reference("acme", compute, "password", "connect") == SecretReference("ACME_PASSWORD")
    assert secret_reference("acme", compute, "missing", "connect") is None
    with pytest.raises(
        PluginExecutionError,
        match=r"compute 'wh' \(engine acme\): connect failed: token must be a secret reference",
    ):
        secret_reference("acme", compute, "token", "connect")
    with pytest.raises(PluginExecutionError, match="missing is required and not set"):
        secret_reference("acme", compute, "missing", "connect", required=True)
    with pytest.raises(
        PluginExecutionError, match=r"'not a name' is not an environment variable name"
    ) as caught:
        secret_reference("acme", compute, "key", "connect", example="ACME_KEY")
    assert "such as ACME_KEY" in caught.value.render()
    assert (
        secret_placeholder("acme", compute.config["password"], compute, "profile")
        == "{{ env_var('ACME_PASSWORD') }}"
    )


def test_a_secret_value_comes_from_the_environment_and_an_unset_one_is_named_never_shown() -> None:
    compute = ComputeConfig("wh", "acme", {})
    ref = SecretReference("ACME_PASSWORD")
    assert secret_value("acme", ref, compute, "connect", environ={"ACME_PASSWORD": "hunter2"}) == "hunter2"
    with pytest.raises(PluginExecutionError) as caught:
        secret_value("acme", ref, compute, "connect", what="password", environ={"ACME_PASSWORD": ""})
    text = caught.value.render()
    assert "the secret environment variable ACME_PASSWORD (password) is not set" in text
    assert "fix: set ACME_PASSWORD in the environment floe and dbt run in" in text


def test_a_translated_client_error_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_PASSWORD", "s3cr3t-value")
    compute = ComputeConfig("wh", "acme", {"password": SecretReference("ACME_PASSWORD")})

    class ClientError(Exception):
        pass

    def find(error: BaseException) -> tuple[list[str], str] | None:
        found = next((e for e in exception_chain(error) if isinstance(e, ClientError)), None)
        return None if found is None else ([type(found).__name__], str(found))

    def advise(classes: list[str], text: str, compute: ComputeConfig | None) -> tuple[str, str, str] | None:
        assert "s3cr3t-value" not in text  # redacted before the engine reads it
        return ("log in", f"refused: {text}", "check the password") if "refused" in text else None

    wrapped = RuntimeError("dbt: database error")
    wrapped.__cause__ = ClientError("login refused for s3cr3t-value\nat line 2")
    translated = translate_client_error("acme", wrapped, compute, find, advise)
    assert translated is not None
    assert "s3cr3t-value" not in translated.render() and "***" in translated.render()
    assert translated.cause == "login refused for ***" and translated.operation == "log in"
    assert translate_client_error("acme", RuntimeError("other"), compute, find, advise) is None
    assert translate_client_error("acme", ClientError("unknown"), compute, find, advise) is None


def test_importing_the_kit_imports_no_dbt_driver_or_schema_library() -> None:
    code = (
        "import sys, floe.enginekit; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dbt', 'duckdb', 'pyspark', 'psycopg2', 'jsonschema', 'pyiceberg', 'snowflake')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_engines_call_each_shared_idea_by_one_name() -> None:
    """The pod's default requests and limits, the install command of the engine's packages, and
    the checked settings are named alike in every engine, so that a reader of one reads them all."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    constants = {"REQUESTS": "DEFAULT_REQUESTS", "LIMITS": "DEFAULT_LIMITS", "INSTALL": "PIP_INSTALL"}
    drifted = []
    for path in sorted(
        [
            *(root / "floe" / "engines").rglob("*.py"),
            *(root / "examples/floe-engine-postgres/floe_engine_postgres").glob("*.py"),
        ]
    ):
        where = path.relative_to(root)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                for name in (t.id for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()):
                    idea = next((k for k in constants if name.endswith(k)), None)
                    if idea is not None and name != constants[idea]:
                        drifted.append(f"{where}: {name} (call it {constants[idea]})")
            elif (
                isinstance(node, ast.ClassDef) and node.name.endswith("Settings") and node.name != "Settings"
            ):
                drifted.append(f"{where}: class {node.name} (call it Settings)")
            elif (
                isinstance(node, ast.FunctionDef)
                and isinstance(node.returns, ast.Name)
                and node.returns.id == "Settings"
                and node.name != "checked_settings"
            ):
                drifted.append(f"{where}: {node.name}() (call it checked_settings)")
    assert drifted == []
