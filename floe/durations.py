"""Durations as manifests write them (``90s``, ``30m``, ``1.5h``): the schema checks their form."""

from __future__ import annotations

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """The seconds ``text`` stands for.

    :raises ValueError: ``text`` is not a number followed by ``s``, ``m`` or ``h``.
    """
    unit = _UNIT_SECONDS.get(text[-1:])
    if unit is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m or 1.5h")
    return float(text[:-1]) * unit
