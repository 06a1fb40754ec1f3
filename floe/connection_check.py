"""The frame every engine's ``validate_connection`` runs its check in.

REQ-014 asks every engine for the same behaviour: answer within the caller's ``timeout`` even when
the server never answers, say at which step a check failed and what to fix, turn engine exceptions
into actionable :class:`~floe.errors.PluginExecutionError` messages, and never let a secret's value
into the result. The steps themselves differ per engine; this frame does not, so it lives here once.

An engine writes its steps as a function of a :data:`Progress` dict: it records the step it is at
under ``"stage"`` (e.g. ``"logging in to acme.snowflakecomputing.com"``) and what it learnt under
``"details"``, and returns the success message and details. :func:`run_check` runs it under a hard
deadline a little under ``timeout`` so that the engine's own answer, naming the step it was stuck
at, beats a caller's deadline of the same length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from floe.deadline import DeadlineExceeded, call_with_deadline
from floe.errors import PluginExecutionError
from floe.model import ComputeConfig, ValidationResult
from floe.secrets import find_secret_refs, floe_names, redact, secret_values

Progress = dict[str, Any]
"""``{"stage": str, "details": dict}`` plus whatever else an engine's messages need."""

OPERATION = "validate_connection"


def budget(timeout: float, margin: float = 0.25) -> float:
    """The seconds a check may take: ``timeout`` less a margin (at most a tenth of it)."""
    return max(0.1, timeout - min(margin, timeout / 10))


def run_check(
    engine: str,
    compute: ComputeConfig,
    timeout: float,
    check: Callable[[Progress, float], tuple[str, Mapping[str, Any]]],
    *,
    no_answer: Callable[[Progress], tuple[str, str]],
    fix: str,
    translate: Callable[[BaseException, ComputeConfig], PluginExecutionError | None] | None = None,
    margin: float = 0.25,
    progress: Progress | None = None,
) -> ValidationResult:
    """Run ``check(progress, seconds)`` under a deadline and turn every outcome into a result.

    :param engine: the engine's name, for error messages.
    :param compute: the compute being checked; its referenced secrets are redacted everywhere.
    :param timeout: the caller's limit in seconds; the check gets :func:`budget` of it.
    :param check: the engine's steps; returns the success message and details.
    :param no_answer: the message and fix when the deadline passes, given the progress so far.
    :param fix: what to check when an exception nobody translated ends the check.
    :param translate: the engine's error translation (its ``translate_error``).
    :param margin: how much under ``timeout`` the deadline is (at most a tenth of it).
    :param progress: the dict the steps record into, when the engine's ``translate`` reads it too.
    :returns: the result; it never raises, and holds no secret's value.
    """
    secrets = secret_values(find_secret_refs(compute.config))
    progress = {"stage": "reading the settings", "details": {}} if progress is None else progress
    seconds = budget(timeout, margin)

    def failed(problem: PluginExecutionError, **extra: Any) -> ValidationResult:
        details = {**progress["details"], "stage": progress["stage"], **extra}
        return result(False, problem.render(), details, secrets, floe_names(compute))

    try:
        message, details = call_with_deadline(lambda: check(progress, seconds), seconds)
    except DeadlineExceeded:
        what, how = no_answer(progress)
        return failed(PluginExecutionError(engine, OPERATION, what, how, compute=compute.name))
    except PluginExecutionError as exc:
        return failed(exc)
    except Exception as exc:  # noqa: BLE001 - reported as a message, never a traceback
        translated = translate(exc, compute) if translate is not None else None
        error = translated or PluginExecutionError(
            engine,
            OPERATION,
            f"{progress['stage']} failed: {type(exc).__name__}: {first_line(str(exc))}",
            fix,
            compute=compute.name,
        )
        return failed(error, error=type(exc).__name__)  # the exception's class, for tools
    return result(True, message, details, secrets, floe_names(compute))


def result(
    success: bool, message: str, details: Mapping[str, Any], secrets: list[str], keep: Iterable[str] = ()
) -> ValidationResult:
    """A :class:`ValidationResult` with every secret value redacted from the message and details
    (``keep``: floe's own names, see :func:`~floe.secrets.floe_names`)."""
    names = list(keep)
    clean = {k: redact(v, secrets, names) if isinstance(v, str) else v for k, v in details.items()}
    return ValidationResult(success, redact(message, secrets, names), clean)


def first_line(text: str) -> str:
    """The first non-blank line of an exception's text (drivers append stack dumps and hints)."""
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


def first_lines(text: str, count: int) -> str:
    """The first ``count`` non-blank lines of ``text``, right-stripped and joined by newlines.

    For messages whose next lines matter (a parser's caret under the error position, dbt's lines
    under its heading) where :func:`first_line` would keep too little; indentation is kept.
    """
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:count])
