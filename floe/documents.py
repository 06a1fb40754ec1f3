"""Reading one manifest or floe.yaml: parsing, typing, locations, schema validation.

strictyaml is the reference for what a file means. :mod:`floe.fastyaml` reads the same untyped tree
and lines in linear time on libyaml and falls back to strictyaml wherever the two could differ.
The untyped tree is typed by the rules strictyaml's typed schema applies
(:meth:`~floe.schemas.SchemaStore.apply_types`, checked against strictyaml by differential tests),
so that jsonschema can report *every* problem of the file in one go, each with file, line and
``$.path``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from floe import fastyaml
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
    untyped: Any = attrs.field(eq=False, repr=False)
    """The tree as parsed, before typing: strings, dicts and lists."""

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
        lines = parse_untyped(text, label)[1]
        choices = ", ".join(KIND_SCHEMAS)
        what = f"unknown kind {kind!r}" if kind else "missing `kind:`"
        raise ManifestError([Problem(what, label, lines.get(("kind",), 1), "$.kind",
                                     f"one of {choices}", "set `kind: Manifest` or `kind: DataProduct`")])  # fmt: skip
    if expect_kind and kind != expect_kind:
        raise ManifestError([Problem(f"this file is a {kind}, expected a {expect_kind}", label,
                                     1, "$.kind", expect_kind, "point to the right file")])  # fmt: skip
    uri = SCHEMA_BASE + KIND_SCHEMAS[kind]
    schema = store.get(uri)
    untyped, lines = parse_untyped(text, label)
    data = store.apply_types(untyped, schema, uri)
    if not isinstance(data, dict):
        raise ManifestError([Problem(f"expected a mapping of keys at the top of a {kind} file",
                                     label, 1, "$", fix="start with `apiVersion: floe.dev/v1`")])  # fmt: skip
    doc = Document(path, label, kind, data, lines, untyped)
    parity = parity_problems(doc)
    errors = store.validator(uri).iter_errors(data)
    problems = problems_from_errors(errors, label, doc.line_of)
    if parity:
        reported = {p.path for p in parity}
        problems = [p for p in problems if p.path not in reported]
        raise EnvironmentParityError(parity + problems)
    if problems:
        raise ManifestError(problems)
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


def parse_untyped(text: str, label: str) -> tuple[Any, dict[JsonPath, int]]:
    """The untyped tree of ``text`` and the line of every node, as strictyaml reads them.

    fastyaml answers in linear time; where it cannot vouch for agreeing with strictyaml, strictyaml
    itself parses the text (slower, quadratic in the worst case, but the reference).
    """
    if not text.strip():
        return None, {}
    try:
        return fastyaml.parse(text, label)
    except fastyaml.Fallback:
        yaml = _parse(text, label)
        return yaml.data, _lines(yaml)


def _parse(text: str, label: str) -> Any:
    import strictyaml as sy  # only for what fastyaml leaves to it: most runs never import it
    from strictyaml.ruamel.error import MarkedYAMLError

    try:
        return sy.dirty_load(text, sy.Any(), label=label, allow_flow_style=True)
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
    from strictyaml.ruamel.comments import CommentedMap, CommentedSeq

    lines: dict[JsonPath, int] = {}
    root = yaml._chunk._ruamelparsed  # the parse tree of strictyaml 1.7's vendored ruamel
    lines[()] = 1
    stack: list[tuple[JsonPath, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, CommentedMap):
            positions = node.lc.data or {}
            for key, value in node.items():
                child = path + (str(key),)
                # keys merged in by `<<` have no position of their own: the line of their mapping
                position = positions.get(key)
                lines[child] = position[0] + 1 if position else lines[path]
                stack.append((child, value))
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                child = path + (index,)
                lines[child] = node.lc.item(index)[0] + 1
                stack.append((child, value))
    return lines


def typed_fragment(doc: Document, path: JsonPath, store: SchemaStore, uri: str) -> Any:
    """The node at ``path`` typed by the schema at ``uri`` (an engine's config schema).

    Engine settings are typed once floe knows which engine a compute is, which may be decided by
    an ancestor manifest; the untyped node is typed by the same rules as a whole file.
    """
    node = doc.untyped
    for part in path:
        node = node[part]
    return store.apply_types(node, store.get(uri), uri)
