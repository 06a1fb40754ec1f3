"""floe's errors: every one carries the problems a user can act on, never a traceback.

A :class:`Problem` names the file, line and JSON path (``$.a.b[0]``) it is about, what was
expected and how to fix it. An error holds all the problems of one phase so that a user sees them
in one go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Self

import attrs


@attrs.frozen
class Problem:
    """One thing wrong with the input, located as precisely as floe can."""

    message: str
    file: str | None = None
    line: int | None = None
    path: str | None = None
    expected: str | None = None
    fix: str | None = None

    def render(self) -> str:
        """``file:line: $.path: message`` followed by the expectation and the fix."""
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        head = ": ".join(p for p in (where, self.path, self.message) if p)
        lines = [head]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


class FloeError(Exception):
    """Base of every error floe reports to a user."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """All problems, one block each."""
        return "\n".join(p.render() for p in self.problems)

    def located(self, problems: Iterable[Problem]) -> Self:
        """This error, of the same class and with the same attributes, saying ``problems`` instead:
        for a caller that knows where (file, line, ``$.path``) what the raiser could not."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.problems = tuple(problems)
        clone.args = (clone.render(),)
        return clone


class ManifestError(FloeError):
    """A manifest or floe.yaml is not valid: syntax, types, unknown keys, constraints."""


class GovernanceError(FloeError):
    """The manifest hierarchy is inconsistent: missing parents, cycles, widening, bad defaults."""


class InvalidComputeError(GovernanceError):
    """A transform selects a compute outside its effective approved list (REQ-022, REQ-023)."""


class EnvironmentParityError(GovernanceError):
    """Compute varies by environment, which REQ-024 forbids because it causes environment drift."""


class PluginExecutionError(FloeError):
    """An engine failed while doing its job; the message says what to fix (REQ-018)."""

    def __init__(
        self,
        engine: str,
        operation: str,
        message: str,
        fix: str | None = None,
        *,
        compute: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.engine = engine
        self.operation = operation
        self.compute = compute
        self.cause = cause
        subject = f"compute {compute!r} (engine {engine})" if compute else f"engine {engine}"
        super().__init__([Problem(f"{subject}: {operation} failed: {message}", fix=fix)])


class BrokenPluginError(PluginExecutionError):
    """An engine plugin broke floe's engine API (a hook returned the wrong thing): the plugin is at
    fault, not the manifest, so the problem names the plugin and its distribution, not a file."""


class UnattachableCatalog(FloeError):
    """An engine attaches Iceberg catalogs, but not the one the manifest declares.

    Raised by an engine's ``floe_catalog_access`` (or ``floe_run_profile``); :attr:`key` is the
    catalog setting at fault (``("catalog", "name")``…), so that floe locates the problems at the
    manifest, line and ``$.catalog`` key that declare it, before anything starts.
    """

    def __init__(self, key: tuple[str, ...], problems: Iterable[Problem] | str) -> None:
        super().__init__(problems)
        self.key = key
