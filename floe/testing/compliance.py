"""``BaseComputePluginTests``: the behaviour every compute engine must show (REQ-020).

The suite is one class per behaviour, each in a module of its own and each usable alone:

- :class:`~floe.testing.compliance_profile.ProfileTests`: config schema, dbt profile, ``dbt debug``;
- :class:`~floe.testing.compliance_profile.PackageTests`: bounded, installed dbt packages;
- :class:`~floe.testing.compliance_connection.ConnectionTests`: ``validate_connection``;
- :class:`~floe.testing.compliance_resources.ResourceTests`: Kubernetes requests and limits;
- :class:`~floe.testing.compliance_catalog.CatalogAttachmentTests`: reaching the Iceberg catalog;
- :class:`~floe.testing.compliance_secrets.SecretTests`: secret references, no secret in outputs;
- :class:`~floe.testing.compliance_errors.ErrorTranslationTests`: actionable errors;
- :class:`~floe.testing.compliance_run.RunHookTests`: the run hooks, and a transform in ``floe run``;
- :class:`~floe.testing.compliance_bridge.BridgeTests`: the bridge hooks of an engine floe bridges.

:class:`BaseComputePluginTests` inherits them all; an engine adopts the suite by subclassing it and
providing ``engine_name`` and the fixtures that describe what it can do (see
:class:`~floe.testing.compliance_base.EngineTestBase`): the suite never checks engine names.

A new behaviour is a class deriving from ``EngineTestBase`` in a module of its own, added to the
bases of ``BaseComputePluginTests`` below (one line). A behaviour only some engines have is
opt-in: its class checks what the adopter declares (a fixture), and fails, never skips, when a
declaration is missing.

Each test names the requirement it proves at the end of its docstring (``(REQ-014)``), not with a
marker: the suite runs in its adopters' pytest, which must not need to know floe's markers.
"""

from __future__ import annotations

from floe.testing.compliance_base import Endpoint, EngineTestBase, render_env_vars
from floe.testing.compliance_bridge import BridgeIO, BridgeTests
from floe.testing.compliance_catalog import CatalogAttachmentTests
from floe.testing.compliance_connection import ConnectionTests
from floe.testing.compliance_errors import ErrorTranslationTests
from floe.testing.compliance_profile import PackageTests, ProfileTests
from floe.testing.compliance_resources import ResourceTests
from floe.testing.compliance_run import RunHookTests
from floe.testing.compliance_secrets import SecretTests, secret_keys

__all__ = [
    "BaseComputePluginTests",
    "BridgeIO",
    "BridgeTests",
    "CatalogAttachmentTests",
    "ConnectionTests",
    "Endpoint",
    "EngineTestBase",
    "ErrorTranslationTests",
    "PackageTests",
    "ProfileTests",
    "ResourceTests",
    "RunHookTests",
    "SecretTests",
    "render_env_vars",
    "secret_keys",
]


class BaseComputePluginTests(
    ProfileTests,
    PackageTests,
    ConnectionTests,
    ResourceTests,
    CatalogAttachmentTests,
    SecretTests,
    ErrorTranslationTests,
    RunHookTests,
    BridgeTests,
):
    """Inherit, provide ``engine_name`` and the fixtures for what the engine can do, and every
    hook of the engine is checked."""
