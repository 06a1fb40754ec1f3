"""Compliance: credentials are secret references, and their values never reach any output (REQ-012,
REQ-014).

A credential-like setting (a key :func:`floe.secrets.is_credential_key` recognises: password, token,
private key, client secret…) must be a secret reference in the engine's config schema, so that a
manifest cannot hold its value. Then a canary value behind each secret setting is searched for in
everything the engine's own hooks return or raise.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin

import attrs
import pytest

from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.model import CatalogConfig, ComputeConfig, ProfileTarget, SecretReference
from floe.plugins import Engine
from floe.schemas import SchemaStore
from floe.secrets import is_credential_key
from floe.testing.compliance_base import GRACE, SILENT_TIMEOUT, EngineTestBase, engine_output

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

LITERAL = "floe-compliance-literal-value"
"""A value no secret reference can be: a schema that accepts it for a credential lets a manifest
hold a password in plain text."""
REFERENCE = {"secret_ref": "FLOE_COMPLIANCE_SECRET"}
"""A secret reference as a manifest writes it."""


def secret_keys(schema: Mapping[str, Any]) -> list[str]:
    """Top-level config keys whose schema is (or admits) a secret reference."""
    keys = []
    for key, sub in (schema.get("properties") or {}).items():
        text = json.dumps(sub)
        if "secretRef" in text or "secret_ref" in text:
            keys.append(key)
    return keys


def config_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator of an engine's config ``schema`` as floe validates manifests with it:
    draft 2020-12, with floe's shared definitions (``definitions.schema.json#/$defs/secretRef``…)
    resolvable. For an engine's own tests of its schema; the suite checks the rest."""
    store = SchemaStore()
    return store.validator(store.add(dict(schema)))


@attrs.frozen
class Setting:
    """A setting the schema declares: its path in ``config`` and where its schema is (a URI)."""

    path: tuple[str, ...]
    location: str

    @property
    def label(self) -> str:
        return ".".join(self.path)


def declared_settings(store: SchemaStore, uri: str) -> Iterator[Setting]:
    """Every property the schema at ``uri`` declares, nested ones too, through ``$ref``, ``allOf``,
    ``anyOf``, ``oneOf`` and ``if``/``then``/``else``."""
    seen: set[str] = set()

    def walk(schema: Any, location: str, base: str, path: tuple[str, ...]) -> Iterator[Setting]:
        if not isinstance(schema, Mapping) or location in seen:
            return
        seen.add(location)
        if isinstance(schema.get("$ref"), str):
            target = urljoin(base, schema["$ref"])
            resolved, target_base = store.resolve(schema["$ref"], base)
            yield from walk(resolved, target if "#" in target else target + "#", target_base, path)
        for keyword in ("allOf", "anyOf", "oneOf"):
            for i, branch in enumerate(schema.get(keyword) or ()):
                yield from walk(branch, f"{location}/{keyword}/{i}", base, path)
        for keyword in ("then", "else"):
            yield from walk(schema.get(keyword), f"{location}/{keyword}", base, path)
        for key, sub in (schema.get("properties") or {}).items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            here = f"{location}/properties/{escaped}"
            yield Setting((*path, str(key)), here)
            yield from walk(sub, here, base, (*path, str(key)))

    document, _ = urldefrag(uri)
    yield from walk(store.get(uri), document + "#", document, ())


def accepts(store: SchemaStore, location: str, value: Any) -> bool:
    """Whether the schema at ``location`` accepts ``value``."""
    probe = store.add({"$ref": location}, f"urn:floe:compliance:probe:{location}")
    return not any(True for _ in store.validator(probe).iter_errors(value))


class SecretTests(EngineTestBase):
    """Secrets enter an engine only by reference and leave it only as ``env_var`` placeholders."""

    def test_credential_settings_are_secret_references_in_the_schema(self, engine: Engine) -> None:
        """Engine side: the engine's config schema refuses a literal value for each credential-like
        setting it declares and accepts a secret reference (``{secret_ref: NAME}``) there. (REQ-012)"""
        store = SchemaStore()
        uri = engine.schema_uri(store)
        checked = []
        for setting in declared_settings(store, uri):
            if not is_credential_key(setting.path[-1]) or setting.label in checked:
                continue
            checked.append(setting.label)
            assert not accepts(store, setting.location, LITERAL), (
                f"the config schema accepts a literal value for the credential {setting.label!r}: declare it "
                '{"$ref": "https://floe.dev/schemas/v1/definitions.schema.json#/$defs/secretRef"} so that '
                "manifests hold only a reference ({secret_ref: NAME}) and never the secret itself"
            )
            assert accepts(store, setting.location, REFERENCE), (
                f"the config schema refuses a secret reference for the credential {setting.label!r}"
            )

    def test_secret_values_never_appear_in_any_output(
        self,
        engine: Engine,
        compute: ComputeConfig,
        target: ProfileTarget,
        catalog: CatalogConfig,
        address_settings: Callable[[str, int], dict[str, Any]] | None,
        refused_address: tuple[str, int],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Engine side: with a canary behind each secret setting, what the engine's own hooks return
        or raise (profile, check result, attachment SQL, their errors as the engine translates
        them) never holds it, and the profile references it as ``{{ env_var('NAME') }}``. floe's
        own redaction is not involved. (REQ-012, REQ-014)"""
        schema = engine.config_schema()
        keys = secret_keys(schema)
        keys += [k for k in (schema.get("properties") or {}) if is_credential_key(k) and k not in keys]
        base = dict(compute.config)
        if address_settings is not None:
            base.update(address_settings(*refused_address))
        for key in keys:
            variable = f"FLOE_CANARY_{key.upper()}"
            canary = "canary-" + secrets.token_hex(8)
            monkeypatch.setenv(variable, canary)
            secret_compute = attrs.evolve(compute, config={**base, key: SecretReference(variable)})
            profile, profile_text = engine_output(
                engine, "floe_generate_dbt_profile", secret_compute, target=target
            )
            outputs = [json.dumps(profile, default=str) if profile is not None else profile_text]
            try:  # a hung check is the connection tests' finding; here only its output counts
                result, result_text = call_with_deadline(
                    functools.partial(
                        engine_output,
                        engine,
                        "floe_validate_connection",
                        secret_compute,
                        target=target,
                        timeout=SILENT_TIMEOUT,
                    ),
                    SILENT_TIMEOUT + GRACE,
                )
            except DeadlineExceeded:
                result, result_text = None, ""
            outputs.append(result_text)
            if result is not None:
                outputs += [
                    str(getattr(result, "message", "")),
                    json.dumps(dict(getattr(result, "details", {}) or {}), default=str),
                ]
            outputs.append(
                engine_output(engine, "floe_get_catalog_attachment_sql", secret_compute, catalog=catalog)[1]
            )
            outputs.append(repr(secret_compute))
            leaked = [o for o in outputs if canary in o]
            assert not leaked, f"the value of secret {key!r} leaked: {leaked[0][:200]}"
            if profile is not None:
                assert f"env_var('{variable}')" in outputs[0], (
                    f"the profile does not reference secret {key!r} as {{{{ env_var('{variable}') }}}}: {outputs[0][:300]}"
                )
