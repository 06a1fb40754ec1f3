"""The validate_connection frame every engine shares (floe.connection_check.run_check).

The engines' own tests prove it against their peers; these pin the frame's promises directly: an
answer within the timeout naming the step that hung, untranslated exceptions turned into advice,
translated ones passed through, and no secret's value anywhere in the result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from floe.connection_check import Progress, run_check
from floe.errors import PluginExecutionError
from floe.model import ComputeConfig, SecretReference

CANARY = "canary-Secret-9f3b"


@pytest.fixture
def compute(monkeypatch: pytest.MonkeyPatch) -> ComputeConfig:
    monkeypatch.setenv("FLOE_TEST_PASSWORD", CANARY)
    return ComputeConfig(
        "warehouse", "test", {"host": "db", "password": SecretReference("FLOE_TEST_PASSWORD")}
    )


def no_answer(progress: Progress) -> tuple[str, str]:
    return f"no answer while {progress['stage']}", "check the server"


@pytest.mark.req("REQ-014")
def test_a_hung_step_is_reported_within_the_timeout_with_its_stage(compute: ComputeConfig) -> None:
    release = threading.Event()

    def check(progress: Progress, seconds: float) -> tuple[str, Mapping[str, Any]]:
        progress["stage"] = "waiting for the login answer"
        progress["details"]["host"] = "db"
        release.wait(30)
        return "never", {}

    start = time.monotonic()
    result = run_check("test", compute, 1.0, check, no_answer=no_answer, fix="unused")
    took = time.monotonic() - start
    release.set()
    assert not result.success
    assert took < 1.0, f"answered after {took:.2f} s, the timeout was 1 s"
    assert "no answer while waiting for the login answer" in result.message
    assert "check the server" in result.message
    assert result.details == {"host": "db", "stage": "waiting for the login answer"}


def test_an_untranslated_exception_becomes_advice_without_the_secret(compute: ComputeConfig) -> None:
    def check(progress: Progress, seconds: float) -> tuple[str, Mapping[str, Any]]:
        progress["stage"] = "logging in"
        raise ConnectionResetError(f"peer reset while sending {CANARY}\n  at frame 1\n  at frame 2")

    result = run_check("test", compute, 5.0, check, no_answer=no_answer, fix="check host and password")
    assert not result.success
    assert "logging in failed: ConnectionResetError: peer reset while sending ***" in result.message
    assert "check host and password" in result.message
    assert "frame 2" not in result.message  # the first line only: drivers append stack dumps
    assert result.details["error"] == "ConnectionResetError"
    assert CANARY not in repr(result)


@pytest.mark.req("REQ-018")
def test_translation_is_used_and_plugin_errors_pass_through(compute: ComputeConfig) -> None:
    def translate(exc: BaseException, c: ComputeConfig) -> PluginExecutionError | None:
        if isinstance(exc, PermissionError):
            return PluginExecutionError(
                "test", "validate_connection", f"denied ({CANARY})", "ask for a grant", compute=c.name
            )
        return None

    def denied(progress: Progress, seconds: float) -> tuple[str, Mapping[str, Any]]:
        raise PermissionError("no")

    def refused(progress: Progress, seconds: float) -> tuple[str, Mapping[str, Any]]:
        raise PluginExecutionError("test", "validate_connection", "schema missing", "create it")

    translated = run_check("test", compute, 5.0, denied, no_answer=no_answer, fix="x", translate=translate)
    assert "ask for a grant" in translated.message and CANARY not in translated.message
    passed = run_check("test", compute, 5.0, refused, no_answer=no_answer, fix="x", translate=translate)
    assert "schema missing" in passed.message and "create it" in passed.message


def test_success_keeps_the_engines_message_and_details_redacted(compute: ComputeConfig) -> None:
    def check(progress: Progress, seconds: float) -> tuple[str, Mapping[str, Any]]:
        assert 0 < seconds < 5.0  # the steps get a budget a little under the timeout
        return f"logged in with {CANARY}", {"user": f"svc:{CANARY}", "rows": 1}

    result = run_check("test", compute, 5.0, check, no_answer=no_answer, fix="x")
    assert result.success
    assert result.message == "logged in with ***"
    assert result.details == {"user": "svc:***", "rows": 1}
