"""Reading one manifest or floe.yaml: parsing, typing, locations, schema validation.

strictyaml is the reference for what a file means. :mod:`floe.fastyaml` reads the same untyped tree
and lines in linear time on libyaml and falls back to strictyaml wherever the two could differ.
The untyped tree is typed by the rules strictyaml's typed schema applies
(:meth:`~floe.schemas.SchemaStore.apply_types`, checked against strictyaml by differential tests),
so that jsonschema can report *every* problem of the file in one go, each with file, line and
``$.path``.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from floe import fastyaml
from floe.diagnostics import JsonPath, format_path, node_at, problems_from_errors
from floe.errors import EnvironmentParityError, ManifestError, Problem
from floe.fastyaml import FIX
from floe.schemas import KIND_SCHEMAS, SCHEMA_BASE, SchemaStore
from floe.specs import LevelSpec, structure

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

    @functools.cached_property
    def spec(self) -> LevelSpec:
        """What the file means, as typed values (structured on first use, once)."""
        return structure(self.data, self.kind)

    def written_at(self, path: JsonPath) -> Any:
        """What the file writes at ``path`` (typed by the file's schema; ``None`` if nothing).

        For showing and locating what a level writes where it writes it (engine settings, which
        only their engine types); what a field means is read from :attr:`spec`.
        """
        return node_at(self.data, path)

    def line_of(self, path: JsonPath) -> int | None:
        """The line of ``path`` or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(
        self, path: JsonPath, message: str, expected: str | None = None, fix: str | None = None
    ) -> Problem:
        """A problem located at ``path`` of this document."""
        return Problem(message, self.label, self.line_of(path), format_path(path), expected, fix)

    def resolve(self, at: JsonPath, raw: str, base: Path | None = None) -> Path | Problem:
        """``raw``, a path written at ``at``, made absolute against ``base`` (default: this file's
        folder) with symlinks resolved, or the problem located at ``at`` if the system refuses it.

        pathlib raises ValueError (a NUL character), RuntimeError (a symlink loop) or OSError (a
        name or path too long, no permission) from ``resolve``, ``exists`` and ``is_file``; checked
        here once, the caller's later checks of the resolved path have nothing left to raise.
        """
        try:
            path = ((base or self.path.parent) / raw).resolve()
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return path  # does not exist: the caller says so in its own words
        except (OSError, ValueError, RuntimeError) as exc:
            return self.problem(
                at,
                f"the path {_short(raw)} cannot be used: {path_refusal(exc)}",
                "a path the operating system accepts",
                "remove NUL characters and symlink loops; keep names under 256 bytes",
            )
        return path


class WrongKindError(ManifestError):
    """A file read as one kind (a parent manifest) is another (a data product's floe.yaml): the
    reader that pointed at it knows better where the mistake is."""

    def __init__(self, kind: str, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.kind = kind


def peek_kind(path: Path) -> str | None:
    """The ``kind:`` a file declares, read cheaply (no parsing); ``None`` if unreadable or none."""
    try:
        with open(path, "rb") as file:
            head = file.read(65536).decode("utf-8", "replace")
    except OSError:
        return None
    found = _KIND.search(head)
    return found.group(1) if found else None


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def path_refusal(exc: BaseException) -> str:
    """Why the system refused a path, in words (pathlib's own messages name internals)."""
    if isinstance(exc, ValueError):
        return "it contains a NUL character"
    if isinstance(exc, RuntimeError):
        return "it leads into a symlink loop"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return type(exc).__name__


def _short(text: str) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= 80 else quoted[:70] + "...'"


def read_bytes(path: Path, label: str) -> bytes:
    """The content of the regular file at ``path``; else a ManifestError naming it (no line).

    The file is opened without blocking and checked to be a regular file before it is read: a
    FIFO (or a device) would otherwise block the read forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        reason = path_refusal(exc)
    else:
        with os.fdopen(fd, "rb") as file:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                try:
                    return file.read()
                except OSError as exc:
                    reason = path_refusal(exc)
            else:
                reason = "it is not a regular file"
    raise ManifestError(
        [Problem(f"cannot read the file: {reason}", label, fix="check the path and its permissions")]
    ) from None


def read_document(path: Path, store: SchemaStore, expect_kind: str | None = None) -> Document:
    """Parse and validate the file at ``path``; raise with all its problems if it is invalid."""
    label = display_path(path)
    raw = read_bytes(path, label)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(
            [Problem("the file is not valid UTF-8", label, line, fix="save the file as UTF-8")]
        ) from None
    found = _KIND.search(text)  # a block-style `kind:` line: the kind without parsing twice
    kind = found.group(1) if found else None
    if kind not in KIND_SCHEMAS:
        untyped, lines = parse_untyped(text, label)  # e.g. a flow-style mapping: `{kind: Manifest, …}`
        declared = untyped.get("kind") if isinstance(untyped, dict) else None
        kind = declared if isinstance(declared, str) else kind
    if kind not in KIND_SCHEMAS:
        choices = ", ".join(KIND_SCHEMAS)
        what = f"unknown kind {kind!r}" if kind else "missing `kind:`"
        raise ManifestError(
            [
                Problem(
                    what,
                    label,
                    lines.get(("kind",), 1),
                    "$.kind",
                    f"one of {choices}",
                    "set `kind: Manifest` or `kind: DataProduct`",
                )
            ]
        )
    if expect_kind and kind != expect_kind:
        raise WrongKindError(
            kind,
            [
                Problem(
                    f"this file is a {kind}, expected a {expect_kind}",
                    label,
                    1,
                    "$.kind",
                    expect_kind,
                    "point to the right file",
                )
            ],
        )
    uri = SCHEMA_BASE + KIND_SCHEMAS[kind]
    schema = store.get(uri)
    untyped, lines = parse_untyped(text, label)
    data = store.apply_types(untyped, schema, uri)
    if not isinstance(data, dict):
        raise ManifestError(
            [
                Problem(
                    f"expected a mapping of keys at the top of a {kind} file",
                    label,
                    1,
                    "$",
                    fix="start with `apiVersion: floe.dev/v1`",
                )
            ]
        )
    doc = Document(path, label, kind, data, lines, untyped)
    parity = parity_problems(doc)
    errors = store.errors(uri, data)
    problems = problems_from_errors(
        errors, label, doc.line_of, belongs=lambda path, key: store.where_key_belongs(uri, path, key)
    )
    if parity:
        reported = {p.path for p in parity}
        problems = [p for p in problems if p.path not in reported]
        raise EnvironmentParityError(parity + problems)
    if problems:
        raise ManifestError(problems)
    return doc


def parity_problems(doc: Document) -> list[Problem]:
    """REQ-024: any attempt to choose compute per environment, wherever it appears: under an
    environment, or as a transform's ``compute`` keyed by environment (``{dev: duckdb, prod: …}``).

    The one reader of a document's tree by key: it runs before the tree is validated (typed values
    need a valid one), so that choosing compute per environment is refused with REQ-024's reason
    rather than as keys the schema does not know."""
    problems = []
    transforms = doc.data.get("transforms") if doc.kind == "DataProduct" else None
    for i, transform in enumerate(transforms if isinstance(transforms, list) else []):
        compute = transform.get("compute") if isinstance(transform, dict) else None
        if isinstance(compute, dict):
            name = transform.get("name") or transform.get("path") or i
            choices = ", ".join(f"{env}: {value}" for env, value in compute.items())
            problems.append(
                doc.problem(
                    ("transforms", i, "compute"),
                    f"transform {name!r} selects compute per environment ({choices}); {PARITY_WHY}",
                    "one compute name for every environment",
                    PARITY_FIX,
                )
            )
    environments = doc.data.get("environments")
    for i, env in enumerate(environments if isinstance(environments, list) else []):
        if not isinstance(env, dict):
            continue
        for key in ("transforms", "compute", "computes"):
            if key in env:
                problems.append(
                    doc.problem(
                        ("environments", i, key),
                        f"environment {env.get('name', i)!r} selects compute per environment; {PARITY_WHY}",
                        fix=PARITY_FIX,
                    )
                )
        overrides = env.get("overrides")
        for compute, settings in overrides.items() if isinstance(overrides, dict) else ():
            for key in ("engine", "type"):
                if isinstance(settings, dict) and key in settings:
                    problems.append(
                        doc.problem(
                            ("environments", i, "overrides", compute, key),
                            f"environment {env.get('name', i)!r} changes the engine of compute {compute!r}; {PARITY_WHY}",
                            fix=PARITY_FIX,
                        )
                    )
    return problems


def parse_untyped(text: str, label: str) -> tuple[Any, dict[JsonPath, int]]:
    """The untyped tree of ``text`` and the line of every node, as strictyaml reads them.

    fastyaml answers in linear time; where it cannot vouch for agreeing with strictyaml, strictyaml
    itself parses the text (about ten times slower, but linear too: see :func:`_parse`). Nesting
    deeper than :data:`fastyaml.MAX_DEPTH` is refused, at its line, on either path.
    """
    if not text.strip():
        return None, {}
    try:
        return fastyaml.parse(text, label)
    except fastyaml.TooDeep as exc:
        raise _too_deep(label, exc.line) from None
    except fastyaml.Fallback:
        pass
    return _parse(text, label)


# Line breaks as ruamel's reader counts them (YAML 1.2: not NEL, LS or PS).
_RUAMEL_BREAK = re.compile(r"\n|\r(?!\n)")


def _too_deep(label: str, line: int) -> ManifestError:
    """No manifest nests anywhere near MAX_DEPTH; strictyaml would read such a text slowly, if at all."""
    return ManifestError(
        [
            Problem(
                f"invalid YAML: nesting deeper than {fastyaml.MAX_DEPTH} levels",
                label,
                line,
                fix="flatten the structure: no floe setting nests anywhere near this deep",
            )
        ]
    )


@functools.cache
def _loader_class() -> type:
    """strictyaml's loader (as ``dirty_load(..., allow_flow_style=True)`` makes it), whose scanner
    stops at the first collection that would open deeper than :data:`fastyaml.MAX_DEPTH`.

    Deeper, strictyaml would read slowly or not at all: its scanner's work per token grows with the
    number of open flow collections (seconds for a line of ``[``), its composer recurses. Open
    block collections (one indentation level each) plus open flow collections never exceed the
    nesting, so a document nested at most that deep is never stopped.
    """
    from strictyaml.parser import StrictYAMLLoader

    class Loader(StrictYAMLLoader):  # type: ignore[misc]
        allow_flow_style = True

        def _open(self) -> None:
            if len(self.indents) + self.flow_level >= fastyaml.MAX_DEPTH:
                raise fastyaml.TooDeep(self.reader.line + 1)

        def add_indent(self, column: int) -> bool:
            if self.indent < column:
                self._open()
            return bool(super().add_indent(column))

        def fetch_flow_collection_start(self, token_class: Any, to_push: str) -> None:
            self._open()
            super().fetch_flow_collection_start(token_class, to_push)

    return Loader


def _parse(text: str, label: str) -> tuple[Any, dict[JsonPath, int]]:
    """strictyaml's ``dirty_load(text, Any(), allow_flow_style=True)``, in linear time: the tree
    and the line of every node, or strictyaml's refusal located as it locates it.

    strictyaml's own loader (the scanner, parser and constructor of ``generic_load``), driven here
    so that every refusal gets a line and nesting is bounded (see :func:`_loader_class`). What
    ``Any()``'s validation then gives, :func:`_plain` gives directly: the validation itself takes
    quadratic time (a deep copy of the tree in which each sequence copies its attributes once per
    item, and a linear search of a mapping's keys per key: minutes for a product of a few thousand
    transforms), and for a tree that came from the text it refuses nothing the loader accepted
    except lists as keys, refused here first.
    """
    from strictyaml.ruamel.comments import CommentedMap, CommentedSeq  # only for the texts
    from strictyaml.ruamel.error import MarkedYAMLError  # fastyaml leaves to strictyaml
    from strictyaml.ruamel.reader import ReaderError

    def refuse(what: str, line: int | None, fix: str = FIX) -> ManifestError:
        return ManifestError([Problem(fastyaml.problem_message(what), label, line, fix=fix)])

    try:
        loader = _loader_class()(text)
    except ReaderError as exc:  # a character YAML allows nowhere, not even quoted
        line = len(_RUAMEL_BREAK.findall(text, 0, exc.position)) + 1
        raise refuse(
            f"unacceptable character #x{exc.character:04x}: {exc.reason}",
            line,
            "remove the character (YAML allows no control characters; inside double quotes "
            "write an escape such as \\t)",
        ) from None
    loader.label = label
    try:
        node = loader.get_single_node()
        try:  # the constructor's refusals (merge keys, mappings as keys) come first, as in strictyaml
            document = loader.construct_document(node) if node is not None else None
        except TypeError:  # a list key holding a mapping cannot be hashed
            _refuse_sequence_keys(node, refuse)
            raise
        _refuse_sequence_keys(node, refuse)
        if type(document) not in (CommentedMap, CommentedSeq):
            document = text  # a scalar document is its text, as in strictyaml
        lines = _ruamel_lines(document)
        deep = [path for path in lines if len(path) > fastyaml.MAX_DEPTH]
        if deep:  # block sequences inside block mappings can nest without indenting
            raise _too_deep(label, min(lines[path[: fastyaml.MAX_DEPTH]] for path in deep))
        return _plain(document), lines
    except fastyaml.TooDeep as exc:
        raise _too_deep(label, exc.line) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else loader.line + 1
        raise refuse((exc.problem or exc.context or "invalid YAML").strip(), line) from None
    except ManifestError:
        raise
    except Exception as exc:  # noqa: BLE001 - ruamel's round-trip comment handling fails on odd input
        # without a position of its own: where the reader had got to is where the text went wrong
        raise refuse(f"{exc}"[:200], loader.line + 1) from None
    finally:
        loader.dispose()


def _refuse_sequence_keys(root: Any, refuse: Callable[[str, int], ManifestError]) -> None:
    """A list used as a mapping key (``[a]: x``, ``? - a``), at its line.

    ruamel turns it into a tuple that strictyaml's validator fails on without a position; a mapping
    used as a key strictyaml refuses itself ("found unhashable key"), located.
    """
    from strictyaml.ruamel.nodes import MappingNode, SequenceNode

    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, SequenceNode):
                    raise refuse("a list cannot be a mapping key", key.start_mark.line + 1)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _plain(node: Any) -> Any:
    """What strictyaml's ``Any()`` makes of a ruamel node: dicts, lists, and the scalars as ruamel
    constructed them, its string subclasses made plain ``str``."""
    from strictyaml.ruamel.comments import CommentedMap, CommentedSeq
    from strictyaml.ruamel.scalarstring import ScalarString

    if isinstance(node, CommentedMap):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(item) for item in node]
    return str(node) if isinstance(node, ScalarString) else node


def _lines(yaml: Any) -> dict[JsonPath, int]:
    """The 1-based source line of every node, keyed by its JSON path.

    Read from the ruamel tree strictyaml parsed (``lc`` holds source positions): strictyaml's own
    ``start_line`` re-dumps the document for each node, which is slow and, for flow style, wrong.
    """
    return _ruamel_lines(yaml._chunk._ruamelparsed)  # the parse tree of strictyaml 1.7's vendored ruamel


def _ruamel_lines(root: Any) -> dict[JsonPath, int]:
    """:func:`_lines` of a ruamel parse tree."""
    from strictyaml.ruamel.comments import CommentedMap, CommentedSeq

    lines: dict[JsonPath, int] = {}
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
