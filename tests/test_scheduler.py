"""The run's scheduler (:mod:`floe.execution.scheduler`), without dbt: properties over random DAGs.

Each example draws a DAG of transforms on random computes, which of them fail, which pairs one dbt
build may chain, a limit, and the order in which running builds finish; a simulated dbt answers
each build as dbt does (a transform whose upstream in the same build failed is skipped by dbt).
Whatever was drawn: no transform runs twice or before its upstream transforms succeeded, a
compute runs one build at a time and no more than ``limit`` transforms run at once, a compute
with nothing running never leaves a ready transform waiting (so independent computes overlap),
and at the end exactly the dependents of a failure are skipped.
"""

from __future__ import annotations

import random
from typing import Any

import hypothesis
import hypothesis.strategies as st

from floe.execution.scheduler import (
    Action,
    BuildDone,
    BuildLost,
    Run,
    Scheduler,
    Settle,
    State,
    Task,
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 10))
    names = [f"t{i}" for i in range(count)]
    computes = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=count, max_size=count))
    upstream = [
        tuple(sorted({names[j] for j in draw(st.sets(st.integers(0, i - 1), max_size=3))})) if i else ()
        for i in range(count)
    ]
    buildable = draw(st.lists(st.sampled_from([True, True, True, False]), min_size=count, max_size=count))
    tasks = [Task(names[i], computes[i], upstream[i], buildable[i]) for i in range(count)]
    same_compute = [(u, t.name) for t in tasks for u in t.upstream if computes[names.index(u)] == t.compute]
    chains = draw(st.sets(st.sampled_from(same_compute))) if same_compute else set()
    return {
        "tasks": tasks,
        "fails": draw(st.sets(st.sampled_from(names))),
        "lost": draw(st.sets(st.sampled_from(names), max_size=2)),
        "chains": chains,
        "limit": draw(st.integers(1, count + 1)),
        "seed": draw(st.integers(0, 2**32)),
    }


def expected_states(tasks: list[Task], fails: set[str], lost: set[str]) -> dict[str, State]:
    """What must happen, computed on its own: a transform of a lost build failed (its worker died
    under it); else it is skipped exactly when one of its upstream transforms did not succeed;
    else it fails when it fails, else it succeeds."""
    states: dict[str, State] = {}
    for task in tasks:
        if task.name in lost:
            states[task.name] = State.FAILED
        elif any(states[u] != State.SUCCESS for u in task.upstream):
            states[task.name] = State.SKIPPED
        elif task.buildable and task.name in fails:
            states[task.name] = State.FAILED
        else:
            states[task.name] = State.SUCCESS
    return states


def simulate(scenario: dict[str, Any]) -> tuple[Scheduler, list[Action]]:
    tasks: list[Task] = scenario["tasks"]
    by_name = {t.name: t for t in tasks}
    scheduler = Scheduler(tasks, scenario["limit"], scenario["chains"])
    rng = random.Random(scenario["seed"])
    started: set[str] = set()
    settled: dict[str, State] = {}
    history: list[Action] = []

    def apply(actions: list[Action]) -> None:
        history.extend(actions)
        for action in actions:
            if isinstance(action, Run):
                build = action.build
                assert build.transforms and len(set(build.transforms)) == len(build.transforms)
                for position, name in enumerate(build.transforms):
                    assert name not in started, f"{name} runs twice"
                    started.add(name)
                    task = by_name[name]
                    assert task.compute == build.compute and task.buildable
                    for up in task.upstream:
                        earlier = up in build.transforms[:position]
                        assert settled.get(up) == State.SUCCESS or (
                            earlier and (up, name) in scenario["chains"]
                        ), f"{name} runs before its upstream {up} succeeded"
            else:
                assert action.transform not in settled, f"{action.transform} settled twice"
                settled[action.transform] = action.state
        running = list(scheduler.running.values())
        assert len({b.compute for b in running}) == len(running), "two builds on one compute"
        busy = sum(len(b.transforms) for b in running)
        assert busy <= scenario["limit"]
        if busy < scenario["limit"]:  # work-conserving: an idle compute has nothing ready
            idle = {t.compute for t in tasks} - {b.compute for b in running}
            for task in tasks:
                if task.compute in idle and scheduler.states[task.name] == State.PENDING:
                    assert not all(settled.get(u) == State.SUCCESS for u in task.upstream), (
                        f"{task.name} is ready on idle compute {task.compute} but waits"
                    )

    apply(scheduler.start())
    while scheduler.running:
        build = scheduler.running[rng.choice(sorted(scheduler.running))]
        if any(name in scenario["lost"] for name in build.transforms):
            apply(scheduler.handle(BuildLost(build.id)))
            continue
        succeeded: dict[str, bool] = {}
        for name in build.transforms:  # dbt: a node whose upstream failed is skipped
            upstream_failed = any(
                not succeeded.get(u, True) for u in by_name[name].upstream if u in build.transforms
            )
            succeeded[name] = not upstream_failed and name not in scenario["fails"]
        apply(scheduler.handle(BuildDone(build.id, succeeded)))
    assert scheduler.finished, scheduler.states
    assert settled == scheduler.states
    return scheduler, history


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(scenarios())
def test_random_dags_on_random_computes_with_random_failures(scenario: dict[str, Any]) -> None:
    scheduler, history = simulate(scenario)
    # a build holding a transform drawn as lost is lost: every transform in it failed
    lost = {
        name
        for action in history
        if isinstance(action, Run)
        for name in action.build.transforms
        if any(m in scenario["lost"] for m in action.build.transforms)
    }
    assert scheduler.states == expected_states(scenario["tasks"], scenario["fails"], lost)


def test_independent_transforms_on_two_computes_start_together_and_one_compute_batches() -> None:
    tasks = [Task("a1", "a"), Task("b1", "b"), Task("a2", "a", ("a1",)), Task("b2", "b", ("a1", "b1"))]
    scheduler = Scheduler(tasks, limit=4, chains={("a1", "a2")})
    first = scheduler.start()
    assert [a.build.transforms for a in first if isinstance(a, Run)] == [
        ("a1",),
        ("b1",),
    ]  # a1 feeds b2: alone
    after = scheduler.handle(BuildDone(1, {"a1": True}))
    assert next(a for a in after if isinstance(a, Run)).build.transforms == ("a2",)
    assert scheduler.handle(BuildDone(2, {"b1": False})) == [
        Settle("b1", State.FAILED, 2),
        Settle("b2", State.SKIPPED, because="b1"),
    ]
    scheduler2 = Scheduler(
        [Task("x", "a"), Task("y", "a", ("x",)), Task("z", "a")], limit=3, chains={("x", "y")}
    )
    (run,) = scheduler2.start()
    assert isinstance(run, Run) and run.build.transforms == ("x", "y", "z")
    assert scheduler2.handle(BuildDone(1, {"x": False, "y": False, "z": True})) == [
        Settle("x", State.FAILED, 1),
        Settle("y", State.SKIPPED, because="x"),
        Settle("z", State.SUCCESS, 1),
    ]


def test_a_transform_with_nothing_to_build_succeeds_at_once_and_frees_its_dependents() -> None:
    scheduler = Scheduler([Task("empty", "a", buildable=False), Task("next", "a", ("empty",))], limit=1)
    actions = scheduler.start()
    assert actions[0] == Settle("empty", State.SUCCESS) and isinstance(actions[1], Run)
