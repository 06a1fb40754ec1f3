"""Turning jsonschema's errors into :class:`~floe.errors.Problem` s a person can act on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from floe.errors import Problem
from floe.secrets import is_credential_key

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

JsonPath = tuple[str | int, ...]
LineOf = Callable[[JsonPath], int | None]


def format_path(path: Iterable[str | int]) -> str:
    """``("a", 0, "b")`` → ``$.a[0].b`` (keys that are not identifiers are bracket-quoted)."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "a").replace("-", "a").isalnum():
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


def node_at(data: Any, path: Iterable[str | int]) -> Any:
    """The value at ``path`` of a parsed tree; ``None`` where the tree has nothing there."""
    for part in path:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a mistyped ``word``, if any is close."""
    import difflib  # only when something is misspelt: not at every start

    options = list(choices)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # an abbreviation or its long form (`prod` for `production`), when only one choice fits
    lowered = word.lower()
    fits = [
        c
        for c in options
        if min(len(c), len(lowered)) >= 3 and (lowered.startswith(c.lower()) or c.lower().startswith(lowered))
    ]
    return fits[0] if len(fits) == 1 else None


def _describe(value: Any) -> str:
    """A short, quoted rendering of a YAML value for messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_words(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "a boolean (true/false)",
    }
    if isinstance(kind, list):
        return " or ".join(names.get(str(k), str(k)) for k in kind)
    return names.get(str(kind), str(kind))


Belongs = Callable[[JsonPath, str], "JsonPath | None"]
"""Where an unknown ``key`` of the mapping at a path belongs instead (see
:meth:`floe.schemas.SchemaStore.where_key_belongs`), if anywhere near."""


def problems_from_errors(
    errors: Iterable[ValidationError],
    file: str,
    line_of: LineOf,
    prefix: JsonPath = (),
    belongs: Belongs | None = None,
) -> list[Problem]:
    """One problem per error (one per unknown key), sorted by line, duplicates dropped."""
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_convert(error, file, line_of, prefix, belongs))
    unique = {(p.line, p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line or 0, p.path or ""))


class _Error:
    """One jsonschema error, with what every rendering of it needs: where it is, the schema that
    refused it, the conditional rule it breaks (if any), and how to show its value."""

    def __init__(
        self, error: ValidationError, file: str, line_of: LineOf, prefix: JsonPath, belongs: Belongs | None
    ) -> None:
        self.error = error
        self.file = file
        self.line_of = line_of
        self.prefix = prefix
        self.belongs = belongs
        self.path: JsonPath = prefix + tuple(error.absolute_path)
        self.schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
        self.rule = _rule(error, self.schema)
        self.hidden = any(isinstance(part, str) and is_credential_key(part) for part in self.path)

    def describe(self, value: Any) -> str:
        """``value`` for a message; never what may be a credential."""
        return "a literal value (not shown)" if self.hidden else _describe(value)

    def problem(
        self, message: str, at: JsonPath | None = None, expected: str | None = None, fix: str | None = None
    ) -> Problem:
        at = self.path if at is None else at
        return Problem(message, self.file, self.line_of(at), format_path(at), expected, fix)


def _convert(
    error: ValidationError, file: str, line_of: LineOf, prefix: JsonPath, belongs: Belongs | None = None
) -> list[Problem]:
    """The problems a person reads for ``error``: by the keyword that refused the value, or, for a
    keyword without words of its own, what the schema says the value should be."""
    found = _Error(error, file, line_of, prefix, belongs)
    convert = _BY_VALIDATOR.get(str(error.validator))
    problems = convert(found) if convert is not None else None
    if problems is not None:
        return problems
    # jsonschema's own message embeds the whole value, which may hold a credential, and names the
    # schema's keyword, which means nothing to a user: say what the schema says about the value
    rule = found.rule
    return [
        found.problem(
            "the value is not accepted here" + (f": {rule}" if rule else ""),
            expected=found.schema.get("description") if not rule else None,
            fix="see `floe schema` (or `floe schema --engine NAME`) for what is accepted",
        )
    ]


def _alternatives(e: _Error) -> list[Problem] | None:
    """``oneOf``/``anyOf``: a choice among groups of required settings, else the alternative shaped
    like the value."""
    error = e.error
    groups = _required_groups(error.validator_value)
    if groups and (not error.context or all(only_missing(sub) for sub in error.context)):
        choices = " or ".join(" and ".join(group) for group in groups)
        if error.context:  # none of the groups is written
            return [
                e.problem(
                    f"one of these settings is needed: {choices}", expected=e.rule, fix=f"add {choices}"
                )
            ]
        present = [
            k
            for group in groups
            for k in group
            if isinstance(error.instance, Mapping) and k in error.instance
        ]
        return [
            e.problem(
                f"{_keys(present)} are set together, but only one of {choices} may be",
                expected=e.rule,
                fix=f"keep one of {_keys(present)}",
            )
        ]
    if error.context:
        return _best_alternative(error, e.file, e.line_of, e.prefix, e.belongs)
    return None


