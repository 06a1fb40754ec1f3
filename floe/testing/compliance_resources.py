"""Compliance: the engine's default Kubernetes resources are well-formed (REQ-015).

The structure is checked as the Kubernetes API server would check a container's ``resources``
(``requests`` and ``limits``, resource names, quantities, no request above its limit) with floe's
own quantity parser: the ``kubernetes`` package is not needed. Overrides are floe's business
(:func:`floe.resources.merge_requirements`), tested with floe; the suite checks the engine's own
defaults.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from floe.model import ComputeConfig
from floe.plugins import Engine
from floe.resources import RESOURCE_NAMES, QuantityError, parse_quantity
from floe.testing.compliance_base import EngineTestBase, call_hook


class ResourceTests(EngineTestBase):
    """``get_resource_requirements`` gives requests and limits a pod can be scheduled with."""

    def test_resource_requirements_are_valid_kubernetes_requests_and_limits(
        self,
        engine: Engine,
        compute: ComputeConfig,
    ) -> None:
        """Engine side: the defaults the engine's own ``floe_get_resource_requirements`` returns,
        before floe applies any override. (REQ-015)"""
        requirements = call_hook(engine, "floe_get_resource_requirements", compute=compute)
        assert isinstance(requirements, Mapping), f"a {type(requirements).__name__}, not a mapping"
        assert set(requirements) == {"requests", "limits"}, (
            f"keys {sorted(requirements)}; a container's resources are `requests` and `limits`"
        )
        values = {}
        for kind in ("requests", "limits"):
            quantities = requirements[kind]
            assert isinstance(quantities, Mapping), f"{kind} is a {type(quantities).__name__}, not a mapping"
            assert {"cpu", "memory"} <= set(quantities), f"{kind} needs cpu and memory"
            for name, text in quantities.items():
                assert name in RESOURCE_NAMES, f"{kind}.{name}: not one of {', '.join(RESOURCE_NAMES)}"
                assert isinstance(text, str), (
                    f'{kind}.{name} is {text!r}: give quantities as strings ("2", "500m")'
                )
                try:
                    value = parse_quantity(text)
                except QuantityError as exc:
                    pytest.fail(f"{kind}.{name}: {exc}")
                assert value > 0, f"{kind}.{name} is {text!r}: a default must be positive"
                values[kind, name] = value
        for name in requirements["requests"]:
            limit = values.get(("limits", name))
            assert limit is None or values["requests", name] <= limit, (
                f"requests.{name} {requirements['requests'][name]} is above limits.{name} "
                f"{requirements['limits'][name]}: Kubernetes refuses such a pod"
            )
