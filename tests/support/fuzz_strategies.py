"""Hypothesis strategies for manifest fuzzing: random YAML, tree mutations, text and byte mutations.

Structured mutations start from a valid manifest read as a plain tree (dicts, lists, scalars),
change it the way people get manifests wrong (a key dropped, renamed or duplicated; a scalar where a
list belongs; a huge string; nesting far too deep) and write it back as YAML in a random style.
Text and byte mutations then break what YAML itself is made of: tabs, byte order marks, NEL/LS/PS,
CR and CRLF line ends, anchors, aliases, tags, directives, truncation, invalid UTF-8.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

JsonPath = tuple[str | int, ...]

SCHEMA_KEYS = [
    "apiVersion",
    "kind",
    "scope",
    "metadata",
    "name",
    "owner",
    "description",
    "parent",
    "platform",
    "plugins",
    "compute",
    "approved",
    "default",
    "engine",
    "config",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "environments",
    "overrides",
    "transforms",
    "type",
    "path",
    "catalog",
    "uri",
    "warehouse",
    "token",
    "secret_ref",
    "password",
    "threads",
    "memory_limit",
    "schema",
    "settings",
    "extensions",
    "read_only",
    "access_delegation",
    "client_secret",
]
ODD_KEYS = [
    "",
    " ",
    "Kind",
    "kind ",
    "apiversion",
    "<<",
    "=",
    "?",
    "-",
    "a b",
    "é",
    "𝄞",
    "1",
    "true",
    "null",
    "~",
    "x" * 300,
    "$ref",
    "../x",
    "a.b",
    "a/b",
    "#",
    "'q'",
]
# Files hold UTF-8: no lone surrogates (byte-level damage is mutated_bytes' job).
CHARS = st.characters(codec="utf-8")
KEYS = st.sampled_from(SCHEMA_KEYS) | st.sampled_from(ODD_KEYS) | st.text(CHARS, min_size=1, max_size=8)

WORDS = [
    "floe.dev/v1",
    "floe.dev/v2",
    "Manifest",
    "DataProduct",
    "manifest",
    "enterprise",
    "domain",
    "duckdb",
    "duckdb-large",
    "spark",
    "nope",
    "dbt",
    "dev",
    "prod",
    "rest",
    "sql",
    "8GB",
    "8Gi",
    "500m",
    "2",
    "models/staging/",
    "models/marts/",
    "models",
    ".",
    "..",
    "../..",
    "../../..",
    "/",
    "/etc",
    "/etc/passwd",
    "~",
    "~/x",
    "models/../../x",
    "models/./staging",
    "\x00",
    "a\x00b",
    "\n",
    "\t",
    " ",
    "",
    "null",
    "Null",
    "~",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "False",
    "0",
    "1",
    "-1",
    "+1",
    "0x10",
    "0o7",
    "1_000",
    "1e309",
    "-1e309",
    ".inf",
    "-.inf",
    ".nan",
    "1.5",
    "4294967296",
    "9" * 400,
    "{{ env_var('X') }}",
    "${X}",
    "%",
    "@x",
    "`x`",
    "!x",
    "&x",
    "*x",
    "|",
    ">",
    "- x",
    "? x",
    "a: b",
    "[a]",
    "{a: b}",
    "é",
    "𝄞",
    "\u00a0",
    "\u0085",
    "\u2028",
    "\ufeff",
    "\ud7ff",
    "x" * 1100,
    "é" * 600,
]
# No random "/" or "~": an engine setting such as DuckDB's `path` makes its folder at compile time,
# and a random absolute path must not create folders outside the fuzz directory.
SCALARS = (
    st.sampled_from(WORDS)
    | st.text(st.characters(codec="utf-8", exclude_characters="/~"), max_size=12)
    | st.integers(-(2**70), 2**70)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
)


def nested(depth: int, leaf: Any, mapping: bool) -> Any:
    for i in range(depth):
        leaf = {f"k{i}": leaf} if mapping else [leaf]
    return leaf


VALUES = (
    st.recursive(
        SCALARS,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
        max_leaves=12,
    )
    | st.builds(nested, st.integers(10, 80), SCALARS, st.booleans())
    | st.builds(
        lambda n, c: c * n, st.sampled_from([1_000, 20_000, 100_000]), st.sampled_from(["a", "é", " ", "\\"])
    )
    | st.builds(lambda name: {"secret_ref": name}, st.sampled_from(["PASSWORD", "lower", "", "A" * 200]))
    | st.builds(lambda n: list(range(n)), st.sampled_from([0, 1, 500]))
)


def paths(tree: Any, here: JsonPath = ()) -> list[JsonPath]:
    """Every node's path, root first."""
    out = [here]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.extend(paths(value, here + (key,)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            out.extend(paths(value, here + (index,)))
    return out


def _node(tree: Any, path: JsonPath) -> Any:
    for part in path:
        tree = tree[part]
    return tree


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any, max_changes: int = 4) -> Any:
    """``tree`` (a parsed manifest) with 1–``max_changes`` structural changes."""
    import copy

    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, max_changes))):
        candidates = paths(tree)
        path = draw(st.sampled_from(candidates))
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "replace",
                    "replace",
                    "rename",
                    "add",
                    "duplicate",
                    "wrap_list",
                    "wrap_map",
                    "unwrap",
                ]
            )
        )
        if not path:
            if op in ("replace", "wrap_list", "wrap_map"):
                tree = draw(VALUES) if op == "replace" else ([tree] if op == "wrap_list" else {"x": tree})
            continue
        parent, last = _node(tree, path[:-1]), path[-1]
        if op == "drop":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(VALUES)
        elif op == "rename" and isinstance(parent, dict):
            key = draw(KEYS)
            items = [(key if k == last else k, v) for k, v in parent.items()]
            parent.clear()
            parent.update(items)
        elif op == "add":
            target = parent[last]
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(VALUES)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(VALUES))
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        elif op == "wrap_list":
            parent[last] = [parent[last]]
        elif op == "wrap_map":
            parent[last] = {draw(KEYS): parent[last]}
        elif op == "unwrap":
            value = parent[last]
            if isinstance(value, (dict, list)) and value:
                parent[last] = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return tree


