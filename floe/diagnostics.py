"""Turning jsonschema's errors into :class:`~floe.errors.Problem` s a person can act on."""

from __future__ import annotations

import difflib
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


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a mistyped ``word``, if any is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


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
    names = {"object": "a mapping", "array": "a list", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)"}  # fmt: skip
    if isinstance(kind, list):
        return " or ".join(names.get(str(k), str(k)) for k in kind)
    return names.get(str(kind), str(kind))


def problems_from_errors(
    errors: Iterable[ValidationError], file: str, line_of: LineOf, prefix: JsonPath = ()
) -> list[Problem]:
    """One problem per error (one per unknown key), sorted by line, duplicates dropped."""
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_convert(error, file, line_of, prefix))
    unique = {(p.line, p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line or 0, p.path or ""))


def _convert(error: ValidationError, file: str, line_of: LineOf, prefix: JsonPath) -> list[Problem]:
    path: JsonPath = prefix + tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    validator = error.validator
    hidden = any(isinstance(part, str) and is_credential_key(part) for part in path)

    def describe(value: Any) -> str:  # never echo what may be a credential
        return "a literal value (not shown)" if hidden else _describe(value)

    def problem(message: str, at: JsonPath = path, expected: str | None = None,
                fix: str | None = None) -> Problem:  # fmt: skip
        return Problem(message, file, line_of(at), format_path(at), expected, fix)

    if validator in ("oneOf", "anyOf") and error.context:
        return _best_alternative(error, file, line_of, prefix)
    if validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in error.instance:
            if key in allowed:
                continue
            guess = did_you_mean(str(key), allowed)
            fix = f"did you mean {guess!r}?" if guess else "remove it"
            out.append(problem(f"unknown key {key!r}", path + (key,),
                               "one of " + ", ".join(allowed) if allowed else "no keys here", fix))  # fmt: skip
        return out
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        sub = schema.get("properties", {}).get(missing, {})
        hint = sub.get("description") if isinstance(sub, Mapping) else None
        return [problem(f"missing required key {missing!r}", expected=hint,
                        fix=f"add `{missing}:` here")]  # fmt: skip
    if validator == "type":
        return [problem(f"expected {_type_words(schema)}, found {describe(error.instance)}",
                        expected=schema.get("description"),
                        fix=_type_fix(schema, error.instance))]  # fmt: skip
    if validator in ("enum", "const"):
        options: Sequence[Any] = schema.get("enum", [schema.get("const")])
        guess = did_you_mean(str(error.instance), [str(o) for o in options])
        return [problem(f"{describe(error.instance)} is not allowed here",
                        expected="one of " + ", ".join(repr(o) for o in options),
                        fix=f"did you mean {guess!r}?" if guess else None)]  # fmt: skip
    if validator == "pattern":
        return [problem(f"{describe(error.instance)} does not have the required form",
                        expected=schema.get("description") or f"text matching {schema.get('pattern')}",
                        fix="change the value to the expected form")]  # fmt: skip
    if validator == "minItems":
        return [problem("the list is empty", expected=f"at least {schema.get('minItems')} item(s)",
                        fix="add an item or remove the key")]  # fmt: skip
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = schema.get(str(validator))
        return [problem(f"{describe(error.instance)} is out of range",
                        expected=f"{validator} {bound}", fix="choose a value within range")]  # fmt: skip
    if validator == "minLength":
        return [problem("the value is empty", expected="a non-empty string", fix="set a value")]
    # jsonschema's own message embeds the whole value, which may hold a credential: name the rule
    return [problem(f"the value breaks the schema's `{validator}` rule", expected=schema.get("description"),
                    fix="see `floe schema` (or `floe schema --engine NAME`) for what is accepted")]  # fmt: skip


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
    error: ValidationError, file: str, line_of: LineOf, prefix: JsonPath
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
        return [Problem(f"{describe(instance)} ({shape}) is not valid here", file, line_of(path),
                        format_path(path), "a name, or a mapping with `name:` and its settings",
                        "see `floe schema` for the accepted forms")]  # fmt: skip
    out: list[Problem] = []
    for sub in chosen:
        out.extend(_convert(sub, file, line_of, prefix))
    return out
