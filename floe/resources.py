"""Kubernetes resource quantities: parsing, comparison, and merging overrides over defaults."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from floe.model import ResourceOverrides

_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(
    r"^(?P<num>[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<exp>[eE][+-]?[0-9]+)?"
    r"(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")


class QuantityError(ValueError):
    """A string is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity (``500m`` → 0.5, ``1Gi`` → 1073741824)."""
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None or (match["exp"] and match["suffix"]):
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    try:
        value = Decimal(match["num"] + (match["exp"] or ""))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise QuantityError(f"{text!r} is not a Kubernetes quantity") from exc
    return value * _SUFFIX[match["suffix"] or ""]


def requirements_problem(requirements: object) -> str | None:
    """What is wrong with requirements an engine returned (``None`` when they are well formed):
    a mapping of ``requests`` and ``limits``, each a mapping of known resources to quantities,
    no request above its limit."""
    if not isinstance(requirements, dict):
        return f"expected a mapping of requests and limits, found {type(requirements).__name__}"
    stray = [k for k in requirements if k not in ("requests", "limits")]
    if stray:
        return f"unknown key {stray[0]!r} (expected requests and limits)"
    for kind in ("requests", "limits"):
        values = requirements.get(kind, {})
        if not isinstance(values, dict):
            return f"{kind} is a {type(values).__name__}, expected a mapping of resources to quantities"
        for key, value in values.items():
            if key not in RESOURCE_NAMES:
                return f"{kind}.{key}: unknown resource (expected one of {', '.join(RESOURCE_NAMES)})"
            try:
                parse_quantity(value)
            except QuantityError as exc:
                return f"{kind}.{key}: {exc}"
    limits = requirements.get("limits", {})
    for key, request in requirements.get("requests", {}).items():
        if key in limits and parse_quantity(request) > parse_quantity(limits[key]):
            return f"requests.{key} {request} is above limits.{key} {limits[key]}"
    return None


def merge_requirements(
    defaults: dict[str, dict[str, str]], overrides: ResourceOverrides
) -> dict[str, dict[str, str]]:
    """Overrides over the engine's defaults; a limit below its request raises ``ValueError``.

    When an override raises a request above the default limit, the limit follows the request, so a
    manifest need not restate both; an explicit limit below an explicit request is an error.
    """
    requests = {**defaults.get("requests", {}), **overrides.requests}
    limits = {**defaults.get("limits", {}), **overrides.limits}
    for key, value in list(requests.items()) + list(limits.items()):
        parse_quantity(value)
        if key not in RESOURCE_NAMES:
            raise ValueError(f"unknown resource {key!r}; expected one of {', '.join(RESOURCE_NAMES)}")
    for key, request in requests.items():
        limit = limits.get(key)
        if limit is None or parse_quantity(request) <= parse_quantity(limit):
            continue
        if key in overrides.limits:
            raise ValueError(
                f"requests.{key} {request} is above limits.{key} {limit}; "
                f"a pod cannot request more than its limit"
            )
        limits[key] = request
    return {"requests": requests, "limits": limits}
