"""Differential tests: ``floe.fastyaml`` (libyaml's events) against strictyaml's ``dirty_load``.

strictyaml is the reference for what a manifest means. For every text hypothesis makes, one of:

* both accept, with the same untyped tree (types and key order included) and the same line for
  every JSON path (strictyaml's lines read as ``floe.documents._lines`` reads them);
* fastyaml raises ``Fallback`` (the caller then parses with strictyaml);
* both reject, and fastyaml's problem carries strictyaml's message and line.

Texts are generated structurally (block and flow collections, every scalar style, comments, blank
lines, indentation variants, document markers, line endings, node properties) and by mutating the
example manifests (tabs, duplicated lines, anchors, tags, truncation, stray characters).
``FASTYAML_EXAMPLES=10`` multiplies the example counts for a longer local run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import strictyaml as sy
from hypothesis import HealthCheck, currently_in_test_context, given, settings
from hypothesis import strategies as st
from strictyaml.ruamel.error import MarkedYAMLError

from floe import fastyaml
from floe.documents import _lines
from floe.errors import ManifestError

LABEL = "floe.yaml"
ROOT = Path(__file__).resolve().parent.parent
SCALE = int(os.environ.get("FASTYAML_EXAMPLES", "1"))


def budget(examples: int) -> settings:
    """Example counts keep each test well under 40 s on two cores."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# -- the property ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    tree: Any
    lines: dict[tuple[str | int, ...], int]


@dataclass(frozen=True)
class Rejected:
    message: str | None
    line: int | None


