"""cattrs structuring of validated manifest data into floe's frozen attrs classes, and back.

One converter, one pair of hooks for :class:`~floe.model.SecretReference` (``{secret_ref: NAME}``
in a file, a reference in floe). Engine settings are typed by their engine's schema, not by an
attrs class, so :func:`structure_settings` applies the same hook to every ``{secret_ref: NAME}``
inside them, at any depth; :func:`unstructure_secrets` is the converter's way back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs

from floe.model import SecretReference

converter = cattrs.Converter(forbid_extra_keys=True)


def _secret(value: Any, _type: type) -> SecretReference:
    if isinstance(value, SecretReference):
        return value
    if isinstance(value, dict) and set(value) == {"secret_ref"}:
        return SecretReference(str(value["secret_ref"]))
    raise ValueError(f"expected {{secret_ref: NAME}}, found {value!r}")


converter.register_structure_hook(SecretReference, _secret)
converter.register_unstructure_hook(SecretReference, lambda ref: {"secret_ref": ref.name})


def structure_secrets(value: Any) -> Any:
    """``value`` with every ``{secret_ref: NAME}`` mapping inside it a :class:`SecretReference`."""
    if isinstance(value, Mapping):
        if set(value) == {"secret_ref"}:
            return converter.structure(dict(value), SecretReference)
        return {k: structure_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [structure_secrets(v) for v in value]
    return value


def structure_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """An engine's settings as floe hands them to the engine: :func:`structure_secrets` of each
    setting, the settings themselves staying a mapping (even one that reads ``{secret_ref: X}``)."""
    return {key: structure_secrets(value) for key, value in settings.items()}


def unstructure_secrets(value: Any) -> Any:
    """The inverse of :func:`structure_secrets` (references become ``{secret_ref: NAME}``), for
    JSON output and schema validation."""
    return converter.unstructure(value)
