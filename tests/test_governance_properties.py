"""Property tests of compute governance (REQ-021…023) through the real compiler, on real files.

Hypothesis generates an enterprise manifest, a chain of 0–4 domain manifests below it and a data
product below the last one, writes them to a temporary directory and runs
:func:`floe.compiler.compile_path` on them. A small, independent model of the rules (narrowing
only, defaults inherited while still approved, selections from the effective list) predicts each
outcome, and the tests check floe agrees with it, including what its errors say.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from floe.compiler import Compiled, compile_path
from floe.errors import FloeError, GovernanceError, InvalidComputeError
from floe.plugins import EngineRegistry
from tests.support.engines import registry_with

# Compute names; ``spark-large`` is a second compute on the spark engine (name ≠ engine).
UNIVERSE = ("spark", "snowflake", "bigquery", "trino", "redshift", "databricks", "spark-large")
ENGINE_OF = {name: name for name in UNIVERSE} | {"spark-large": "spark"}
ENGINES = tuple(sorted(set(ENGINE_OF.values())))

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def budget(examples: int) -> settings:
    """Example counts keep the module well under a minute on two cores."""
    return settings(SETTINGS, max_examples=examples)


@functools.cache
def engines() -> EngineRegistry:
    """Discovering engines is not free: one registry for the whole module."""
    registry: EngineRegistry = registry_with(*ENGINES)
    assert set(ENGINES) <= set(registry.names())
    return registry


# -- the scenario: what is generated ------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One manifest of the chain; level 0 is the enterprise manifest."""

    approved: tuple[str, ...] | None  # None: no `approved:` (the level inherits its parent's list)
    default: str | None  # None: no `default:`
    forms: tuple[int, ...] = ()  # how each approved entry is spelled (see _entry)
    empty_block: int = 0  # without approved/default: 0 no `plugins`, 1 `plugins: {}`, 2 `compute: {}`
    flow: bool = False  # `approved: [a, b]` when every entry is a plain name


@dataclass(frozen=True)
class Scenario:
    levels: tuple[Level, ...]
    selections: tuple[str | None, ...]  # one per transform; None: the transform names no compute
    explicit_names: tuple[bool, ...] = ()  # transform j has `name: job-j` (else its name is its path)

    def transform_name(self, j: int) -> str:
        return f"job-{j}" if j < len(self.explicit_names) and self.explicit_names[j] else f"t{j}"


def manifest_name(level: int) -> str:
    return "acme" if level == 0 else f"domain-{level}"


# -- the model: what should happen ----------------------------------------------------------------


@dataclass
class Expected:
    effective: list[list[str]]  # the effective approved list after each level
    defaults: list[str | None]  # the effective default after each level
    removed_by: dict[str, int]  # compute → the level that removed it
    widening: list[tuple[int, str]]  # (level, compute) a level approves that its parent does not
    bad_defaults: list[tuple[int, str | None]]  # (level, default) a default that does not resolve
    invalid: list[tuple[int, str]]  # (transform, compute) selections outside the effective list
    problems: list[tuple[int, str, str | None]] = field(default_factory=list)
    """Every governance problem of the chain, as (level, kind, compute): see :data:`KINDS`."""

    @property
    def governance_ok(self) -> bool:
        return not self.widening and not self.bad_defaults

    @property
    def outcome(self) -> type[FloeError] | None:
        if not self.governance_ok:
            return GovernanceError
        return InvalidComputeError if self.invalid else None


def expect(levels: Sequence[Level], selections: Sequence[str | None] = ()) -> Expected:
    """The rules of REQ-021…023, written down independently of floe's implementation."""
    effective: list[list[str]] = []
    defaults: list[str | None] = []
    removed_by: dict[str, int] = {}
    widening: list[tuple[int, str]] = []
    bad_defaults: list[tuple[int, str | None]] = []
    problems: list[tuple[int, str, str | None]] = []
    current: list[str] = []
    default: str | None = None
    for i, level in enumerate(levels):
        if level.approved is not None:
            if i == 0:
                narrowed = list(level.approved)
            else:
                wider = [n for n in level.approved if n not in current]
                widening += [(i, n) for n in wider]
                problems += [(i, "widening", n) for n in wider]
                narrowed = [n for n in level.approved if n in current]
                removed_by.update({n: i for n in current if n not in narrowed})
            current = narrowed
        if level.default is not None:
            default = level.default
            if default not in current:
                bad_defaults.append((i, default))
                problems.append((i, "default not approved", default))
        elif i == 0:
            bad_defaults.append((0, None))  # an enterprise manifest must name its default
            problems.append((0, "no enterprise default", None))
        elif default is not None and default not in current and has_compute_block(level):
            # the inherited default is no longer approved: each level that says anything about
            # computes and sets no default of its own is told to set one
            bad_defaults.append((i, default))
            problems.append((i, "inherited default not approved", default))
        effective.append(list(current))
        defaults.append(default)
    invalid = [
        (j, sel if sel is not None else default)
        for j, sel in enumerate(selections)
        if (sel if sel is not None else default) not in current
    ]
    return Expected(effective, defaults, removed_by, widening, bad_defaults, invalid, problems)  # type: ignore[arg-type]