def canonical(value: Any) -> Any:
    """A comparable form that tells types and key order apart (``str`` subclasses count as ``str``)."""
    if isinstance(value, dict):
        return ("map", tuple((canonical(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("seq", tuple(canonical(v) for v in value))
    if isinstance(value, str):
        return ("str", str(value))
    return (type(value).__name__, repr(value))


def reference(text: str) -> Accepted | Rejected:
    """strictyaml's verdict, as ``floe.documents._parse`` reads it."""
    try:
        doc = sy.dirty_load(text, sy.Any(), label=LABEL, allow_flow_style=True)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").strip()
        return Rejected(fastyaml.problem_message(what), mark.line + 1 if mark is not None else None)
    except Exception:  # noqa: BLE001 - strictyaml raises a few bare errors; floe reports them without a line
        return Rejected(None, None)
    return Accepted(canonical(doc.data), _lines(doc))


def event(label: str) -> None:
    if currently_in_test_context():
        hypothesis.event(label)


def check(text: str) -> None:
    """The differential property for one text."""
    try:
        tree, lines = fastyaml.parse(text, LABEL)
    except fastyaml.Fallback as exc:
        event(f"fallback: {str(exc).split(':')[0]}")
        return
    except ManifestError as exc:
        expected = reference(text)
        (problem,) = exc.problems
        event(f"rejected: {problem.message[:40]}")
        assert isinstance(expected, Rejected), (
            f"fastyaml rejected what strictyaml accepts\n{text!r}\n{problem}"
        )
        assert (problem.message, problem.line) == (expected.message, expected.line), (
            f"rejected differently\n{text!r}\nfastyaml:   {problem.message} @ {problem.line}\n"
            f"strictyaml: {expected.message} @ {expected.line}"
        )
        assert problem.file == LABEL and problem.fix
        return
    expected = reference(text)
    assert isinstance(expected, Accepted), (
        f"fastyaml accepted what strictyaml rejects\n{text!r}\nstrictyaml: {expected}\nfastyaml: {tree!r}"
    )
    event("accepted")
    assert canonical(tree) == expected.tree, (
        f"trees differ\n{text!r}\nstrictyaml: {expected.tree}\nfastyaml: {tree!r}"
    )
    assert lines == expected.lines, (
        f"lines differ\n{text!r}\nstrictyaml: {expected.lines}\nfastyaml:   {lines}"
    )


# -- structural generation ---------------------------------------------------------------------------
# Every strategy takes ``chaos``: at 0 texts are mostly valid YAML made of ordinary words (so both
# parsers accept them and trees and lines are compared); higher levels mix in special characters,
# node properties, odd indentation and spacing, which strictyaml and libyaml may read differently.

PLAIN_WORDS = [
    "a",
    "b",
    "name",
    "path",
    "type",
    "x y",
    "1",
    "0.5",
    "on",
    "no",
    "null",
    "~",
    "-a",
    "a-b",
    "é",
    "𝄞",
    "duckdb",
    "models/t0001/",
    "k:v",
    "a#b",
    "2001-12-14",
    "0x1F",
    ".inf",
    "a b  c",
    "it's",
    "floe.dev/v1",
    "8GB",
    "-1",
    "+1",
    "a.b",
    "x_y",
    "true",
    "NULL",
    "ü ß",
]
ODD_WORDS = [
    "a, b",
    "a]",
    "a}",
    "=",
    "<<",
    "-",
    "?",
    ":",
    "|",
    ">",
    "%",
    "@",
    "`",
    "!",
    "&",
    "*",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    "#",
    "\\",
    "---",
    "...",
    "- x",
    "? x",
    "a: b",
    " lead",
    "trail ",
    "a #b",
    "[a]",
    "{a: b}",
    "%x",
    "@x",
    "`x",
    "a\u00a0b",
    "\u00a0",
    "x" * 1030,
    "é" * 520,
    "a\u0085b",
    "a\u2028b",
]
SCALAR_CHARS = st.sampled_from(list("abcxyz019 _.-+/~:#?,[]{}'\"&*!|>%@`\\=<é☺𝄞\u00a0") + ["\n", "  "])
ESCAPES = [
    "\\n",
    "\\t",
    "\\\\",
    '\\"',
    "\\/",
    "\\x41",
    "\\u263a",
    "\\U0001d11e",
    "\\0",
    "\\a",
    "\\b",
    "\\e",
    "\\f",
    "\\r",
    "\\v",
    "\\N",
    "\\_",
    "\\L",
    "\\P",
    "\\ ",
    "\\\n",
    "\\q",
    "\\x4",
    "\\u12",
]
BLOCK_ROWS = [
    "x",
    "y z",
    "",
    " more",
    "  deeper",
    "#no comment",
    "a: b",
    "- c",
    "   ",
    "\u00a0nbsp",
    "'q'",
    "}",
]


def chance(draw: st.DrawFn, chaos: int, per: int = 8) -> bool:
    """True now and then, more often as chaos grows (never at chaos 0)."""
    return chaos > 0 and draw(st.integers(0, per)) < chaos


@st.composite
def words(draw: st.DrawFn, chaos: int) -> str:
    if chance(draw, chaos, 6):
        return draw(st.one_of(st.sampled_from(ODD_WORDS), st.lists(SCALAR_CHARS, max_size=8).map("".join)))
    return draw(st.sampled_from(PLAIN_WORDS))


@st.composite
def scalars(draw: st.DrawFn, indent: int, flow: bool, chaos: int) -> str:
    """A scalar as written after ``key: `` or ``- `` at ``indent``, in one of YAML's styles."""
    text = draw(words(chaos))
    style = draw(st.integers(0, 9))
    pad = " " * (indent + 1 + draw(st.integers(0, 2)) - (1 if chance(draw, chaos) else 0))
    if style <= 2:  # plain
        return text
    if style == 3:  # plain over several lines
        parts = draw(st.lists(st.sampled_from(PLAIN_WORDS[:20]), min_size=2, max_size=4))
        breaks = draw(st.sampled_from(["\n", "\n\n", "\n \n", "\n# c\n" if chaos else "\n"]))
        return (breaks + pad).join(parts)
    if style == 4:
        return "'" + text.replace("'", "'" if chance(draw, chaos) else "''") + "'"
    if style == 5:
        parts = draw(st.lists(st.one_of(st.sampled_from(ESCAPES), words(chaos)), max_size=4))
        body = "".join(p if p in ESCAPES else p.replace("\\", "\\\\").replace('"', '\\"') for p in parts)
        return '"' + body + '"'
    if style == 6:  # quoted over several lines
        quote = draw(st.sampled_from(["'", '"']))
        parts = draw(st.lists(st.sampled_from(PLAIN_WORDS[:12]), min_size=2, max_size=3))
        breaks = draw(st.sampled_from(["\n", "\n\n", " \n", "\n\n\n", "\\\n" if quote == '"' else "\n"]))
        return quote + (breaks + pad).join(parts) + quote
    if flow:
        return text
    # block scalars: literal or folded, chomping and indentation indicators, blank and more-indented lines
    head = draw(st.sampled_from(["|", ">"])) + draw(st.sampled_from(["", "-", "+", "2", "1-", "+1", "-3"]))
    if chance(draw, chaos):
        head += draw(st.sampled_from([" # c", "  ", "#", "0"]))
    body_pad = " " * (indent + draw(st.integers(1, 3)))
    rows = draw(st.lists(st.sampled_from(BLOCK_ROWS), max_size=5))
    body = "".join("\n" + (body_pad + row if row or draw(st.booleans()) else "") for row in rows)
    return head + body + draw(st.sampled_from(["", "\n", "\n\n", "\n" + body_pad]))


@st.composite
def keys(draw: st.DrawFn, chaos: int, used: set[str] | None = None) -> str:
    """A mapping key; with ``used``, one not used yet in its mapping (unless chaos decides)."""
    key = draw(
        st.sampled_from(
            [
                "a",
                "b",
                "c",
                "name",
                "path",
                "1",
                "x y",
                "'a'",
                '"b"',
                "'1'",
                "~",
                "null",
                "on",
                "é",
                "k-1",
                "'<<'",
                "a b",
                "a:b",
                "-x",
                "'x: y'",
                '"a\\tb"',
            ]
        )
    )
    if chance(draw, chaos):
        key = draw(
            st.sampled_from(["", "<<", "=", "-", "? a", "[a]", "{a: b}", "x" * 1030, "é" * 520, "a\n b"])
        )
    if used is not None:
        if key.strip("'\"") in used and not chance(draw, chaos):
            key = f"k{len(used)}"
        used.add(key.strip("'\""))
    return draw(properties(chaos)) + key


@st.composite
def properties(draw: st.DrawFn, chaos: int) -> str:
    """Now and then a tag or an anchor (strictyaml refuses both), or an alias."""
    if not chance(draw, chaos, 24):
        return ""
    return draw(
        st.sampled_from(
            [
                "&a ",
                "!!str ",
                "!x ",
                "! ",
                "&b !!int ",
                "!t &c ",
                "*a ",
                "&a\n  ",
                "!!map ",
                "&a:b ",
                "!<tag:x> ",
                "!e!x ",
                "*a:b ",
                "&é ",
            ]
        )
    )


@st.composite
def flows(draw: st.DrawFn, depth: int, indent: int, chaos: int) -> str:
    """A flow collection, sometimes over several lines."""
    mapping = draw(st.booleans())
    size = draw(st.integers(0, 3))
    inner = " " * (indent + 1)
    sep = draw(
        st.sampled_from([", ", ",", " , ", ",\n" + inner, ",\n" + inner + "# c\n" + inner, ",\n\n" + inner])
    )
    items = []
    used: set[str] = set()
    for _ in range(size):
        if depth < 3 and draw(st.integers(0, 3)) == 0:
            value = draw(flows(depth + 1, indent, chaos))
        else:
            value = draw(properties(chaos)) + draw(scalars(indent, True, chaos))
        if mapping or draw(st.integers(0, 5)) == 0:  # a pair in a sequence: `[a: b]`
            colon = draw(st.sampled_from([": ", ": ", " : ", ":\n" + inner] + ([":"] if chaos else [])))
            omit = draw(st.integers(0, 6)) == 0  # `{a, b: c}`
            explicit = "? " if draw(st.integers(0, 8)) == 0 else ""
            if omit and chance(draw, chaos, 3):
                colon, value, omit = draw(st.sampled_from([":", " :", ": "])), "", False  # `{a:, b}`
            items.append(explicit + draw(keys(chaos, used)) + ("" if omit else colon + value))
        else:
            items.append(value)
    trailing = draw(st.sampled_from(["", "", ",", " "])) if items else ""
    opening, closing = ("{", "}") if mapping else ("[", "]")
    return opening + draw(st.sampled_from(["", " ", "\n" + inner])) + sep.join(items) + trailing + closing


@st.composite
def blocks(draw: st.DrawFn, depth: int, indent: int, mapping: bool, chaos: int) -> list[str]:
    """The lines of a block collection at ``indent``."""
    out: list[str] = []
    pad = " " * indent
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 4))):
        for _ in range(draw(st.integers(0, 1))):
            out.append(
                draw(st.sampled_from(["", "# note", pad + "# indented note", "   ", "#", " " * (indent + 3)]))
            )
        if mapping:
            key = draw(keys(chaos, used))
            head = key + draw(st.sampled_from([":", ":", ":", " :"]))
            if draw(st.integers(0, 15)) == 0:
                head = "? " + key + "\n" + pad + ":"  # an explicit key
        else:
            head = "-"
        if chance(draw, chaos, 30):
            pad = " " * draw(st.integers(0, indent + 2))  # a misaligned entry
        kind = draw(st.integers(0, 9)) if depth < 4 else 0
        comment = draw(st.sampled_from(["", "", "", " # c", "  #c"] + (["#c"] if chaos else [])))
        if kind <= 4:
            value = draw(properties(chaos)) + draw(scalars(indent, False, chaos))
            space = " " if value else draw(st.sampled_from(["", " "]))
            out.append(pad + head + space + value + (comment if "\n" not in value else ""))
        elif kind <= 6:
            out.append(pad + head + " " + draw(properties(chaos)) + draw(flows(0, indent, chaos)) + comment)
        else:
            child_mapping = draw(st.booleans())
            step = draw(st.sampled_from([1, 2, 2, 2, 3, 4]))
            if not mapping and draw(st.booleans()):  # compact: `- a: 1` / `- - x`
                inner = draw(blocks(depth + 1, indent + 2, child_mapping, chaos))
                out.append(pad + "- " + inner[0].lstrip(" "))
                out.extend(inner[1:])
                continue
            if mapping and not child_mapping and draw(st.booleans()):
                step = 0  # an indentless sequence under a key
            out.append(pad + head + draw(properties(chaos)).rstrip("\n ") + comment)
            for _ in range(draw(st.integers(0, 1))):
                out.append(draw(st.sampled_from(["", " " * (indent + step) + "# c"])))
            out.extend(draw(blocks(depth + 1, indent + step, child_mapping, chaos)))
    return out


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """A whole YAML text: at chaos 0 mostly valid, otherwise often subtly wrong."""
    chaos = draw(st.sampled_from([0, 0, 1, 2, 4]))
    root = draw(st.integers(0, 19))
    if root <= 11:
        body = "\n".join(draw(blocks(0, 0, True, chaos)))
    elif root <= 15:
        body = "\n".join(draw(blocks(0, 0, False, chaos)))
    elif root <= 18:
        body = draw(flows(0, 0, chaos))
    else:
        body = draw(scalars(0, False, chaos))
    starts = ["", "", "", "", "---\n", "--- ", "# head\n", "\ufeff", "\n\n", "--- # c\n"]
    ends = ["", "\n", "\n", "\n", "\n...\n", "\n# end", "\n\n\n", "\n...", "\n# end\n\n"]
    if chaos:
        starts += ["%YAML 1.2\n---\n", "%TAG !e! tag:e.com,2000:\n---\n", "...\n", "---\n---\n"]
        ends += ["\n---\n", "\n--- x\n", "\n...\nx: 1\n", "\n---\n# c\n", "\n%YAML 1.2\n---\n"]
    text = draw(st.sampled_from(starts)) + body + draw(st.sampled_from(ends))
    newline = draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"]))
    return text.replace("\n", newline) if newline != "\n" else text


# -- mutations of real manifests ---------------------------------------------------------------------

EXAMPLES = sorted(p for p in ROOT.glob("examples/**/*.y*ml") if "target" not in p.parts)
BENCH_LIKE = (
    "\n".join(
        [
            "apiVersion: floe.dev/v1",
            "kind: DataProduct",
            "metadata: {name: bench-3, owner: bench}",
            "platform: ../platform/domains/bench.yaml",
            "transforms:",
        ]
        + [
            line
            for i in range(3)
            for line in ("  - type: dbt", f"    path: models/t{i:04d}/", "    compute: duckdb")
        ]
    )
    + "\n"
)
SOURCES = [p.read_text(encoding="utf-8") for p in EXAMPLES] + [BENCH_LIKE]
INSERTS = [
    "\t",
    " ",
    "  ",
    "\n",
    "\n  ",
    "- ",
    ": ",
    ":",
    "&a ",
    "*a",
    "*a ",
    "!!int ",
    "!x ",
    "! ",
    "#",
    " #",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "|\n",
    ">-\n",
    "|+\n",
    "\r",
    "\r\n",
    "\ufeff",
    "\x85",
    "\u2028",
    "\u2029",
    "\x00",
    "\x07",
    "\x7f",
    "\x9f",
    "é",
    "𝄞",
    "<<: ",
    "= ",
    "=",
    "@",
    "`",
    "%",
    "\\",
    "\u00a0",
    "\ud800",
    "x" * 1100,
    "é" * 600,
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 7))
        at = draw(st.integers(0, len(text)))
        lines = text.split("\n")
        row = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op <= 2:
            text = text[:at] + draw(st.sampled_from(INSERTS)) + text[at:]
        elif op == 3:  # delete a few characters
            text = text[:at] + text[at + draw(st.integers(1, 5)) :]
        elif op == 4:  # duplicate a line: duplicate keys, mostly
            lines.insert(row, lines[row])
            text = "\n".join(lines)
        elif op == 5:  # re-indent a line
            lines[row] = " " * draw(st.integers(0, 6)) + lines[row].lstrip(" ")
            text = "\n".join(lines)
        elif op == 6:
            text = text[:at]
        else:  # a random character
            text = text[:at] + draw(st.characters(codec="utf-8")) + text[at + 1 :]
    return text


