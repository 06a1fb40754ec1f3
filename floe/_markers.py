"""pluggy markers of the ``floe`` project.

``hookimpl`` is public (re-exported as :data:`floe.hookimpl`): engines use it to mark their hooks.
``hookspec`` stays private: only :mod:`floe.hookspecs` declares hooks.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "floe"
"""pluggy project name and the entry-point group engines are discovered through."""

API_VERSION = 1
"""Version of the engine interface; an engine declaring another major version is not loaded."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
