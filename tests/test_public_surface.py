"""floe's public surface, held against ``tests/public_surface.json`` so that a change to it is
deliberate: the names each public module exports and their signatures.

The public modules are the ones ``floe/__init__.py``'s docstring lists; every other module is
internal. A change that adds, removes or re-types a public name fails here until the expected file
is rewritten with it (``python tests/test_public_surface.py --write``) and the diff is reviewed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

import floe

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = Path(__file__).with_name("public_surface.json")
EXAMPLE = ROOT / "examples/floe-engine-postgres"
ENGINE_MODULES = {"floe.enginekit", "floe.testing"}
"""What an engine's package imports of floe."""
TEST_MODULES = {*ENGINE_MODULES, "floe"}
"""What an engine's tests import of floe: the engine modules, and the embedding API (its tests run
a product through ``floe.run``, and find the engine with ``floe.EngineRegistry``)."""
WITH_SIGNATURES = ("floe", "floe.enginekit", "floe.hookspecs")
"""The modules whose names are held with their signatures (``floe.testing``'s test classes are
held by name: their test methods are the suite's own business)."""


def documented_modules() -> list[str]:
    """The public modules ``floe``'s docstring lists (``- ``floe.x``: …`` lines)."""
    return re.findall(r"^- ``(floe(?:\.\w+)*)``:", floe.__doc__ or "", re.MULTILINE)


def _signature(value: Any) -> str:
    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(…)"


def describe(value: Any) -> Any:
    """What the expected file holds of one public name."""
    if inspect.isclass(value):
        members = {
            name: _member(member)
            for name, member in sorted(vars(value).items())
            if not name.startswith("_") and _member(member) is not None
        }
        bases = [f"{base.__module__}.{base.__qualname__}" for base in value.__bases__]
        return {"class": _signature(value), "bases": bases, "members": members}
    if inspect.isroutine(value):
        return f"def {_signature(value)}"
    if isinstance(value, (str, int, float, bool, re.Pattern)):
        return repr(value)
    return type(value).__qualname__ if not hasattr(value, "__origin__") else repr(value)


def _member(member: Any) -> str | None:
    if isinstance(member, property):
        return "property"
    if isinstance(member, (staticmethod, classmethod)):
        return f"{type(member).__name__} {_signature(member.__func__)}"
    if inspect.isfunction(member):
        return f"def {_signature(member)}"
    return None


def surface() -> dict[str, Any]:
    """Every public module's names, with signatures where :data:`WITH_SIGNATURES` says."""
    found: dict[str, Any] = {}
    for name in documented_modules():
        module = importlib.import_module(name)
        if name == "floe.hookspecs":  # the hooks are its surface: it exports nothing to import
            names = sorted(
                n for n, v in vars(module).items() if n.startswith("floe_") and inspect.isfunction(v)
            )
        else:
            names = sorted(module.__all__)
        if name in WITH_SIGNATURES:
            found[name] = {n: describe(getattr(module, n)) for n in names if n != "__version__"}
        else:
            found[name] = names
    return found


def test_the_docstring_lists_the_public_modules() -> None:
    assert documented_modules() == ["floe", "floe.enginekit", "floe.hookspecs", "floe.testing"]


def test_public_surface_is_as_expected() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    actual = json.loads(json.dumps(surface()))
    for module in sorted(set(expected) | set(actual)):
        now, before = actual.get(module) or {}, expected.get(module) or {}
        if isinstance(now, list) or isinstance(before, list):
            changed = sorted(set(now) ^ set(before))
        else:
            changed = sorted(n for n in set(now) | set(before) if now.get(n) != before.get(n))
        assert not changed, (
            f"the public surface of {module} changed at {changed}; if that is deliberate, run "
            "`python tests/test_public_surface.py --write` and review the diff"
        )


def test_every_exported_name_resolves_and_all_is_complete() -> None:
    for name in ("floe", "floe.enginekit", "floe.testing"):
        module = importlib.import_module(name)
        assert len(set(module.__all__)) == len(module.__all__), name
        for exported in module.__all__:
            assert getattr(module, exported) is not None, f"{name}.{exported}"
    import floe.enginekit as kit

    defined_here = {
        n
        for n, v in vars(kit).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and getattr(v, "__module__", "floe.enginekit") in ("floe.enginekit", None)
    }
    imported = set()
    for node in ast.parse(Path(kit.__file__).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("floe"):
            imported |= {alias.asname or alias.name for alias in node.names}
    missing = sorted((defined_here | imported) - set(kit.__all__) - {"annotations"})
    assert not missing, (
        f"floe.enginekit defines or imports these for engines but does not export them: {missing}"
    )


def test_every_exported_error_is_raised_somewhere() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "floe").rglob("*.py"))
    for name in ("floe", "floe.enginekit"):
        module = importlib.import_module(name)
        for exported in module.__all__:
            value = getattr(module, exported)
            if inspect.isclass(value) and issubclass(value, Exception):
                raised = re.search(rf"raise {exported}\(|\b{exported}\(\[|-> {exported}\b", sources)
                subclassed = any(
                    exported in {b.__name__ for b in sub.__mro__[1:]} and sub is not value
                    for sub in _subclasses(value)
                )
                assert raised or subclassed, f"{name}.{exported} is exported but nothing raises it"


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _floe_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "floe":
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.split(".")[0] == "floe"}
    return modules


def _imported(folder: Path) -> dict[str, list[str]]:
    files = sorted(folder.rglob("*.py"))
    assert files, folder
    return {
        module: sorted(str(p.relative_to(ROOT)) for p in files if module in _floe_imports(p))
        for p in files
        for module in _floe_imports(p)
    }


def test_the_example_engine_imports_floe_only_through_the_engine_modules() -> None:
    package = _imported(EXAMPLE / "floe_engine_postgres")
    assert "floe.enginekit" in package
    assert {m: f for m, f in package.items() if m not in ENGINE_MODULES} == {}
    tests = _imported(EXAMPLE / "tests")
    assert "floe.testing" in tests
    assert {m: f for m, f in tests.items() if m not in TEST_MODULES} == {}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_public_surface.py --write")
    EXPECTED.write_text(json.dumps(surface(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