# -- properties --------------------------------------------------------------------------------------


@budget(1200)
@given(text=yaml_texts())
def test_structured_yaml_agrees_with_strictyaml(text: str) -> None:
    check(text)


@budget(3000)
@given(text=mutated())
def test_mutated_manifests_agree_with_strictyaml(text: str) -> None:
    check(text)


SOUP = list("ab: -\n#'\"[]{},?&*!|>\t~") + ["  ", "\n  ", "- ", ": ", "\n- ", "\n? "]


@budget(2000)
@given(text=st.lists(st.sampled_from(SOUP), max_size=30).map("".join))
def test_token_soup_agrees_with_strictyaml(text: str) -> None:
    check(text)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_take_the_fast_path(path: Path) -> None:
    """The manifests floe ships parse without falling back, exactly as strictyaml reads them."""
    text = path.read_text(encoding="utf-8")
    tree, lines = fastyaml.parse(text, LABEL)
    expected = reference(text)
    assert isinstance(expected, Accepted)
    assert canonical(tree) == expected.tree and lines == expected.lines


TRICKY = [
    # strictyaml reports the duplicate its constructor meets first: depth first below a mapping, one
    # round per level of sequences below a root sequence
    "- - {a: 1, a: 2}\n- {b: 1, b: 2}\n",
    "- - a: 1\n    a: 2\n- b: 1\n  b: 2\n",
    "x:\n  a: 1\n  a: {c: 1, c: 2}\n",
    "- [{a: 1, a: 2}]\n- [[{b: 1, b: 2}]]\n- {c: 1, c: 2}\n",
    "a: 1\na: 2\nb: {c: 1, c: 2}\n",
    "- - - {a: 1, a: 2}\n  - {b: 1, b: 2}\n- - {c: 1, c: 2}\n",
    "'a': 1\n\"a\": 2\n",
    "? |-\n  a\n: 1\n? a\n: 2\n",
    # refusals: the first in the stream wins, whatever follows
    "a: !!str x\nb: &y z\n",
    "a: &y z\nb: !!str x\n",
    "a: *y\nb: &y z\n",
    "a: !!str x\nb: 1\nb: 2\n",
    "a: 1\na: 2\n---\nb: 1\n",
    # lines: compact, flow, multi-line, explicit keys, CRLF and CR line ends
    "a:\n- b: 1\n  c:\n    - [x,\n       y]\n-   - 1\n    - {z:\n        2}\n",
    "? a\n: - 1\n  - 2\nb: 'x\n\n  y'\nc: \"p\\\n  q\"\nd: |+\n  t\n\ne: >-\n  u\n  v\n",
    "a: 1\r\nb:\r\n  - x\r\n  - y\r\n",
    "a: 1\rb:\r  - x\r  - y\r",
    "\ufeffa: 1\nb: [x, y]\n",
    "# c\n\na: 1  # c\n\n\nb:\n  # c\n  c: 2\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts_agree_with_strictyaml(text: str) -> None:
    check(text)


@pytest.mark.parametrize("depth", [10, 39, 40, 41, 120])
@pytest.mark.parametrize("style", ["flow", "block", "sequence"])
def test_deep_nesting_agrees_or_falls_back(depth: int, style: str) -> None:
    text = {
        "flow": "a: " + "[" * depth + "x" + "]" * depth + "\n",
        "block": "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n",
        "sequence": "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "v\n",
    }[style]
    check(text)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", "invalid YAML: Duplicate key 'a' found", 3),
        (
            "a: 1\nb: !!int 2\n",
            "invalid YAML: Found disallowed tag tokens (do not specify types in markup)",
            2,
        ),
        ("a: &x 1\nb: *x\n", "invalid YAML: " + fastyaml.ANCHOR, 1),
        (
            "a: *x\n",
            "invalid YAML: `*name` refers to an anchor `&name` that is not defined above it "
            "(the parser says: found undefined alias 'x')",
            1,
        ),
        (
            "a: 1\n---\nb: 2\n",
            "invalid YAML: a second YAML document (after `---`): a floe file is one document "
            "(the parser says: but found another document)",
            2,
        ),
    ],
)
def test_rejections_match_strictyaml(text: str, message: str, line: int) -> None:
    with pytest.raises(ManifestError) as caught:
        fastyaml.parse(text, LABEL)
    (problem,) = caught.value.problems
    assert (problem.message, problem.file, problem.line) == (message, LABEL, line)
    assert reference(text) == Rejected(message, line)


@pytest.mark.parametrize(
    "text",
    [
        "a:\tb\n",
        "a: b\u2028c: d\n",
        "a: [\n",
        "<<: {b: 1}\n",
        "a: =\n",
        "[a]: x\n",
        "%YAML 1.1\n---\na: 1\n",
        "a: 1\n\ufeffb: 2\n",
        'a: ["s":]\n',
        "a: [b:, c]\n",
        "[[], ? :]\n",
        "a: |#\n",
        "x\n",
        "a:\n\n- \n\n",
    ],
)
def test_falls_back_where_libyaml_and_strictyaml_differ(text: str) -> None:
    with pytest.raises(fastyaml.Fallback):
        fastyaml.parse(text, LABEL)