def has_compute_block(level: Level) -> bool:
    """Whether the level's manifest has a ``plugins.compute`` mapping (see :func:`render_manifest`)."""
    return level.approved is not None or level.default is not None or level.empty_block % 3 == 2


KINDS = {  # what floe says for each kind of governance problem; the compute is group 1
    "widening": re.compile(r"compute '([^']+)' is not approved by the parent manifest"),
    "default not approved": re.compile(r"default compute '([^']+)' is not approved at this level"),
    "inherited default not approved": re.compile(
        r"the inherited default '([^']+)' is no longer approved here"
    ),
    "no enterprise default": re.compile(r"an enterprise manifest must name its default compute()"),
}


def reported(error: FloeError, manifests: Sequence[Path]) -> Counter[tuple[int | str, str, str | None]]:
    """floe's problems as (level, kind, compute); a problem of no known kind counts as itself."""
    found: Counter[tuple[int | str, str, str | None]] = Counter()
    for problem in error.problems:
        level = next(
            (i for i, m in enumerate(manifests) if str(m).endswith(problem.file or "?")), problem.file or "?"
        )
        kind = next(((k, m) for k, pattern in KINDS.items() if (m := pattern.search(problem.message))), None)
        if kind is None:
            found[(level, "unexpected", problem.message)] += 1
        else:
            found[(level, kind[0], kind[1].group(1) or None)] += 1
    return found


def assert_same_problems(error: FloeError, model: Expected, written: Written, context: str) -> None:
    """floe reports exactly the model's governance problems: each one, once, and nothing else."""
    assert reported(error, written.manifests) == Counter(model.problems), context


# -- writing the files ----------------------------------------------------------------------------


def manifest_path(root: Path, level: int) -> Path:
    """Level i lives i folders below the enterprise manifest; each names ``../manifest.yaml``."""
    return root.joinpath("platform", *(f"l{k}" for k in range(1, level + 1)), "manifest.yaml")


def _entry(name: str, form: int, level: int) -> list[str]:
    """An approved entry, as YAML lines below ``approved:``."""
    engine = ENGINE_OF[name]
    if level == 0 and engine != name:
        form = 3  # a compute whose name is not its engine must say which engine it is
    if form == 0:
        return [f"      - {name}"]
    lines = [f"      - name: {name}"]
    if form == 2:
        lines.append(f"        config: {{threads: {level + 2}}}")
    if form == 3:
        lines.append(f"        engine: {engine}")  # a child may repeat its parent's engine
    return lines


def render_manifest(level: int, spec: Level) -> tuple[str, int | None]:
    """The manifest's text and the line of its `approved:` key (if any)."""
    lines = ["apiVersion: floe.dev/v1", "kind: Manifest"]
    if level == 0:
        lines.append("scope: enterprise")
    else:
        lines += ["scope: domain", "parent: ../manifest.yaml"]
    lines.append(f"metadata: {{name: {manifest_name(level)}, owner: team-{level}}}")
    approved_line = None
    if spec.approved is None and spec.default is None:
        lines += ([], ["plugins: {}"], ["plugins:", "  compute: {}"])[spec.empty_block % 3]
    else:
        lines += ["plugins:", "  compute:"]
        if spec.approved is not None:
            approved_line = len(lines) + 1
            forms = [spec.forms[k] if k < len(spec.forms) else 0 for k in range(len(spec.approved))]
            plain = all(f == 0 for f in forms) and all(ENGINE_OF[n] == n or level for n in spec.approved)
            if spec.flow and plain:
                lines.append(f"    approved: [{', '.join(spec.approved)}]")
            else:
                lines.append("    approved:")
                for name, form in zip(spec.approved, forms, strict=True):
                    lines += _entry(name, form, level)
        if spec.default is not None:
            lines.append(f"    default: {spec.default}")
    return "\n".join(lines) + "\n", approved_line


def render_product(scenario: Scenario) -> tuple[str, dict[int, int]]:
    """floe.yaml's text and the line of each transform's `compute:` (when it has one)."""
    depth = len(scenario.levels) - 1
    platform = "/".join(["..", "platform", *(f"l{k}" for k in range(1, depth + 1)), "manifest.yaml"])
    lines = [
        "apiVersion: floe.dev/v1",
        "kind: DataProduct",
        "metadata: {name: orders}",
        f"platform: {platform}",
        "transforms:",
    ]
    compute_lines: dict[int, int] = {}
    for j, selection in enumerate(scenario.selections):
        lines += ["  - type: dbt", f"    path: models/t{j}"]
        if j < len(scenario.explicit_names) and scenario.explicit_names[j]:
            lines.append(f"    name: {scenario.transform_name(j)}")
        if selection is not None:
            compute_lines[j] = len(lines) + 1
            lines.append(f"    compute: {selection}")
    return "\n".join(lines) + "\n", compute_lines


@dataclass
class Written:
    product: Path
    manifests: list[Path]
    approved_lines: list[int | None]
    compute_lines: dict[int, int]


