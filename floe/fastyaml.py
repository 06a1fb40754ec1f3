"""A linear-time reading of YAML manifests that agrees with strictyaml, on PyYAML's C parser.

strictyaml 1.7 is the reference for what a manifest means, but it is slow: its vendored parser costs
about 13× libyaml, and locating nodes makes it quadratic. :func:`parse` reads the same untyped tree
(``dirty_load(text, Any(), allow_flow_style=True).data``: dicts, lists and ``str`` scalars) and the
line of every node from libyaml's event stream, in one pass.

Where it answers, it answers exactly as strictyaml does; where libyaml and strictyaml's vendored
ruamel could read a text differently, it raises :class:`Fallback` and the caller parses with
strictyaml. ``tests/test_fastyaml_differential.py`` checks that agreement with hypothesis.

* Accepted: the tree equals strictyaml's and the lines equal those ``floe.documents._lines`` reads
  (a text with no document at all, only comments or blank lines, is the text itself, as strictyaml
  gives it).
* Rejected with :class:`~floe.errors.ManifestError`, with strictyaml's message and line: tags,
  anchors, undefined aliases (the first in the text), a second document, duplicate keys (the one
  strictyaml's constructor meets first).
* :class:`Fallback`: anything libyaml refuses (strictyaml words and locates syntax errors its own
  way); tabs, the line breaks NEL/LS/PS and byte order marks past the start; directives; a
  document whose root is a scalar; merge keys ``<<`` and ``=`` (ruamel resolves them to special
  types); collections as keys; tags, anchors and block scalar headers outside the plain forms both
  scanners read alike; empty nodes and ``:`` without a space after it in flow collections; empty
  nodes, dangling ``-``/``?``, block scalar headers with a comment or duplicate keys in a text with
  comments or blank lines (ruamel's round-trip comment handling fails on some of those); nesting
  deeper than :data:`MAX_DEPTH` (ruamel recurses), as :class:`TooDeep`, which floe refuses.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from floe.diagnostics import JsonPath
from floe.errors import ManifestError, Problem

MAX_DEPTH = 40
"""Deeper nesting raises :class:`TooDeep`: strictyaml's parser recurses and may run out of stack."""

FIX = "fix the YAML syntax (floe manifests use spaces, not tabs, and unique keys)"

# What the parser's words (libyaml's and ruamel's are the same) mean for a person writing a manifest,
# by the start of the parser's problem; the first that matches is used.
_MEANINGS = (
    (
        "expected <block end>, but found '-'",
        "a `- item` here follows keys of a mapping at the same indentation: a list belongs under a key, "
        "its items indented below `key:`",
    ),
    (
        "expected <block end>, but found '?'",
        "a `key:` here follows the items of a list at the same indentation: a list and a mapping cannot "
        "share one level",
    ),
    (
        "expected <block end>",
        "this line is indented differently from the lines of its level: the keys of one mapping (and the "
        "items of one list) start in the same column",
    ),
    (
        "mapping values are not allowed",
        "a `: ` where a plain value was expected: quote a value that contains ': ', give each key its own "
        "line, and indent a nested mapping below its key",
    ),
    ("could not find expected ':'", "a key without its `:`, or a quoted text that is not closed"),
    ("did not find expected key", "a line inside a mapping that is no `key: value`: check its indentation"),
    (
        "did not find expected '-' indicator",
        "a line inside a list that is no `- item`: check its indentation",
    ),
    ("found unexpected end of stream", "the file ends inside a quoted text: a closing quote is missing"),
    (
        "expected ',' or ']'",
        "a [list] written on one line is not closed, or its items are not separated by commas",
    ),
    (
        "expected ',' or '}'",
        "a {mapping} written on one line is not closed, or its entries are not separated by commas",
    ),
    ("found character '\\t' that cannot start any token", "a tab: YAML indents with spaces only"),
    ("found character '@'", "@ cannot start a plain value in YAML: quote the value"),
    ("found character '`'", "` cannot start a plain value in YAML: quote the value"),
    (
        "found unknown escape character",
        "a backslash in double quotes starts an escape YAML does not know: write \\\\ for a backslash, or "
        "use single quotes",
    ),
    ("but found another document", "a second YAML document (after `---`): a floe file is one document"),
    ("found undefined alias", "`*name` refers to an anchor `&name` that is not defined above it"),
)


