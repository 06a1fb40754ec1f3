"""Keeping secrets out of floe's files, messages and logs.

Credentials enter manifests only as ``{secret_ref: NAME}``: a literal value under a key that names a
credential is refused, and so is Jinja in a setting (:func:`setting_refusals`). Values read from the
environment at run time are scrubbed from anything floe prints.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

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


# -- the rules for settings as a manifest writes them ------------------------------------------------


class Refusal(NamedTuple):
    """A setting refused as written: where (below the settings), why, what is expected, the fix."""

    path: tuple[str | int, ...]
    message: str
    expected: str
    fix: str


JINJA_DELIMITERS = ("{{", "{%", "{#")


def setting_refusals(settings: Any) -> list[Refusal]:
    """What the rules for an engine's settings as written refuse: a literal credential (credentials
    are secret references), then Jinja (dbt would render it)."""
    refused: list[Refusal] = []
    _literal_credentials(settings, (), refused)
    _jinja(settings, (), refused)
    return refused


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secret_ref"}


def _literal_credentials(value: Any, path: tuple[str | int, ...], refused: list[Refusal]) -> None:
    """A literal value under a credential key is refused: credentials are secret references."""
    if isinstance(value, dict):
        if _is_reference(value):
            return
        for key, item in value.items():
            if is_credential_key(str(key)) and not _is_reference(item):
                refused.append(
                    Refusal(
                        path + (key,),
                        f"{key!r} holds a literal credential",
                        "a secret reference: {secret_ref: NAME}",
                        f"write `{key}: {{secret_ref: NAME}}` and set NAME in the "
                        "environment (or your secret store); never commit the value",
                    )
                )
            else:
                _literal_credentials(item, path + (key,), refused)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _literal_credentials(item, path + (i,), refused)


def _jinja(value: Any, path: tuple[str | int, ...], refused: list[Refusal]) -> None:
    """A setting holding Jinja's delimiters is refused: dbt renders every string of profiles.yml
    as a Jinja template, so ``{{ … }}`` there would run at dbt's start instead of reaching the
    engine as written (floe writes settings literally; secrets are references it renders itself)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_reference(value):
                _refuse_jinja(path + (key,), str(key), "key", refused)
            _jinja(item, path + (key,), refused)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _jinja(item, path + (i,), refused)
    elif isinstance(value, str):
        _refuse_jinja(path, value, "value", refused)


def _refuse_jinja(path: tuple[str | int, ...], text: str, what: str, refused: list[Refusal]) -> None:
    found = next((d for d in JINJA_DELIMITERS if d in text), None)
    if found is not None:
        refused.append(
            Refusal(
                path,
                f"this {what} contains {found!r}, which dbt would render as Jinja",
                "text without Jinja's delimiters ({{, {%, {#)",
                "write the setting literally; a secret is {secret_ref: NAME}, which floe "
                "turns into dbt's env_var itself",
            )
        )


# -- values at run time ---------------------------------------------------------------------------------


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


def redact(text: str, secrets: Iterable[str], keep: Iterable[str] = ()) -> str:
    """``text`` with every secret value (of 4+ characters) replaced by ``***``, except inside floe's
    own names.

    A short secret may be part of a name floe prints: the password ``snow`` inside the engine
    ``snowflake``. An occurrence that lies wholly inside one of ``keep`` (a compute's name, its
    engine, its settings' keys: see :func:`floe_names`) or an installed engine's name is left
    alone; every other occurrence, also one that runs into or out of such a name or lies inside a
    setting's value, is replaced. A name that *is* a secret protects nothing.
    """
    values = {s for s in secrets if len(s) >= 4}
    if not values:
        return text
    names = {n for n in (*keep, *_engine_names()) if n and n not in values and len(n) > 4}
    protected = [False] * len(text)
    for name in names:
        for start in _occurrences(text, name):
            protected[start : start + len(name)] = [True] * len(name)
    hidden = [False] * len(text)
    for secret in values:
        for start in _occurrences(text, secret):
            end = start + len(secret)
            if not all(protected[start:end]):
                hidden[start:end] = [True] * len(secret)
        for start, end in _cut_off(text, secret):
            hidden[start:end] = [True] * (end - start)
    out: list[str] = []
    for i, char in enumerate(text):
        if not hidden[i]:
            out.append(char)
        elif i == 0 or not hidden[i - 1]:
            out.append("***")
    return "".join(out)


TRUNCATION_MARKS = ("...", "\u2026")
"""What a client that shortens a long message (dbt's adapters, drivers) puts where it cut."""
MIN_FRAGMENT = 6
"""The shortest piece of a cut secret that is hidden (shorter pieces are too common to mean it)."""


def _cut_off(text: str, secret: str) -> list[tuple[int, int]]:
    """Where a piece of ``secret`` cut short by a truncation survives in ``text``: a prefix of it
    that runs into a truncation mark or the end of the text, a suffix that follows a mark or opens
    the text. A full occurrence is found by :func:`redact` itself.

    At the text's own start or end a piece must be at least half the secret (and 8 characters):
    a short one there is more likely a word that happens to begin the secret (a user name
    ``reader`` next to the password ``reader-…``) than a cut.
    """
    found: list[tuple[int, int]] = []
    if len(secret) <= MIN_FRAGMENT:
        return found
    at_edge = max(8, len(secret) // 2)
    for size in range(len(secret) - 1, MIN_FRAGMENT - 1, -1):
        head, tail = secret[:size], secret[-size:]
        for start in _occurrences(text, head):
            end = start + size
            if (end == len(text) and size >= at_edge) or text.startswith(TRUNCATION_MARKS, end):
                found.append((start, end))
        for start in _occurrences(text, tail):
            if (start == 0 and size >= at_edge) or any(
                text.endswith(mark, 0, start) for mark in TRUNCATION_MARKS
            ):
                found.append((start, start + size))
    return found


def _occurrences(text: str, word: str) -> list[int]:
    """Where ``word`` starts in ``text``, overlapping occurrences included."""
    found, start = [], text.find(word)
    while start != -1:
        found.append(start)
        start = text.find(word, start + 1)
    return found


@functools.cache
def _engine_names() -> tuple[str, ...]:
    """The names of the installed engine plugins (the ``floe`` entry points): floe's own words."""
    from importlib import metadata

    return tuple(ep.name for ep in metadata.entry_points(group="floe"))


def floe_names(compute: Any) -> list[str]:
    """floe's own names in a message about ``compute`` (a :class:`~floe.model.ComputeConfig`): its
    name, its engine and its settings' keys. Not the settings' values: a value a user wrote (a path,
    a host) may itself contain a secret, which must still be hidden there."""
    names = [str(compute.name), str(compute.engine)]

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                names.append(str(key))
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(compute.config)
    return names