def write_scenario(root: Path, scenario: Scenario) -> Written:
    manifests: list[Path] = []
    approved_lines: list[int | None] = []
    for i, level in enumerate(scenario.levels):
        path = manifest_path(root, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        text, line = render_manifest(i, level)
        path.write_text(text, encoding="utf-8")
        manifests.append(path)
        approved_lines.append(line)
    product = root / "product"
    for j in range(len(scenario.selections)):
        (product / "models" / f"t{j}").mkdir(parents=True, exist_ok=True)
    text, compute_lines = render_product(scenario)
    (product / "floe.yaml").write_text(text, encoding="utf-8")
    return Written(product, manifests, approved_lines, compute_lines)


def compile_or_error(path: Path) -> Compiled | FloeError:
    try:
        return compile_path(path, engines=engines())
    except FloeError as exc:
        return exc


# -- strategies -------------------------------------------------------------------------------------

forms = st.lists(st.integers(0, 3), max_size=len(UNIVERSE)).map(tuple)


def subset_of(names: Sequence[str], min_size: int = 1) -> st.SearchStrategy[tuple[str, ...]]:
    """A non-empty selection of ``names`` in any order."""
    return st.lists(st.sampled_from(list(names)), min_size=min_size, max_size=len(names), unique=True).map(
        tuple
    )


@st.composite
def valid_levels(draw: st.DrawFn, min_enterprise: int = 1) -> tuple[Level, ...]:
    """An enterprise manifest and 0–4 domains, each narrowing validly, with defaults that resolve."""
    approved = draw(subset_of(UNIVERSE, min_enterprise))
    levels = [Level(approved, draw(st.sampled_from(approved)), draw(forms), flow=draw(st.booleans()))]
    current, default = list(approved), levels[0].default
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            narrowed: tuple[str, ...] | None = draw(subset_of(current))
            current = list(narrowed)  # type: ignore[arg-type]
        else:
            narrowed = None
        if default not in current or draw(st.booleans()):
            default = draw(st.sampled_from(current))
            level_default: str | None = default
        else:
            level_default = None
        levels.append(
            Level(narrowed, level_default, draw(forms), draw(st.integers(0, 2)), draw(st.booleans()))
        )
    return tuple(levels)


@st.composite
def any_levels(draw: st.DrawFn) -> tuple[Level, ...]:
    """Like :func:`valid_levels`, but levels may widen, and defaults may be missing or unapproved."""
    approved = draw(subset_of(UNIVERSE))
    ent_default = draw(
        st.one_of(st.sampled_from(approved), st.sampled_from(approved), st.sampled_from(UNIVERSE), st.none())
    )
    levels = [Level(approved, ent_default, draw(forms), flow=draw(st.booleans()))]
    for _ in range(draw(st.integers(0, 4))):
        current = expect(levels).effective[-1] or list(UNIVERSE[:1])
        mode = draw(st.sampled_from(["inherit", "narrow", "narrow", "widen"]))
        outside = [n for n in UNIVERSE if n not in current]
        if mode == "widen" and outside:
            names = list(draw(subset_of(current, 0))) + list(draw(subset_of(outside)))
            narrowed: tuple[str, ...] | None = tuple(draw(st.permutations(names)))
        elif mode == "inherit":
            narrowed = None
        else:
            narrowed = draw(subset_of(current))
        own = list(narrowed) if narrowed is not None else current
        level_default = draw(st.one_of(st.none(), st.sampled_from(own), st.sampled_from(UNIVERSE)))
        levels.append(
            Level(narrowed, level_default, draw(forms), draw(st.integers(0, 2)), draw(st.booleans()))
        )
    return tuple(levels)


selections_any = st.lists(st.one_of(st.none(), st.sampled_from(UNIVERSE)), min_size=1, max_size=5).map(tuple)
explicit_names = st.lists(st.booleans(), max_size=5).map(tuple)


@st.composite
def valid_scenarios(draw: st.DrawFn) -> Scenario:
    levels = draw(valid_levels())
    effective = expect(levels).effective[-1]
    choice = st.one_of(st.none(), st.sampled_from(effective))
    selections = tuple(draw(st.lists(choice, min_size=1, max_size=5)))
    return Scenario(levels, selections, draw(explicit_names))


@st.composite
def any_scenarios(draw: st.DrawFn) -> Scenario:
    levels = draw(st.one_of(valid_levels(), any_levels()))
    return Scenario(levels, draw(selections_any), draw(explicit_names))


@st.composite
def scenarios_with_bad_selections(draw: st.DrawFn) -> Scenario:
    """A valid chain and a product where at least one transform selects an unapproved compute."""
    levels = draw(valid_levels())
    model = expect(levels)
    outside = [n for n in UNIVERSE if n not in model.effective[-1]]
    assume(outside)
    selections = draw(st.lists(st.one_of(st.none(), st.sampled_from(UNIVERSE)), max_size=4))
    selections.insert(draw(st.integers(0, len(selections))), draw(st.sampled_from(outside)))
    return Scenario(levels, tuple(selections), draw(explicit_names))


# -- helpers ------------------------------------------------------------------------------------------


def effective_of(compiled: Compiled) -> list[str]:
    return compiled.governance.registry.names()


def intersection(levels: Sequence[Level]) -> set[str]:
    return functools.reduce(set.intersection, (set(lv.approved) for lv in levels if lv.approved is not None))


def messages(error: FloeError) -> list[str]:
    return [p.message for p in error.problems]


def describe(scenario: Scenario, written: Written) -> str:
    texts = [p.read_text(encoding="utf-8") for p in [*written.manifests, written.product / "floe.yaml"]]
    return "\n---\n".join(texts)


# -- properties ---------------------------------------------------------------------------------------


@pytest.mark.req("REQ-021")
@pytest.mark.req("REQ-023")
@budget(75)
@given(valid_scenarios())
def test_effective_set_is_the_intersection_along_the_chain(scenario: Scenario) -> None:
    """Every level narrows its parent: each level's effective list is the chain's intersection."""
    with tempfile.TemporaryDirectory() as tmp:
        written = write_scenario(Path(tmp), scenario)
        model = expect(scenario.levels, scenario.selections)
        assert model.outcome is None
        for i, manifest in enumerate(written.manifests):
            compiled = compile_or_error(manifest)
            assert isinstance(compiled, Compiled), f"{compiled}\n{describe(scenario, written)}"
            assert set(effective_of(compiled)) == intersection(scenario.levels[: i + 1])
            assert compiled.governance.registry.default == model.defaults[i]
        compiled = compile_or_error(written.product)
        assert isinstance(compiled, Compiled), f"{compiled}\n{describe(scenario, written)}"
        effective = intersection(scenario.levels)
        assert set(effective_of(compiled)) == effective
        assert compiled.governance.ever_approved == set(scenario.levels[0].approved or ())
        for name, remover in compiled.governance.removed_by.items():
            assert remover.data["metadata"]["name"] == manifest_name(model.removed_by[name])
        assert set(compiled.governance.removed_by) == set(scenario.levels[0].approved or ()) - effective
        default = model.defaults[-1]
        assert [t.compute for t in compiled.transforms] == [s or default for s in scenario.selections]
        assert [t.engine for t in compiled.transforms] == [
            ENGINE_OF[s or default] for s in scenario.selections
        ]  # type: ignore[index]
        assert [t.name for t in compiled.transforms] == [
            scenario.transform_name(j) for j in range(len(scenario.selections))
        ]
        assert set(compiled.profiles) == {f"floe_{t.compute}" for t in compiled.transforms}


@st.composite
def narrowings(draw: st.DrawFn) -> tuple[Scenario, int, str]:
    """A valid chain, a level of it and a compute that level approves (directly or by inheriting)."""
    levels = draw(valid_levels(min_enterprise=2))
    model = expect(levels)
    candidates = [i for i, names in enumerate(model.effective) if len(names) >= 2]
    assume(candidates)
    level = draw(st.sampled_from(candidates))
    name = draw(st.sampled_from(model.effective[level]))
    return Scenario(levels, (None,)), level, name


def narrow(levels: tuple[Level, ...], index: int, name: str) -> tuple[Level, ...]:
    """Remove ``name`` from level ``index`` (a level that inherited gets an explicit list)."""
    level = levels[index]
    inherited = expect(levels).effective[index]
    approved = [n for n in (level.approved if level.approved is not None else inherited) if n != name]
    narrowed = replace(level, approved=tuple(approved))
    return (*levels[:index], narrowed, *levels[index + 1 :])


@pytest.mark.req("REQ-023")
@budget(60)
@given(narrowings())
def test_narrowing_a_level_never_widens_anything_below_it(case: tuple[Scenario, int, str]) -> None:
    """Removing a compute at one level removes it below (or the chain is refused); nothing appears."""
    before, index, name = case
    after = replace(before, levels=narrow(before.levels, index, name))
    model = expect(after.levels)
    with tempfile.TemporaryDirectory() as tmp:
        old = write_scenario(Path(tmp) / "before", before)
        new = write_scenario(Path(tmp) / "after", after)
        for j in range(index, len(before.levels)):
            was = compile_or_error(old.manifests[j])
            now = compile_or_error(new.manifests[j])
            assert isinstance(was, Compiled), f"{was}\n{describe(before, old)}"
            first_bad = min([i for i, _ in model.widening] + [i for i, _ in model.bad_defaults], default=None)
            if first_bad is not None and first_bad <= j:
                # a level at or above j still names the removed compute: refused, naming it
                assert type(now) is GovernanceError, f"{now}\n{describe(after, new)}"
                assert all(repr(name) in m for m in messages(now)), now.render()
                assert_same_problems(
                    now, expect(after.levels[: j + 1]), new, f"{now}\n{describe(after, new)}"
                )
                continue
            assert isinstance(now, Compiled), f"{now}\n{describe(after, new)}"
            assert set(effective_of(now)) <= set(effective_of(was))
            assert set(effective_of(now)) == set(effective_of(was)) - {name}
            if index == 0:
                assert name not in now.governance.ever_approved
            else:
                assert now.governance.removed_by[name].data["metadata"]["name"] == manifest_name(index)


@pytest.mark.req("REQ-021")
@pytest.mark.req("REQ-022")
@pytest.mark.req("REQ-023")
@budget(175)
@given(any_scenarios())
def test_compile_succeeds_exactly_when_the_chain_and_selections_are_valid(scenario: Scenario) -> None:
    """The model predicts success, GovernanceError or InvalidComputeError; floe agrees, and says why."""
    model = expect(scenario.levels, scenario.selections)
    event(f"expected: {model.outcome.__name__ if model.outcome else 'success'}")
    with tempfile.TemporaryDirectory() as tmp:
        written = write_scenario(Path(tmp), scenario)
        result = compile_or_error(written.product)
        context = f"{result}\n{describe(scenario, written)}"
        if model.outcome is None:
            assert isinstance(result, Compiled), context
            assert set(effective_of(result)) == set(model.effective[-1])
            assert [t.compute for t in result.transforms] == [
                s or model.defaults[-1] for s in scenario.selections
            ]
            return
        assert type(result) is model.outcome, context
        assert isinstance(result, FloeError)
        labels = [p.file or "" for p in result.problems]
        if model.outcome is GovernanceError:
            assert_same_problems(result, model, written, context)
            assert all(any(str(m).endswith(label) for m in written.manifests) for label in labels), context
        else:
            check_invalid_selections(result, scenario, model, written)


def check_invalid_selections(error: FloeError, scenario: Scenario, model: Expected, written: Written) -> None:
    """Each bad selection is one problem naming the transform, the compute and who removed it."""
    context = f"{error}\n{describe(scenario, written)}"
    assert len(error.problems) == len(model.invalid), context
    effective = model.effective[-1]
    for (j, compute), problem in zip(model.invalid, error.problems, strict=True):
        assert problem.path == f"$.transforms[{j}].compute", context
        assert str(written.product / "floe.yaml").endswith(problem.file or "?"), context
        if scenario.selections[j] is not None:
            assert problem.line == written.compute_lines[j], context
        assert f"transform {scenario.transform_name(j)!r}" in problem.message, context
        assert f"compute {compute!r}" in problem.message, context
        assert problem.expected == "one of " + ", ".join(effective), context
        remover = model.removed_by.get(compute)  # type: ignore[arg-type]
        if remover is not None:
            assert f"removed by manifest {manifest_name(remover)!r}" in problem.message, context
            label_line = f"manifest.yaml:{written.approved_lines[remover]})"
            assert label_line in problem.message, context
            assert str(written.manifests[remover]).endswith(problem.message.rsplit("(", 1)[1].split(":")[0])
        else:
            assert "no manifest in the chain" in problem.message, context
            chain = " → ".join(manifest_name(i) for i in range(len(scenario.levels)))
            assert f"({chain})" in problem.message, context


@pytest.mark.req("REQ-022")
@pytest.mark.req("REQ-023")
@budget(90)
@given(scenarios_with_bad_selections())
def test_invalid_compute_errors_name_compute_transform_and_remover(scenario: Scenario) -> None:
    """A valid chain with unapproved selections: InvalidComputeError, one located problem each."""
    model = expect(scenario.levels, scenario.selections)
    assert model.outcome is InvalidComputeError
    with tempfile.TemporaryDirectory() as tmp:
        written = write_scenario(Path(tmp), scenario)
        result = compile_or_error(written.product)
        assert type(result) is InvalidComputeError, f"{result}\n{describe(scenario, written)}"
        check_invalid_selections(result, scenario, model, written)


@pytest.mark.req("REQ-023")
@budget(60)
@given(st.data())
def test_widening_is_refused_and_names_the_compute(data: st.DataObject) -> None:
    """A level that approves a compute its parent does not is refused, naming that compute."""
    levels = list(data.draw(valid_levels()))
    at = data.draw(st.integers(1, len(levels)))
    parent = expect(levels[:at]).effective[-1]
    outside = [n for n in UNIVERSE if n not in parent]
    assume(outside)
    extra = data.draw(subset_of(outside))
    own = list(levels[at].approved if at < len(levels) and levels[at].approved is not None else parent)
    approved = tuple(data.draw(st.permutations([*data.draw(subset_of(own, 0)), *extra])))
    widened = Level(
        approved,
        data.draw(st.one_of(st.none(), st.sampled_from(approved))),
        data.draw(forms),
        flow=data.draw(st.booleans()),
    )
    levels[at : at + 1] = [widened]
    scenario = Scenario(tuple(levels), (None,))
    with tempfile.TemporaryDirectory() as tmp:
        written = write_scenario(Path(tmp), scenario)
        for target in (written.manifests[-1], written.product):
            result = compile_or_error(target)
            assert type(result) is GovernanceError, f"{result}\n{describe(scenario, written)}"
            for name in extra:
                assert any(
                    f"compute {name!r} is not approved by the parent manifest" in m for m in messages(result)
                ), result.render()
            assert_same_problems(
                result, expect(scenario.levels), written, f"{result}\n{describe(scenario, written)}"
            )
            assert any(
                p.line is not None and str(written.manifests[at]).endswith(p.file or "?")
                for p in result.problems
            ), result.render()


# -- narrow-only beyond the approved list (resources, catalog, environments) and whole manifests ------
# Random chains of an enterprise manifest and 0–3 domains over one governed compute (``spark``), each
# level writing random settings; independent models predict every refusal, located by file and path.

from fractions import Fraction  # noqa: E402 - the models below are independent of floe's parser

_SUFFIX = {
    "": 1,
    "m": Fraction(1, 1000),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
}
CPU_REQUESTS = ("100m", "250m", "500m", "0.5", "750m", "1")
CPU_LIMITS = ("1", "1500m", "2", "2000m", "4", "4.5", "64")
MEMORY_REQUESTS = ("128Mi", "256Mi", "500M", "512Mi", "1G", "1Gi")
MEMORY_LIMITS = ("1.5Gi", "2G", "2Gi", "4Gi", "8G", "8Gi", "12Gi", "512Gi")


def quantity(text: str) -> Fraction:
    """A Kubernetes quantity's value (the model's own reading: 500m < 1, 1G < 1Gi)."""
    number = text.rstrip("kMGimK")
    return Fraction(number) * _SUFFIX[text[len(number) :]]


resource_lists = st.fixed_dictionaries(
    {},
    optional={
        "requests": st.fixed_dictionaries(
            {"cpu": st.sampled_from(CPU_REQUESTS)}, optional={"memory": st.sampled_from(MEMORY_REQUESTS)}
        ),
        "limits": st.fixed_dictionaries(
            {"memory": st.sampled_from(MEMORY_LIMITS)}, optional={"cpu": st.sampled_from(CPU_LIMITS)}
        ),
    },
)
written_resources = st.fixed_dictionaries(
    {
        "requests": st.fixed_dictionaries(
            {"cpu": st.sampled_from(CPU_REQUESTS)}, optional={"memory": st.sampled_from(MEMORY_REQUESTS)}
        ),
        "limits": st.fixed_dictionaries(
            {"memory": st.sampled_from(MEMORY_LIMITS)}, optional={"cpu": st.sampled_from(CPU_LIMITS)}
        ),
    }
)
"""Most levels write both kinds, so that raises are common; some write nothing (inherit)."""


def write_chain(root: Path, levels: Sequence[str], product_extra: str = "") -> tuple[list[Path], Path]:
    """Manifests (level i's body below the common head) and a product on ``spark`` below the last one."""
    paths = []
    for i, body in enumerate(levels):
        path = manifest_path(root, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = ["apiVersion: floe.dev/v1", "kind: Manifest"]
        head += ["scope: enterprise"] if i == 0 else ["scope: domain", "parent: ../manifest.yaml"]
        head.append(f"metadata: {{name: {manifest_name(i)}}}")
        path.write_text("\n".join(head) + "\n" + body, encoding="utf-8")
        paths.append(path)
    depth = len(levels) - 1
    platform = "/".join(["..", "platform", *(f"l{k}" for k in range(1, depth + 1)), "manifest.yaml"])
    product = root / "product"
    (product / "models" / "a").mkdir(parents=True, exist_ok=True)
    (product / "floe.yaml").write_text(
        "apiVersion: floe.dev/v1\nkind: DataProduct\nmetadata: {name: orders}\n"
        f"platform: {platform}\ntransforms:\n  - {{type: dbt, path: models/a/, compute: spark}}\n"
        + product_extra,
        encoding="utf-8",
    )
    return paths, product


def located(error: FloeError, root: Path) -> set[tuple[str, str | None]]:
    """``(file relative to the chain's root, $.path)`` of each problem."""
    return {(where(root, Path(p.file or "")), p.path) for p in error.problems}


def where(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def resources_block(resources: dict[str, dict[str, str]]) -> str:
    inner = ", ".join(
        f"{kind}: {{{', '.join(f'{k}: {v!r}' for k, v in values.items())}}}"
        for kind, values in resources.items()
    )
    return f"        resources: {{{inner}}}\n" if inner else ""


@pytest.mark.req("REQ-023")
@budget(80)
@given(st.lists(st.one_of(written_resources, written_resources, resource_lists), min_size=2, max_size=4))
def test_resources_may_only_be_lowered_down_the_chain(chain: list[dict[str, dict[str, str]]]) -> None:
    """Each level's requests and limits against the nearest ancestor that set the same one, as
    quantities: a raise is refused where it is written; otherwise the lowest writes are in force."""
    expected: dict[tuple[int, str], int] = {}  # (level, path) -> the ancestor whose value it exceeds
    inherited: dict[tuple[str, str], str] = {}
    writer: dict[tuple[str, str], int] = {}
    for i, resources in enumerate(chain):
        for kind, values in resources.items():
            for key, value in values.items():
                before = inherited.get((kind, key))
                if before is not None and quantity(value) > quantity(before):
                    expected[(i, f"$.plugins.compute.approved[0].resources.{kind}.{key}")] = writer[
                        (kind, key)
                    ]
                inherited[(kind, key)], writer[(kind, key)] = value, i
    event(f"resources: {'refused' if expected else 'compiled'}")
    bodies = [
        "plugins:\n  compute:\n    approved:\n      - name: spark\n"
        + resources_block(r)
        + ("    default: spark\n" if i == 0 else "")
        for i, r in enumerate(chain)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests, product = write_chain(root, bodies)
        result = compile_or_error(product)
        if not expected:
            assert isinstance(result, Compiled), result
            overrides = result.governance.registry.approved["spark"].resources
            assert {("requests", k): v for k, v in overrides.requests.items()} | {
                ("limits", k): v for k, v in overrides.limits.items()
            } == inherited
            return
        assert type(result) is GovernanceError, f"{result}\n{bodies}"
        assert located(result, root) == {(where(root, manifests[i]), path) for i, path in expected}, (
            result.render()
        )
        for problem in result.problems:
            level = next(i for i, m in enumerate(manifests) if str(m).endswith(problem.file or "?"))
            ancestor = expected[(level, str(problem.path))]
            assert "a lower level may only lower" in problem.message
            assert f"that manifest {manifest_name(ancestor)!r} allows" in problem.message, problem.render()


CATALOG_VALUES = {
    "type": ("rest",),
    "uri": ("https://polaris.acme.example/api/catalog", "https://elsewhere.example/catalog"),
    "warehouse": ("lake", "other"),
    "name": ("floe", "lake"),
    "access_delegation": ("none", "vended-credentials"),
    "token": ("{secret_ref: CATALOG_TOKEN}", "{secret_ref: MINE}"),
}
CATALOG_DEFAULTS = {"name": "floe", "access_delegation": "none"}


catalogs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"type": st.just("rest")},
        optional={key: st.sampled_from(values) for key, values in CATALOG_VALUES.items() if key != "type"},
    ),
)


@pytest.mark.req("REQ-023")
@budget(60)
@given(st.lists(catalogs, min_size=1, max_size=4))
def test_the_catalog_is_fixed_by_the_highest_level_that_declares_it(
    chain: list[dict[str, str] | None],
) -> None:
    """The first ``catalog:`` decides every field; a lower level may repeat a field's value (the
    declarer's, or its default) and is refused, at that field, for anything else."""
    declarer: dict[str, str] | None = None
    expected: set[tuple[int, str]] = set()
    for i, catalog in enumerate(chain):
        if catalog is None:
            continue
        if declarer is None:
            declarer = catalog
            if "uri" not in catalog:
                expected.add((i, "$.catalog"))  # a REST catalog needs its uri
            continue
        for key, value in catalog.items():
            if value != declarer.get(key, CATALOG_DEFAULTS.get(key)):
                expected.add((i, f"$.catalog.{key}"))
    event(f"catalog: {'refused' if expected else 'compiled'}")
    bodies = []
    for i, catalog in enumerate(chain):
        body = "plugins: {compute: {approved: [spark], default: spark}}\n" if i == 0 else ""
        if catalog is not None:
            body += "catalog:\n" + "".join(f"  {k}: {v}\n" for k, v in catalog.items())
        bodies.append(body)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests, product = write_chain(root, bodies)
        result = compile_or_error(product)
        if expected:
            assert type(result) is GovernanceError, f"{result}\n{bodies}"
            assert located(result, root) == {(where(root, manifests[i]), p) for i, p in expected}, (
                result.render()
            )
            return
        assert isinstance(result, Compiled), f"{result}\n{bodies}"
        if declarer is None:
            assert result.catalog is None
        else:
            assert result.catalog is not None
            assert (result.catalog.uri, result.catalog.warehouse, result.catalog.name) == (
                declarer.get("uri"),
                declarer.get("warehouse"),
                declarer.get("name", "floe"),
            )


LINEAGE_VALUES = {
    "namespace": ("acme", "sales"),
    "url": ("https://lineage.acme.example", "https://elsewhere.example"),
    "endpoint": ("api/v1/lineage", "v2/events"),
    "timeout": ("5", "10"),
    "auth": (
        "{type: api_key, api_key: {secret_ref: LINEAGE_KEY}}",
        "{type: api_key, api_key: {secret_ref: MINE}}",
    ),
}
LINEAGE_DEFAULTS = {"endpoint": "api/v1/lineage", "timeout": "5"}
"""The OpenLineage client's defaults for the keys a manifest may leave out."""

lineages = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {}, optional={key: st.sampled_from(values) for key, values in LINEAGE_VALUES.items()}
    ),
)


