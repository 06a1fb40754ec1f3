"""Reading one manifest or floe.yaml: strictyaml parsing, typing, locations, schema validation.

A file is parsed by strictyaml with the typed schema derived from the JSON Schema of its ``kind``.
When that fails, the file is parsed untyped and typed by the same rules so that jsonschema can
report *every* problem of the file in one go, each with file, line and ``$.path``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import strictyaml as sy
from strictyaml.ruamel.comments import CommentedMap, CommentedSeq
from strictyaml.ruamel.error import MarkedYAMLError

from floe.diagnostics import JsonPath, format_path, problems_from_errors
from floe.errors import EnvironmentParityError, ManifestError, Problem
from floe.schemas import KIND_SCHEMAS, SCHEMA_BASE, SchemaStore

_KIND = re.compile(r"^kind:[ \t]*[\"']?([A-Za-z]+)", re.MULTILINE)
PARITY_FIX = (
    "choose the compute once per transform (transforms[].compute in floe.yaml); environments may "
    "only vary connection settings under environments[].overrides"
)
PARITY_WHY = (
    "per-environment compute causes environment drift: a transform tested on one engine in "
    "development would run on another in production, with different SQL semantics, types and "
    "performance"
)


@attrs.frozen
class Document:
    """A parsed, typed and validated file, with the line of every node."""

    path: Path
    label: str
    kind: str
    data: dict[str, Any]
    lines: Mapping[JsonPath, int]
    yaml: Any = attrs.field(eq=False, repr=False)

    def line_of(self, path: JsonPath) -> int | None:
        """The line of ``path`` or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: JsonPath, message: str, expected: str | None = None,
                fix: str | None = None) -> Problem:  # fmt: skip
        """A problem located at ``path`` of this document."""
        return Problem(message, self.label, self.line_of(path), format_path(path), expected, fix)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_document(path: Path, store: SchemaStore, expect_kind: str | None = None) -> Document:
    """Parse and validate the file at ``path``; raise with all its problems if it is invalid."""
    label = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ManifestError([Problem(f"cannot read the file: {reason}", label,
                                     fix="check the path and its permissions")]) from None  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError([Problem("the file is not valid UTF-8", label, line,
                                     fix="save the file as UTF-8")]) from None  # fmt: skip
    found = _KIND.search(text)
    kind = found.group(1) if found else None
    if kind not in KIND_SCHEMAS:
        untyped = _parse(text, sy.Any(), label)
        lines = _lines(untyped) if untyped is not None else {}
        choices = ", ".join(KIND_SCHEMAS)
        what = f"unknown kind {kind!r}" if kind else "missing `kind:`"
        raise ManifestError([Problem(what, label, lines.get(("kind",), 1), "$.kind",
                                     f"one of {choices}", "set `kind: Manifest` or `kind: DataProduct`")])  # fmt: skip
    if expect_kind and kind != expect_kind:
        raise ManifestError([Problem(f"this file is a {kind}, expected a {expect_kind}", label,
                                     1, "$.kind", expect_kind, "point to the right file")])  # fmt: skip
    uri = SCHEMA_BASE + KIND_SCHEMAS[kind]
    schema = store.get(uri)
    typed_error: str | None = None
    validator, retype = store.typed_schema(uri)
    try:
        yaml = _parse(text, validator, label)
        data = yaml.data if yaml is not None else None
        if retype:
            data = store.apply_types(data, schema, uri)
    except (sy.YAMLValidationError, ValueError) as exc:  # ValueError: numerals int() refuses
        typed_error = str(exc)
        yaml = _parse(text, sy.Any(), label)
        data = store.apply_types(yaml.data if yaml is not None else None, schema, uri)
    if not isinstance(data, dict):
        raise ManifestError([Problem(f"expected a mapping of keys at the top of a {kind} file",
                                     label, 1, "$", fix="start with `apiVersion: floe.dev/v1`")])  # fmt: skip
    doc = Document(path, label, kind, data, _lines(yaml), yaml)
    parity = parity_problems(doc)
    errors = store.validator(uri).iter_errors(data)
    problems = problems_from_errors(errors, label, doc.line_of)
    if parity:
        reported = {p.path for p in parity}
        problems = [p for p in problems if p.path not in reported]
        raise EnvironmentParityError(parity + problems)
    if problems:
        raise ManifestError(problems)
    if typed_error is not None:  # strictyaml refused what the schema accepts: report its words
        raise ManifestError([Problem(typed_error.strip(), label)])
    return doc