@st.composite
def rendered(draw: st.DrawFn, tree: Any) -> str:
    """``tree`` as YAML text in a random but valid style."""
    return yaml.dump(
        tree,
        Dumper=yaml.CSafeDumper,
        default_flow_style=draw(st.sampled_from([False, None, True])),
        indent=draw(st.integers(2, 5)),
        width=draw(st.sampled_from([40, 80, 10_000])),
        allow_unicode=draw(st.booleans()),
        sort_keys=False,
        explicit_start=draw(st.booleans()),
    )


# -- text mutations ----------------------------------------------------------------------------------

SPECIAL = [
    "\t",
    "\ufeff",
    "\u0085",
    "\u2028",
    "\u2029",
    "\r",
    "\r\n",
    "\x00",
    "\x07",
    "\x1b",
    "\ud7ff",
    "\ue000",
    "\ufffe",
    "#",
    ":",
    ": ",
    "- ",
    "? ",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "!!str ",
    "!t ",
    "<<: *a\n",
    "%YAML 1.2\n",
    "%TAG ! x\n",
    "|",
    ">-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "\\",
    "@",
    "`",
    "%",
    "\u00a0",
    "é",
    "𝄞",
    "  ",
    "\n",
    "\n\n",
    "# c\n",
]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


@st.composite
def mutated_text(draw: st.DrawFn, text: str, max_changes: int = 3) -> str:
    """``text`` with 1–``max_changes`` changes to its characters and lines."""
    for _ in range(draw(st.integers(1, max_changes))):
        op = draw(
            st.sampled_from(
                [
                    "insert",
                    "insert",
                    "indent_tab",
                    "duplicate_line",
                    "delete_line",
                    "swap_lines",
                    "indent",
                    "truncate",
                    "crlf",
                    "cr",
                    "bom",
                    "anchor",
                    "alias",
                    "merge",
                    "tag",
                    "document",
                    "long_line",
                    "more_lines",
                ]
            )
        )
        lines = _lines(text)
        at = draw(st.integers(0, len(lines) - 1))
        if op == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.sampled_from(SPECIAL) | st.text(CHARS, max_size=3)) + text[pos:]
        elif op == "indent_tab":
            lines[at] = (
                "\t" + lines[at].lstrip(" ") if draw(st.booleans()) else lines[at].replace(": ", ":\t", 1)
            )
            text = "".join(lines)
        elif op == "duplicate_line":  # the usual way to get a duplicate key
            lines.insert(at, lines[at] if lines[at].endswith("\n") else lines[at] + "\n")
            text = "".join(lines)
        elif op == "delete_line":
            del lines[at]
            text = "".join(lines)
        elif op == "swap_lines":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
            text = "".join(lines)
        elif op == "indent":
            shift = draw(st.integers(-3, 3))
            lines[at] = (
                " " * shift + lines[at]
                if shift > 0
                else lines[at][-shift:]
                if lines[at][:-shift].isspace()
                else lines[at]
            )
            text = "".join(lines)
        elif op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif op == "crlf":
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        elif op == "cr":
            text = text.replace("\n", "\r")
        elif op == "bom":
            text = "\ufeff" + text if draw(st.booleans()) else text.replace("\n", "\n\ufeff", 1)
        elif op in ("anchor", "alias", "merge", "tag"):
            head, colon, tail = lines[at].partition(": ")
            if colon:
                prop = {
                    "anchor": "&a ",
                    "alias": "*a",
                    "merge": "*a\n<<: *a",
                    "tag": draw(st.sampled_from(["!!str ", "!!map ", "!x ", "! "])),
                }[op]
                lines[at] = head + colon + (prop if op in ("alias", "merge") else prop + tail)
                if op in ("alias", "merge") and not lines[at].endswith("\n"):
                    lines[at] += "\n"
                if op == "anchor" and draw(st.booleans()):
                    lines.append(f"{head.strip() or 'x'}2: *a\n")
            text = "".join(lines)
        elif op == "document":
            marker = draw(st.sampled_from(["---\n", "--- |\n", "...\n", "%YAML 1.1\n---\n", "---\n---\n"]))
            lines.insert(at, marker)
            text = "".join(lines)
        elif op == "long_line":
            filler = draw(st.sampled_from(["a", "[", "{", "- ", "a: ", " ", "'", "#"]))
            lines.insert(at, "x: " + filler * (draw(st.integers(100, 3_000)) // len(filler)) + "\n")
            text = "".join(lines)
        elif op == "more_lines":
            line = draw(st.sampled_from(["k{}: v\n", "- {}\n", "  k{}: v\n", "#{}\n", "\n", "k: {}\n"]))
            lines.insert(at, "".join(line.format(i) for i in range(draw(st.integers(2, 200)))))
            text = "".join(lines)
    return text


INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3\x28",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\xf8\x88\x80\x80\x80",
    b"\x00",
]


@st.composite
def mutated_bytes(draw: st.DrawFn, text: str) -> bytes:
    """``text`` encoded, then damaged at the byte level (or encoded otherwise than UTF-8)."""
    op = draw(st.sampled_from(["invalid", "invalid", "utf16", "utf16bom", "latin1", "utf8bom_twice", "nul"]))
    if op == "utf16":
        return text.encode("utf-16-le")
    if op == "utf16bom":
        return text.encode("utf-16")
    if op == "latin1":
        return (text + "\ncafé: é\n").encode("latin-1", errors="replace")
    data = text.encode("utf-8", errors="surrogatepass")
    if op == "utf8bom_twice":
        return b"\xef\xbb\xbf\xef\xbb\xbf" + data
    pos = draw(st.integers(0, len(data)))
    insert = draw(st.sampled_from(INVALID_UTF8)) if op == "invalid" else b"\x00"
    return data[:pos] + insert + data[pos:]


def random_yaml_text(kinds: tuple[str, ...] = ("Manifest", "DataProduct")) -> st.SearchStrategy[str]:
    """Random YAML-ish text: valid YAML of random trees, random lines of YAML characters, or both."""
    header = st.sampled_from(
        ["", *(f"kind: {k}\n" for k in kinds), *(f"apiVersion: floe.dev/v1\nkind: {k}\n" for k in kinds)]
    )
    structured = st.builds(
        lambda head, tree, flow: (
            head
            + yaml.dump(
                tree, Dumper=yaml.CSafeDumper, default_flow_style=flow, allow_unicode=True, sort_keys=False
            )
        ),
        header,
        VALUES,
        st.sampled_from([False, None, True]),
    )
    line_chars = st.sampled_from(
        list("abk019 -:?#[]{},'\"&*!|>%@`\\=<~.\t") + ["é", "\u2028", "\ufeff", "\r"]
    )
    noise = st.builds(
        lambda head, lines: head + "\n".join(lines) + "\n",
        header,
        st.lists(st.text(line_chars, max_size=20), max_size=15),
    )
    return structured | noise


HUGE_FILLERS = ["a", "é", "[", "{", "[a, ", "{a: ", " ", "''", "#", "\\", "a: ", "&a ", "!t ", "? ", "|"]


@st.composite
def huge_text(draw: st.DrawFn, text: str) -> str:
    """``text`` made huge: a line, a value or a list of up to a megabyte, tens of thousands of lines,
    thousands of nesting levels.

    What libyaml reads fine (or refuses early) may be a megabyte. A text strictyaml must read -
    made so by a tab, or whose error libyaml finds only far into it - stays within some tens of
    kilobytes: strictyaml reads it in linear time, but at some 10-25 µs a byte.
    """
    slow = draw(st.booleans())  # a tab sends the whole text to strictyaml
    limit = 60_000 if slow else 1_000_000
    size = draw(st.sampled_from([limit // 8, limit // 2, limit]))  # integers() would favour small
    op = draw(st.sampled_from(["line", "lines", "value", "key", "flow_depth", "block_depth", "list"]))
    if op == "line":
        filler = draw(st.sampled_from(HUGE_FILLERS))
        huge = "x: " + filler * (size // len(filler)) + "\n"
    elif op == "lines":
        line = draw(st.sampled_from(["k{}: v\n", "- {}\n", "#{}\n", "\n", "k: {}\n", "k{}: [{}]\n"]))
        huge = "".join(line.format(i, i) for i in range(size // 40))
    elif op == "value":
        huge = "description: " + draw(st.sampled_from(["", "'", '"'])) + "v" * size + "\n"
    elif op == "key":  # libyaml and ruamel both read a plain scalar to its end before refusing it
        huge = "k" * min(size, 100_000) + ": v\n"
    elif op == "flow_depth":
        depth = min(size, 100_000)
        huge = "x: " + "[" * depth + "]" * depth * draw(st.integers(0, 1)) + "\n"
    elif op == "block_depth":
        huge = "".join(" " * i + f"k{i}:\n" for i in range(min(int(size**0.5), 2_000)))
    else:
        huge = "transforms:\n" + "".join(
            f"  - {{type: dbt, path: models/t{i}/}}\n" for i in range(size // 32)
        )
    text = text if text.endswith("\n") else text + "\n"
    return ("#\t\n" if slow else "") + text + huge