@budget(60)
@given(st.lists(lineages, min_size=1, max_size=4))
def test_the_lineage_is_fixed_by_the_highest_level_that_declares_it(
    chain: list[dict[str, str] | None],
) -> None:
    """As for the catalog: the first ``lineage:`` decides every field; a lower level may repeat a
    field's value (the declarer's, or the client's default) and is refused, at that field, for
    anything else."""
    declarer: dict[str, str] | None = None
    expected: set[tuple[int, str]] = set()
    for i, lineage in enumerate(chain):
        if lineage is None:
            continue
        if declarer is None:
            declarer = lineage
            if "url" not in lineage:
                expected.add((i, "$.lineage.transport"))  # the http transport needs its url
            continue
        for key, value in lineage.items():
            if value != declarer.get(key, LINEAGE_DEFAULTS.get(key)):
                expected.add(
                    (i, "$.lineage.namespace" if key == "namespace" else f"$.lineage.transport.{key}")
                )
    event(f"lineage: {'refused' if expected else 'compiled'}")
    bodies = []
    for i, lineage in enumerate(chain):
        body = "plugins: {compute: {approved: [spark], default: spark}}\n" if i == 0 else ""
        if lineage is not None:
            body += "lineage:\n" + (
                f"  namespace: {lineage['namespace']}\n" if "namespace" in lineage else ""
            )
            body += "  transport:\n    type: http\n" + "".join(
                f"    {k}: {v}\n" for k, v in lineage.items() if k != "namespace"
            )
        bodies.append(body)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests, product = write_chain(root, bodies)
        result = compile_or_error(product)
        if expected:
            assert type(result) is GovernanceError, f"{result}\n{bodies}"
            assert located(result, root) == {(where(root, manifests[i]), p) for i, p in expected}, (
                result.render()
            )
            return
        assert isinstance(result, Compiled), f"{result}\n{bodies}"
        if declarer is None:
            assert result.lineage is None
        else:
            assert result.lineage is not None and result.lineage.transport is not None
            assert (result.lineage.namespace, result.lineage.transport.url) == (
                declarer.get("namespace"),
                declarer.get("url"),
            )


