"""When each transform of a run builds: a pure scheduler, events in, actions out.

The scheduler knows the transforms (their compute, the transforms they wait for, whether they have
anything to build) and nothing of dbt, processes or time. The runner feeds it what happened
(:class:`BuildDone`, :class:`BuildLost`) and carries out what it answers: :class:`Run` a build of
one or more transforms on a compute's worker, or :class:`Settle` a transform in its final
:class:`State`. Its rules:

- a transform starts once every transform it depends on succeeded; a failure settles every
  transform downstream of it as skipped, and nothing else;
- a compute's worker runs one build at a time; builds on different computes run at once, up to
  ``limit`` transforms in all;
- a build holds one transform, or several of one compute when dbt, building them in one
  invocation, skips all of a downstream one whenever anything of its upstream one fails, as floe
  would (``chains``), and no transform on another compute waits for them (they report as soon as
  they finish): one dbt start, and dbt's threads, for all of them. A transform with nothing to
  build succeeds at once.

``tests/test_scheduler.py`` checks these with hypothesis over random DAGs on random computes with
random failures.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

import attrs


class State(enum.StrEnum):
    """Where a transform is; the last three are final. The values are the run report's."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL = frozenset({State.SUCCESS, State.FAILED, State.SKIPPED})


@attrs.frozen
class Task:
    """A transform as the scheduler sees it."""

    name: str
    compute: str
    upstream: tuple[str, ...] = ()
    """Transforms it waits for (those not scheduled in this run are taken as built)."""
    buildable: bool = True
    """Whether it has anything to build (a transform whose path holds no model has not)."""


@attrs.frozen
class Build:
    """One dbt build on one compute's worker."""

    id: int
    compute: str
    transforms: tuple[str, ...]
    """In plan order: upstream transforms first."""


# -- actions (out) ---------------------------------------------------------------------------------


@attrs.frozen
class Run:
    """Start ``build`` on its compute's worker; answer with :class:`BuildDone` or :class:`BuildLost`."""

    build: Build


@attrs.frozen
class Settle:
    """``transform`` reached its final ``state``.

    ``build`` is the build it ran in (``None``: it had nothing to build, or it was skipped);
    ``because`` names the failed upstream transform of a skipped one.
    """

    transform: str
    state: State
    build: int | None = None
    because: str | None = None


Action = Run | Settle


# -- events (in) -----------------------------------------------------------------------------------


@attrs.frozen
class BuildDone:
    """The build finished; ``succeeded`` says, per transform, whether dbt built it all."""

    build: int
    succeeded: Mapping[str, bool]


@attrs.frozen
class BuildLost:
    """The build ended without an answer (its worker died, or could not take it): every transform
    in it failed."""

    build: int


Event = BuildDone | BuildLost


class Scheduler:
    """The run's transforms and their states; see the module docstring.

    :param tasks: the transforms in a dependency order (upstream first).
    :param limit: at most this many transforms running at once.
    :param chains: ``(upstream, downstream)`` pairs of one compute that one dbt build may hold
        together (see :meth:`floe.execution.graph.Plan.chains`).
    """

    def __init__(self, tasks: Sequence[Task], limit: int, chains: Iterable[tuple[str, str]] = ()) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.tasks = {t.name: t for t in tasks}
        self.order = [t.name for t in tasks]
        self.limit = limit
        self.chains = frozenset(chains)
        self.states = {t.name: State.PENDING for t in tasks}
        self.running: dict[int, Build] = {}
        self._ids = 0
        self._dependents: dict[str, list[str]] = {name: [] for name in self.order}
        for task in tasks:
            for up in task.upstream:
                if up in self._dependents:
                    self._dependents[up].append(task.name)

    # -- the interface ---------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """What to do first."""
        return self._dispatch()

    def handle(self, event: Event) -> list[Action]:
        """What to do after ``event``."""
        build = self.running.pop(event.build, None)
        if build is None:
            return []
        actions: list[Action] = []
        for name in build.transforms:
            if isinstance(event, BuildLost):
                actions += self._settle(name, State.FAILED, build.id)
                continue
            failed = [
                u
                for u in self.tasks[name].upstream
                if u in build.transforms and self.states[u] != State.SUCCESS
            ]
            if failed:  # dbt skipped it, as the chains made sure
                actions += self._settle(name, State.SKIPPED, because=failed[0])
                continue
            ok = bool(event.succeeded.get(name, False))
            actions += self._settle(name, State.SUCCESS if ok else State.FAILED, build.id)
        return actions + self._dispatch()

    @property
    def finished(self) -> bool:
        """Whether every transform is settled (nothing runs, nothing can start)."""
        return all(state in FINAL for state in self.states.values())

    def downstream(self, name: str) -> list[str]:
        """Every transform that depends on ``name``, directly or not, in order."""
        found = {name}
        for other in self.order:
            if any(up in found for up in self.tasks[other].upstream):
                found.add(other)
        return [n for n in self.order if n in found and n != name]

    # -- the rules -------------------------------------------------------------------------------

    def _settle(
        self, name: str, state: State, build: int | None = None, because: str | None = None
    ) -> list[Action]:
        self.states[name] = state
        actions: list[Action] = [Settle(name, state, build, because)]
        if state in (State.FAILED, State.SKIPPED) and because is None:
            for other in self.downstream(name):
                if self.states[other] == State.PENDING:
                    self.states[other] = State.SKIPPED
                    actions.append(Settle(other, State.SKIPPED, because=name))
        return actions

    def _ready(self, name: str) -> bool:
        task = self.tasks[name]
        return self.states[name] == State.PENDING and all(
            self.states.get(up, State.SUCCESS) == State.SUCCESS for up in task.upstream
        )

    def _busy(self) -> int:
        return sum(len(build.transforms) for build in self.running.values())

    def _dispatch(self) -> list[Action]:
        actions: list[Action] = []
        busy_computes = {build.compute for build in self.running.values()}
        for name in self.order:  # a dependency order: a transform's upstream ones come first
            if self._busy() >= self.limit:
                break
            if not self._ready(name) or self.tasks[name].compute in busy_computes:
                continue
            if not self.tasks[name].buildable:
                actions += self._settle(name, State.SUCCESS)
                continue
            batch = self._batch(name, self.limit - self._busy())
            self._ids += 1
            build = Build(self._ids, self.tasks[name].compute, tuple(batch))
            for member in batch:
                self.states[member] = State.RUNNING
            self.running[build.id] = build
            busy_computes.add(build.compute)
            actions.append(Run(build))
        return actions

    def _batchable(self, name: str) -> bool:
        task = self.tasks[name]
        return task.buildable and all(self.tasks[d].compute == task.compute for d in self._dependents[name])

    def _batch(self, first: str, room: int) -> list[str]:
        """``first`` and the transforms of its compute one build can hold with it (module docstring)."""
        if not self._batchable(first):
            return [first]
        compute = self.tasks[first].compute
        batch = [first]
        for name in self.order:
            if len(batch) >= room:
                break
            task = self.tasks[name]
            if name in batch or task.compute != compute or self.states[name] != State.PENDING:
                continue
            if not self._batchable(name):
                continue
            upstream = [u for u in task.upstream if u in self.tasks]
            if not all(u in batch or self.states[u] == State.SUCCESS for u in upstream):
                continue
            if all((u, name) in self.chains for u in upstream if u in batch):
                batch.append(name)
        return batch