def _forbidden(e: _Error) -> list[Problem]:
    """``not``: settings that cannot be set together."""
    present = _forbidden_present(e.error.validator_value, e.error.instance)
    at = e.path + (present[0],) if present else e.path
    what = f"{_keys(present)} cannot be set here" if present else "these settings do not go together"
    return [
        e.problem(
            what,
            at,
            e.rule or "settings that go together (see `floe schema --engine NAME`)",
            f"remove {_keys(present)}, or change the setting that decides which ones apply"
            if present
            else "see `floe schema --engine NAME` for the settings that go together",
        )
    ]


def _unknown_keys(e: _Error) -> list[Problem] | None:
    """``additionalProperties``: each unknown key, with the key it may be a typo of or the place it
    belongs."""
    instance = e.error.instance
    if not isinstance(instance, Mapping):
        return None
    path = e.path
    allowed = list(e.schema.get("properties", {}))
    out = []
    for key in instance:
        if key in allowed:
            continue
        guess = did_you_mean(str(key), allowed)
        place = e.belongs(path, str(key)) if e.belongs is not None and not guess else None
        if guess:
            fix = f"did you mean {guess!r}?"
        elif place:
            under = f"under `{place[-2]}:`" if len(place) > 1 else "to the top level"
            fix = (
                f"`{key}:` belongs at {format_path(place)}: move it {under}"
                if len(place) > len(path) + 1
                else f"`{key}:` belongs at {format_path(place)}: move it out of this "
                f"{'entry' if path and isinstance(path[-1], int) else 'mapping'}, {under}"
            )
        else:
            fix = "remove it"
        out.append(
            e.problem(
                f"unknown key {key!r}",
                path + (key,),
                "one of " + ", ".join(allowed) if allowed else "no keys here",
                fix,
            )
        )
    return out


def _required(e: _Error) -> list[Problem]:
    message = e.error.message
    missing = str(message).split("'")[1] if "'" in message else message
    sub = e.schema.get("properties", {}).get(missing, {})
    hint = e.rule or (sub.get("description") if isinstance(sub, Mapping) else None)
    return [e.problem(f"missing required key {missing!r}", expected=hint, fix=f"add `{missing}:` here")]


def _wrong_type(e: _Error) -> list[Problem]:
    key = e.path[-1] if e.path else None
    if _is_secret_reference(e.schema) and not isinstance(e.error.instance, Mapping) and isinstance(key, str):
        # a credential written as its value: say so, as the rules for engine settings do
        return [
            e.problem(
                f"{key!r} holds a literal credential",
                expected="a secret reference: {secret_ref: NAME}",
                fix=f"write `{key}: {{secret_ref: NAME}}` and set NAME in the environment (or your "
                "secret store); never commit the value",
            )
        ]
    return [
        e.problem(
            f"expected {_type_words(e.schema)}, found {e.describe(e.error.instance)}",
            expected=e.schema.get("description"),
            fix=_type_fix(e.schema, e.error.instance),
        )
    ]