@pytest.mark.req("REQ-024")
@budget(40)
@given(
    st.lists(
        st.lists(st.sampled_from(["dev", "test", "prod", "qa"]), unique=True, max_size=3),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.sampled_from(["dev", "prod", "production", "staging", "qa"]), unique=True, max_size=3),
)
def test_a_product_may_only_name_environments_its_manifests_declare(
    manifests: list[list[str]], product: list[str]
) -> None:
    declared = list(dict.fromkeys(name for level in manifests for name in level)) or ["dev"]
    expected = {f"$.environments[{i}].name" for i, name in enumerate(product) if name not in declared}
    bodies = [
        ("plugins: {compute: {approved: [spark], default: spark}}\n" if i == 0 else "")
        + ("environments:\n" + "".join(f"  - name: {n}\n" for n in level) if level else "")
        for i, level in enumerate(manifests)
    ]
    extra = "environments:\n" + "".join(f"  - name: {n}\n" for n in product) if product else ""
    event(f"environments: {'refused' if expected else 'compiled'}")
    with tempfile.TemporaryDirectory() as tmp:
        _, path = write_chain(Path(tmp), bodies, extra)
        result = compile_or_error(path)
        if expected:
            assert type(result) is GovernanceError, result
            assert {p.path for p in result.problems} == expected, result.render()
            assert all(p.file and p.file.endswith("floe.yaml") for p in result.problems)
        else:
            assert isinstance(result, Compiled), result
            assert list(result.governance.environments) == declared


