"""floe's modules import one another in one direction, and governance imports no engine.

The graph is read from the source (every ``import`` of a floe module: at the top, under
``TYPE_CHECKING`` and inside functions, for each is a dependency a reader must follow), so a cycle
shows up whether or not Python would trip over it at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

FLOE = Path(__file__).resolve().parents[1] / "floe"

LEFT_FOR_THE_RUN_SIDE = (frozenset({"floe.execution.parse", "floe.execution.plan"}),)
"""A cycle between the plan and the parse, through imports inside functions (the engines' run and
bridge helpers import their engine's settings module, not the engine)."""

ENGINE_SIDE = (
    "floe.plugins",
    "floe.compute",
    "floe.hookspecs",
    "floe.enginekit",
    "floe.engine_defaults",
    "floe.engines",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in FLOE.rglob("*.py"):
        parts = path.relative_to(FLOE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(tree: ast.AST, top_level_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module (with ``top_level_only``, not those inside functions)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not (top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))):
            pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """Each floe module and the floe modules it imports (``from floe import x`` imports ``floe.x``
    when ``x`` is a module, else the package ``floe``).

    The package ``floe`` itself imports nothing: its public names are loaded on first use, and the
    imports under its ``TYPE_CHECKING`` only tell type checkers what they are (a module importing
    ``floe.__version__`` does not import them)."""
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for statement in imports(ast.parse(path.read_text(encoding="utf-8")), top_level_only):
            if isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
            else:
                base = statement.module or ""
                if statement.level:
                    anchor = package.split(".")[: len(package.split(".")) - (statement.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in statement.names]
            for name in names:
                target = owner(name) if name.split(".")[0] == "floe" else None
                if target is not None and target != module:
                    targets.add(target)
        graph[module] = targets if module != "floe" else set()
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert "floe.documents" in graph["floe.chain"]
    assert "floe.schemas" in graph["floe.documents"]
    assert "floe.engines.duckdb.run" in graph["floe.engines.duckdb.engine"]  # imports inside functions
    assert "floe.engines.duckdb.run" not in import_graph(top_level_only=True)["floe.engines.duckdb.engine"]
    assert "floe.governance" in graph["floe.manifest_cache"]  # under TYPE_CHECKING
    assert "floe.manifest_cache" in graph["floe.chain"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_module_of_floe_imports_itself_back() -> None:
    found = [c for c in cycles(import_graph()) if c not in LEFT_FOR_THE_RUN_SIDE]
    assert found == [], [sorted(c) for c in found]


def test_no_cycle_even_counting_only_the_imports_at_the_top_of_modules() -> None:
    assert cycles(import_graph(top_level_only=True)) == []


def test_governance_imports_no_engine() -> None:
    """Governance is policy over typed manifests: what it needs, with what that needs, names no
    engine, no plugin machinery and no engine settings (typed in floe.engine_settings)."""
    graph = import_graph()
    reached, pending = set(), ["floe.governance"]
    while pending:
        module = pending.pop()
        if module not in reached:
            reached.add(module)
            pending.extend(graph[module])
    engine_side = sorted(m for m in reached if m.startswith(ENGINE_SIDE) or m == "floe.engine_settings")
    assert engine_side == []
