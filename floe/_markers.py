"""pluggy markers of the ``floe`` project.

``hookimpl`` is public (re-exported as :data:`floe.enginekit.hookimpl` and :data:`floe.hookimpl`):
engines use it to mark their hooks.
``hookspec`` stays private: only :mod:`floe.hookspecs` declares hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pluggy

PROJECT_NAME = "floe"
"""pluggy project name and the entry-point group engines are discovered through."""

API_VERSION = 1
"""Version of the engine interface; an engine declaring another major version is not loaded."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

_F = TypeVar("_F", bound=Callable[..., object])
REQUIRED = "floe_required"
"""The attribute :func:`engine_hookspec` sets on a spec: whether every engine must implement it."""


def engine_hookspec(*, required: bool) -> Callable[[_F], _F]:
    """Declare an engine hook in :mod:`floe.hookspecs`: ``firstresult`` (floe calls one engine at a
    time), and ``required`` or not. A hook that is not required has a default (written in
    :mod:`floe.engine_defaults`) that an engine declaring nothing gets."""

    def mark(function: _F) -> _F:
        setattr(function, REQUIRED, required)
        return hookspec(firstresult=True)(function)

    return mark
