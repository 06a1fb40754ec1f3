"""Keeping secrets out of floe's files, messages and logs.

Credentials enter manifests only as ``{secret_ref: NAME}``; a literal value under a key that names a
credential is rejected. Values read from the environment at run time are scrubbed from anything
floe prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from floe.model import SecretReference

_CREDENTIAL_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|private[_-]?key|api[_-]?key|access[_-]?key"
    r"|credentials?|keyfile|client[_-]?secret|auth[_-]?code|sas|pat)$",
    re.IGNORECASE,
)
_NOT_CREDENTIAL = re.compile(r"(_path|_file|_env|_ref|_type|_method|_id|_uri|_url)$", re.IGNORECASE)
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A name every shell and every SQL dialect takes as it is: secret (environment variable) names, and
names an engine's own SQL writes unquoted. Use ``fullmatch``."""


def is_credential_key(key: str) -> bool:
    """Whether a config key names a credential (password, token, private key, client secret…)."""
    return bool(_CREDENTIAL_KEY.search(key)) and not _NOT_CREDENTIAL.search(key)


def secret_values(refs: Iterable[SecretReference], environ: Mapping[str, str] | None = None) -> list[str]:
    """The current values of the referenced secrets that are set (to scrub them from output)."""
    env = os.environ if environ is None else environ
    return [env[r.name] for r in refs if env.get(r.name)]


def find_secret_refs(value: Any) -> list[SecretReference]:
    """Every :class:`SecretReference` inside a nested config value."""
    found: list[SecretReference] = []
    if isinstance(value, SecretReference):
        found.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(find_secret_refs(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(find_secret_refs(item))
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value (of 4+ characters) replaced by ``***``."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