BAD_SETTINGS = {
    "threads: many": ("threads", "expected an integer"),
    "password: 'S3cr3t!Pa55'": ("password", "holds a literal credential"),
    "treads: 4": ("treads", "unknown key 'treads'"),
    "cluster: '{{ x }}'": ("cluster", "which dbt would render as Jinja"),
}


@pytest.mark.req("REQ-023")
@budget(40)
@given(st.integers(1, 3), st.data())
def test_every_manifest_is_checked_whole_whatever_lower_levels_keep(depth: int, data: st.DataObject) -> None:
    """A bad setting of a compute that a lower level narrows away is still refused, at its own file
    and line, when compiling the product and every manifest from its level down."""
    bad_level = data.draw(st.integers(0, depth - 1))
    remover = data.draw(st.integers(bad_level + 1, depth))
    setting = data.draw(st.sampled_from(sorted(BAD_SETTINGS)))
    in_override = data.draw(st.booleans())
    bodies = []
    for i in range(depth + 1):
        approved = ["spark"] if i >= remover else ["spark", "snowflake"]
        lines = ["plugins:", "  compute:", "    approved:"] + [f"      - name: {n}" for n in approved]
        if i == bad_level and not in_override:
            lines.insert(lines.index("      - name: snowflake") + 1, f"        config: {{{setting}}}")
        if i == 0:
            lines.append("    default: spark")
        if i == bad_level and in_override:
            lines += ["environments:", "  - name: dev", "    overrides:", f"      snowflake: {{{setting}}}"]
        bodies.append("\n".join(lines) + "\n")
    key, words = BAD_SETTINGS[setting]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifests, product = write_chain(root, bodies)
        text = manifests[bad_level].read_text().splitlines()
        line = next(n for n, content in enumerate(text, 1) if setting in content)
        for target in [product, *manifests[bad_level:]]:
            result = compile_or_error(target)
            assert isinstance(result, GovernanceError), f"{result}\n{bodies}"
            assert all(
                p.line == line and str(manifests[bad_level]).endswith(p.file or "?") for p in result.problems
            ), result.render()
            assert any(words in p.message and (p.path or "").endswith(f".{key}") for p in result.problems), (
                result.render()
            )
            assert "S3cr3t!Pa55" not in result.render()
