"""Compliance: the engine turns its client's errors into actionable floe errors (REQ-018)."""

from __future__ import annotations

from floe.errors import PluginExecutionError
from floe.model import ComputeConfig
from floe.plugins import Engine
from floe.testing.compliance_base import EngineTestBase, assert_actionable, call_hook


class ErrorTranslationTests(EngineTestBase):
    """``translate_error`` knows a real error of the engine's client and says how to fix it."""

    def test_client_errors_become_actionable_plugin_errors(
        self,
        engine: Engine,
        compute: ComputeConfig,
        client_error: BaseException,
    ) -> None:
        """Engine side: the engine's own ``floe_translate_error`` for the adopter's ``client_error``. (REQ-018)"""
        translated = call_hook(engine, "floe_translate_error", error=client_error, compute=compute)
        assert isinstance(translated, PluginExecutionError), (
            f"floe_translate_error returned {translated!r} for {type(client_error).__name__}: {client_error}"
        )
        assert translated.problems[0].fix, "a translated error must say how to fix it"
        assert_actionable(translated.render())