def problem_message(what: str) -> str:
    """The message for a YAML syntax error the parser describes as ``what``: a sentence a person
    understands, followed by the parser's own words (which name the token it stopped at)."""
    meaning = next((text for start, text in _MEANINGS if what.startswith(start)), None)
    return f"invalid YAML: {meaning} (the parser says: {what})" if meaning else f"invalid YAML: {what}"


TAG = "Found disallowed tag tokens (do not specify types in markup)"
ANCHOR = "Found confusing disallowed anchor token (surround with ' and ' to make text appear literally)"

# Characters ruamel reads unlike libyaml: tabs (ruamel refuses many that libyaml skips), NEL, LS and
# PS (line breaks to libyaml, not to ruamel's scanner) and a byte order mark past the start.
_UNSAFE = re.compile("[\t\x85\u2028\u2029\ufeff]")
# Plain scalars ruamel resolves to tags it does not construct as text: the merge key and `=`.
_SPECIAL = frozenset(("<<", "="))
_NO_KEY = object()
# Properties and block scalar headers that ruamel's scanner reads as libyaml does; others fall back.
_TAG = re.compile(r"!(?:!?[A-Za-z0-9][A-Za-z0-9_-]*)?(?=[ \r\n]|\Z)")
_ANCHOR = re.compile(r"[&*][A-Za-z0-9_-]+(?=[ \r\n]|\Z)")
_HEADER = re.compile(r"[|>](?:[1-9][-+]?|[-+][1-9]?)?(?=[ \r\n]|\Z)( *#)?")
# Comments and the blank lines ruamel keeps as comments; indicators with nothing after them.
_COMMENTS = re.compile(r"#|(?>\r\n|\r|\n) *(?>\r\n|\r|\n)")
_ADJACENT = re.compile(r"(?:[ \r\n]|#[^\r\n]*)*:(?![ \r\n])")
_DANGLING = re.compile(r"(?:^|(?<=[\s]))[-?] *(?:#[^\r\n]*)?(?:[\r\n]|\Z)")


class Fallback(Exception):
    """fastyaml cannot vouch that strictyaml reads the text the same way: parse it with strictyaml."""


class TooDeep(Fallback):
    """Nesting deeper than :data:`MAX_DEPTH`, first at ``line``.

    strictyaml would read such a text slowly (its work per node grows with the depth, and ruamel's
    scanner with the number of open flow collections) or not at all (its parser recurses): the
    caller refuses it instead (no manifest nests anywhere near that deep).
    """

    def __init__(self, line: int) -> None:
        super().__init__(f"nesting deeper than {MAX_DEPTH} levels")
        self.line = line


def _nesting_limit(exc: yaml.MarkedYAMLError) -> int | None:
    """The line of libyaml's own nesting limit (1000 levels), which its scanner may reach before
    the parser yields the events that go past :data:`MAX_DEPTH`; None for any other error."""
    if exc.problem == "exceeded maximum nesting depth" and exc.problem_mark is not None:
        return int(exc.problem_mark.line) + 1
    return None