def _is_secret_reference(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` is the one of a secret reference (``{secret_ref: NAME}``)."""
    return schema.get("type") == "object" and list(schema.get("required", ())) == ["secret_ref"]


def _not_a_choice(e: _Error) -> list[Problem]:
    """``enum``/``const``: the value is none of those allowed."""
    options: Sequence[Any] = e.schema.get("enum", [e.schema.get("const")])
    guess = did_you_mean(str(e.error.instance), [str(o) for o in options])
    because = f": {e.rule}" if e.rule else ""
    remedy = f"did you mean {guess!r}?" if guess else None
    path = e.path
    if e.rule and len(options) == 1 and path and isinstance(path[-1], str):  # a rule that fixes the value
        remedy = f"write {options[0]!r}, or remove `{path[-1]}:`"
    return [
        e.problem(
            f"{e.describe(e.error.instance)} is not allowed here{because}",
            expected="one of " + ", ".join(repr(o) for o in options),
            fix=remedy,
        )
    ]


def _wrong_form(e: _Error) -> list[Problem]:
    return [
        e.problem(
            f"{e.describe(e.error.instance)} does not have the required form",
            expected=e.schema.get("description") or f"text matching {e.schema.get('pattern')}",
            fix="change the value to the expected form",
        )
    ]


def _empty_list(e: _Error) -> list[Problem]:
    return [
        e.problem(
            "the list is empty",
            expected=f"at least {e.schema.get('minItems')} item(s)",
            fix="add an item or remove the key",
        )
    ]


_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}


def _out_of_range(e: _Error) -> list[Problem]:
    validator = str(e.error.validator)
    return [
        e.problem(
            f"{e.describe(e.error.instance)} is out of range",
            expected=f"{_BOUNDS[validator]} {e.schema.get(validator)}",
            fix="choose a value within range",
        )
    ]


def _empty_text(e: _Error) -> list[Problem]:
    return [e.problem("the value is empty", expected="a non-empty string", fix="set a value")]


_BY_VALIDATOR: dict[str, Callable[[_Error], list[Problem] | None]] = {
    "oneOf": _alternatives,
    "anyOf": _alternatives,
    "not": _forbidden,
    "additionalProperties": _unknown_keys,
    "required": _required,
    "type": _wrong_type,
    "enum": _not_a_choice,
    "const": _not_a_choice,
    "pattern": _wrong_form,
    "minItems": _empty_list,
    **dict.fromkeys(_BOUNDS, _out_of_range),
    "minLength": _empty_text,
}
"""How each JSON Schema keyword's refusal is put into words; ``None`` from one: no words of its own."""


def _rule(error: ValidationError, schema: Mapping[str, Any]) -> str | None:
    """The sentence of a conditional rule (a ``then``/``else`` branch) that ``error`` breaks: which
    settings go together and why. Schemas give it as the branch's (or the property's) description."""
    if not any(part in ("then", "else") for part in error.absolute_schema_path):
        return None
    text = schema.get("description")
    return str(text) if text else None


def only_missing(error: ValidationError) -> bool:
    """Whether ``error`` says only that settings are missing (``required``, or a choice among
    groups of required settings none of which is written yet)."""
    if error.validator == "required":
        return True
    return (
        error.validator in ("anyOf", "oneOf")
        and bool(error.context)
        and all(only_missing(sub) for sub in error.context or ())
    )


def _required_groups(alternatives: Any) -> list[list[str]]:
    """``[[a], [b, c]]`` for alternatives that are each only ``required`` keys; else ``[]``."""
    groups: list[list[str]] = []
    for alternative in alternatives if isinstance(alternatives, list) else ():
        if not isinstance(alternative, Mapping) or set(alternative) != {"required"}:
            return []
        groups.append([str(k) for k in alternative["required"]])
    return groups


def _forbidden_present(forbidden: Any, instance: Any) -> list[str]:
    """The keys of ``instance`` that a ``not`` of required keys (possibly a choice of them) forbids."""
    if not isinstance(forbidden, Mapping) or not isinstance(instance, Mapping):
        return []
    keys: list[str] = [str(k) for k in forbidden.get("required", ()) if k in instance]
    for alternative in forbidden.get("anyOf", ()) or forbidden.get("oneOf", ()):
        keys += [k for k in _forbidden_present(alternative, instance) if k not in keys]
    return keys


def _keys(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "these settings"


def _type_fix(schema: Mapping[str, Any], instance: Any) -> str:
    kind = schema.get("type")
    if kind == "array" and not isinstance(instance, list):
        return "write a list, one `- item` per line (a single value still needs the dash)"
    if kind == "object":
        return "write a mapping of `key: value` lines"
    if kind == "integer":
        return "write a whole number without quotes, e.g. 8"
    if kind == "boolean":
        return "write true or false"
    return f"write {_type_words(schema)}"


def _best_alternative(
    error: ValidationError, file: str, line_of: LineOf, prefix: JsonPath, belongs: Belongs | None = None
) -> list[Problem]:
    """For oneOf/anyOf, report the errors of the alternative shaped like the value."""
    instance = error.instance
    describe = _describe
    shape = "object" if isinstance(instance, Mapping) else "array" if isinstance(instance, list) else "scalar"
    by_alternative: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        index = sub.schema_path[0] if sub.schema_path else 0
        by_alternative.setdefault(int(index), []).append(sub)
    chosen: list[ValidationError] | None = None
    for subs in by_alternative.values():
        if not any(s.validator == "type" and not s.relative_path for s in subs):
            chosen = subs
            break
    if chosen is None:
        path: JsonPath = prefix + tuple(error.absolute_path)
        return [
            Problem(
                f"{describe(instance)} ({shape}) is not valid here",
                file,
                line_of(path),
                format_path(path),
                "a name, or a mapping with `name:` and its settings",
                "see `floe schema` for the accepted forms",
            )
        ]
    out: list[Problem] = []
    for sub in chosen:
        out.extend(_convert(sub, file, line_of, prefix, belongs))
    return out