def parity_problems(doc: Document) -> list[Problem]:
    """REQ-024: any attempt to choose compute per environment, wherever it appears."""
    problems = []
    environments = doc.data.get("environments")
    for i, env in enumerate(environments if isinstance(environments, list) else []):
        if not isinstance(env, dict):
            continue
        for key in ("transforms", "compute", "computes"):
            if key in env:
                problems.append(doc.problem(("environments", i, key),
                                            f"environment {env.get('name', i)!r} selects compute per environment; {PARITY_WHY}",
                                            fix=PARITY_FIX))  # fmt: skip
        overrides = env.get("overrides")
        for compute, settings in (overrides.items() if isinstance(overrides, dict) else ()):
            for key in ("engine", "type"):
                if isinstance(settings, dict) and key in settings:
                    problems.append(doc.problem(("environments", i, "overrides", compute, key),
                                                f"environment {env.get('name', i)!r} changes the engine of compute {compute!r}; {PARITY_WHY}",
                                                fix=PARITY_FIX))  # fmt: skip
    return problems


def _parse(text: str, schema: sy.Validator, label: str) -> Any:
    if not text.strip():
        return None
    try:
        return sy.dirty_load(text, schema, label=label, allow_flow_style=True)
    except (sy.YAMLValidationError, ValueError):
        raise
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = (exc.problem or exc.context or "invalid YAML").strip()
        raise ManifestError([Problem(f"invalid YAML: {what}", label, line,
                                     fix="fix the YAML syntax (floe manifests use spaces, not tabs, and unique keys)")]) from None  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - strictyaml raises a few bare errors for odd input
        raise ManifestError([Problem(f"invalid YAML: {exc}", label, fix="fix the YAML syntax")]) from None


def _lines(yaml: Any) -> dict[JsonPath, int]:
    """The 1-based source line of every node, keyed by its JSON path.

    Read from the ruamel tree strictyaml parsed (``lc`` holds source positions): strictyaml's own
    ``start_line`` re-dumps the document for each node, which is slow and, for flow style, wrong.
    """
    lines: dict[JsonPath, int] = {}
    if yaml is None:
        return lines
    root = yaml._chunk._ruamelparsed  # the parse tree of strictyaml 1.7's vendored ruamel
    lines[()] = 1
    stack: list[tuple[JsonPath, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                child = path + (str(key),)
                lines[child] = node.lc.key(key)[0] + 1
                stack.append((child, value))
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                child = path + (index,)
                lines[child] = node.lc.item(index)[0] + 1
                stack.append((child, value))
    return lines


def typed_fragment(doc: Document, path: JsonPath, store: SchemaStore, uri: str) -> Any:
    """The node at ``path`` typed by the schema at ``uri`` (an engine's config schema).

    Engine settings are typed once floe knows which engine a compute is, which may be decided
    by an ancestor manifest: strictyaml revalidates the node; if it refuses, the same rules type
    the untyped node so that jsonschema can report every problem.
    """
    node = doc.yaml
    for part in path:  # by hand: strictyaml's __getitem__ fails below an Or-validated node
        if isinstance(part, int):
            node = node.value[part]
        else:
            node = next(v for k, v in node.value.items() if k.data == part)
    untyped = node.data
    validator, retype = store.typed_schema(uri)
    try:
        node.revalidate(validator)
        return store.apply_types(node.data, store.get(uri), uri) if retype else node.data
    except (sy.YAMLValidationError, ValueError):  # ValueError: numerals int() refuses
        return store.apply_types(untyped, store.get(uri), uri)
