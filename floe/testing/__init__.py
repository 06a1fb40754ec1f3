"""Test kit for compute engines: the compliance suite every engine adopts (REQ-020).

Adopt it in a few lines::

    from floe.testing import BaseComputePluginTests, Endpoint

    class TestMyEngine(BaseComputePluginTests):
        @pytest.fixture
        def engine_name(self) -> str:
            return "myengine"

The fixtures the suite uses (``silent_server``, ``refused_address``…) come from floe's pytest
plugin, registered through the ``pytest11`` entry point; nothing in it is autouse.
"""

from __future__ import annotations

from floe.testing.compliance import BaseComputePluginTests, Endpoint

__all__ = ["BaseComputePluginTests", "Endpoint"]
