"""Test kit for compute engines: the compliance suite every engine adopts (REQ-020).

Adopt it in a few lines::

    from floe.testing import BaseComputePluginTests, Endpoint

    class TestMyEngine(BaseComputePluginTests):
        @pytest.fixture
        def engine_name(self) -> str:
            return "myengine"

        ...  # engine_endpoint, address_settings or local_settings, client_error: see compliance.py

One base class per behaviour (``ProfileTests``, ``ConnectionTests``…) is exported too, for an author
who wants to run one behaviour alone while writing an engine.

The fixtures the suite uses (``silent_server``, ``refused_address``…) come from floe's pytest
plugin, registered through the ``pytest11`` entry point; nothing in it is autouse.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BaseComputePluginTests",
    "BridgeIO",
    "BridgeTests",
    "CatalogAttachmentTests",
    "ConnectionTests",
    "Endpoint",
    "Engine",
    "ErrorTranslationTests",
    "PackageTests",
    "ProfileTests",
    "ResourceTests",
    "RunHookTests",
    "SecretTests",
    "config_validator",
]
_ELSEWHERE = {"Engine": "floe.plugins", "config_validator": "floe.testing.compliance_secrets"}
"""What is not :mod:`floe.testing.compliance`'s: the engine handle the suite's ``engine`` fixture
gives, and a validator for an engine's own tests of its config schema."""

if TYPE_CHECKING:
    from floe.plugins import Engine
    from floe.testing.compliance import (
        BaseComputePluginTests,
        BridgeIO,
        BridgeTests,
        CatalogAttachmentTests,
        ConnectionTests,
        Endpoint,
        ErrorTranslationTests,
        PackageTests,
        ProfileTests,
        ResourceTests,
        RunHookTests,
        SecretTests,
    )
    from floe.testing.compliance_secrets import config_validator


def __getattr__(name: str) -> Any:
    # Lazy, so that loading floe's pytest plugin (this package) costs nothing in unrelated runs.
    if name in __all__:
        return getattr(importlib.import_module(_ELSEWHERE.get(name, "floe.testing.compliance")), name)
    raise AttributeError(f"module 'floe.testing' has no attribute {name!r}")
