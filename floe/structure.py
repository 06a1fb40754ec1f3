"""cattrs structuring of validated manifest data into floe's frozen attrs classes."""

from __future__ import annotations

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