def parse(text: str, label: str) -> tuple[Any, dict[JsonPath, int]]:
    """The untyped tree of ``text`` as strictyaml reads it, and the 1-based line of every node.

    Lines are keyed by JSON path; a mapping key's path maps to the line of the key. Raises
    :class:`~floe.errors.ManifestError` for what strictyaml rejects, located as strictyaml locates
    it, and :class:`Fallback` where only strictyaml can say.
    """
    found = _UNSAFE.search(text)
    if found is not None and found.start() == 0 and found.group() == "\ufeff":
        found = _UNSAFE.search(text, 1)  # a byte order mark that starts the text is fine
    if found is not None:
        raise Fallback(f"character {found.group()!r}")
    try:
        return _Reader(text, label).read()
    except (ManifestError, Fallback):
        raise
    except yaml.MarkedYAMLError as exc:
        line = _nesting_limit(exc)
        if line is not None:
            raise TooDeep(line) from None
        raise Fallback(f"libyaml: {type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - libyaml's errors, encoding errors: strictyaml says
        raise Fallback(f"libyaml: {type(exc).__name__}") from None


class _Reader:
    """One pass over libyaml's events, building the tree, the lines and strictyaml's verdicts."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        # libyaml's marks count characters after a leading byte order mark
        self.source = text[1:] if text.startswith("\ufeff") else text
        self.label = label
        # The first tag, anchor or undefined alias: (message, line). strictyaml refuses it as its
        # parser reaches it, so it comes first among refusals.
        self.refusal: tuple[str, int] | None = None
        # Duplicate keys, as (level, key, line): strictyaml reports them after parsing, in the order
        # its constructor meets them (see _duplicate).
        self.duplicates: list[tuple[int, str, int]] = []
        # Empty plain scalars and block scalar headers with a comment: with comments around them,
        # ruamel's round-trip comment handling may fail (see _fragile).
        self.empty = False
        self.header_comment = False
        # The tree as it is built (see _document) and the line of every node.
        self.root: Any = None
        self.stack: list[list[Any]] = []
        self.lines: dict[JsonPath, int] = {(): 1}

    def read(self) -> tuple[Any, dict[JsonPath, int]]:
        parser = yaml.CBaseLoader(self.text)
        try:
            return self._read(parser)
        finally:
            parser.dispose()

    def _read(self, parser: yaml.CBaseLoader) -> tuple[Any, dict[JsonPath, int]]:
        get = parser.get_event
        event: Any = get()
        if event.__class__ is not StreamStartEvent:
            raise Fallback("no stream start")
        event = get()
        if event.__class__ is StreamEndEvent:
            return self.text, {(): 1}  # an empty document: strictyaml's data is the text
        if event.__class__ is not DocumentStartEvent:
            raise Fallback("no document start")
        if event.version is not None or event.tags:
            raise Fallback("directives")
        root, lines = self._document(get)
        event = get()
        if event.__class__ is not DocumentEndEvent:
            raise Fallback("no document end")
        event = get()
        another = event.__class__ is DocumentStartEvent
        if not another and event.__class__ is not StreamEndEvent:
            raise Fallback("no stream end")
        if self._fragile():
            raise Fallback("comments ruamel may fail on")
        if self.refusal is not None:
            self._reject(*self.refusal)
        if another:
            self._reject("but found another document", event.start_mark.line + 1)
        if self.duplicates:
            _, key, line = min(self.duplicates, key=lambda d: d[0])
            self._reject(f"Duplicate key '{key}' found", line)
        return root, lines

    def _document(self, get: Any) -> tuple[Any, dict[JsonPath, int]]:
        """The root node: one iterative pass, so deep nesting costs no Python stack.

        Each open collection has a frame on ``self.stack``: [container, path, is_mapping, pending
        key, level, deep, duplicate (key, line) awaiting its value]. A pending key of _NO_KEY means
        the next node is a key. Scalars, most of the events, are placed here; what may make
        strictyaml read one differently is looked at only when there is something to look at.
        """
        stack, lines = self.stack, self.lines
        flow = 0  # how many flow collections are open
        while True:
            event: Any = get()
            cls = event.__class__
            if cls is ScalarEvent:
                value: str = event.value
                if (
                    flow
                    or event.style
                    or not value
                    or value in _SPECIAL
                    or event.anchor is not None
                    or event.tag is not None
                ):
                    self._check_scalar(event, value, flow)
                if not stack:
                    raise Fallback("a scalar document")  # ruamel's block scalars may run on
                frame = stack[-1]
                if not frame[2]:
                    container = frame[0]
                    lines[frame[1] + (len(container),)] = event.start_mark.line + 1
                    container.append(value)
                    continue
                key = frame[3]
                if key is _NO_KEY:
                    if value in frame[0]:
                        frame[6] = (value, event.end_mark.line + 1)
                    lines[frame[1] + (value,)] = event.start_mark.line + 1
                    frame[3] = value
                    continue
                frame[0][key] = value
                frame[3] = _NO_KEY
                if frame[6] is not None:
                    self._duplicate(frame)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                if event.flow_style:
                    flow += 1
                self._open(event, cls is MappingStartEvent)
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                if flow:
                    flow -= 1  # flow collections nest only in flow collections
                if self._close():
                    return self.root, lines
            elif cls is AliasEvent:
                self._alias(event)
            else:
                raise Fallback(f"unexpected {cls.__name__}")

    def _check_scalar(self, event: Any, value: str, flow: int) -> None:
        """What may make strictyaml read a scalar otherwise: properties, its place in a flow
        collection, an empty plain scalar, a special one, a block scalar's header."""
        style = event.style
        if event.anchor is not None or event.tag is not None:
            self._properties(event, style)
        if flow:
            self._flow_scalar(event, value, style)
        if not style:
            if not value:
                self.empty = True
            elif value in _SPECIAL:
                raise Fallback(f"plain scalar {value!r}")
        elif style in "|>":
            header = _HEADER.match(self.source, event.start_mark.index)
            if header is None:
                raise Fallback("block scalar header")
            if header.group(1):
                self.header_comment = True

    def _open(self, event: Any, is_mapping: bool) -> None:
        """A mapping or a sequence starts: the root, an item, or the value of the pending key."""
        if event.anchor is not None or event.tag is not None:
            self._properties(event, None)
        new: dict[str, Any] | list[Any] = {} if is_mapping else []
        stack = self.stack
        if not stack:
            self.root = new
            stack.append([new, (), is_mapping, _NO_KEY, 0, is_mapping, None])
            return
        if len(stack) >= MAX_DEPTH:
            raise TooDeep(event.start_mark.line + 1)
        frame = stack[-1]
        path: JsonPath
        if frame[2]:
            key = frame[3]
            if key is _NO_KEY:
                raise Fallback("a collection as a mapping key")
            path = frame[1] + (key,)
            frame[0][key] = new
        else:
            container = frame[0]
            path = frame[1] + (len(container),)
            self.lines[path] = event.start_mark.line + 1
            container.append(new)
        deep = frame[5]
        level = frame[4] if deep else frame[4] + 1
        stack.append([new, path, is_mapping, _NO_KEY, level, deep or is_mapping, None])

    def _close(self) -> bool:
        """A collection ends; whether it was the root."""
        stack = self.stack
        stack.pop()
        if not stack:
            return True
        frame = stack[-1]
        if frame[2]:
            frame[3] = _NO_KEY
            if frame[6] is not None:
                self._duplicate(frame)
        return False

    def _alias(self, event: Any) -> None:
        """An alias: any anchor before it is refused first, so this alias is undefined. Reading on,
        it stands for a scalar that cannot be a duplicate key."""
        if self.refusal is None:
            if not _ANCHOR.match(self.source, event.start_mark.index):
                raise Fallback("an alias ruamel may scan differently")
            self.refusal = (f"found undefined alias {event.anchor!r}", event.start_mark.line + 1)
        if not self.stack:
            raise Fallback("a scalar document")
        frame = self.stack[-1]
        if frame[2]:
            frame[3] = _NO_KEY if frame[3] is not _NO_KEY else object()
        else:
            frame[0].append("")

    def _flow_scalar(self, event: Any, value: str, style: str) -> None:
        """Fall back where ruamel may place a ``:`` of a flow collection unlike libyaml.

        ruamel's YAML 1.2 rules for ``:`` in flow context (inside plain scalars, right after a key,
        before ``,]}``, as an empty key) differ from libyaml's; with a space after every ``:`` and
        no empty nodes, they agree.
        """
        if not style and (not value or ":" in value or "?" in value):
            raise Fallback("an empty plain scalar, or one with ':' or '?', in a flow collection")
        if _ADJACENT.match(self.source, event.end_mark.index):
            raise Fallback("':' without a space in a flow collection")

    def _duplicate(self, frame: list[Any]) -> None:
        """Record the duplicate key of ``frame`` now that its value is complete.

        strictyaml's constructor checks a key after constructing its value, depth first below a
        mapping; below a root sequence it defers each collection to a later round, one round per
        level of sequences (``level``). Reporting the first duplicate by (level, completion)
        reproduces the order in which it raises.
        """
        key, line = frame[6]
        frame[6] = None
        self.duplicates.append((frame[4], key, line))

    def _properties(self, event: Any, style: str | None) -> None:
        """A tag or an anchor: strictyaml's scanner refuses the first one written, at its line."""
        if self.refusal is not None:
            return
        if style and style in "|>":
            raise Fallback("properties on a block scalar")  # ruamel scans its header first
        mark = event.start_mark
        if _TAG.match(self.source, mark.index):
            self.refusal = (TAG, mark.line + 1)
        elif _ANCHOR.match(self.source, mark.index):
            self.refusal = (ANCHOR, mark.line + 1)
        else:
            raise Fallback("a tag or an anchor ruamel may scan differently")

    def _fragile(self) -> bool:
        """Whether ruamel's round-trip comment handling may fail on this text.

        ruamel keeps comments and blank lines as tokens and moves them between nodes; next to empty
        nodes, dangling ``-``/``?`` indicators, block scalar headers with a comment, or duplicate
        keys, that can fail (NotImplementedError "overlap in comment", TypeError) where libyaml
        reads the text fine. Without comments and blank lines there is nothing to move.
        """
        if not _COMMENTS.search(self.text):
            return False
        return bool(self.empty or self.header_comment or self.duplicates or _DANGLING.search(self.text))

    def _reject(self, what: str, line: int) -> None:
        raise ManifestError([Problem(problem_message(what), self.label, line, fix=FIX)])
