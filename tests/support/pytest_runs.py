"""What every pytest process floe's tests start is given: the installed plugins that are not ours to load.

pytest loads every plugin installed in the environment (the ``pytest11`` entry points). floe's test
extra installs ``bqemulator`` (BigQuery's peer), whose plugin imports ``testcontainers``, which is
not installed (it drives Docker, which the tests never use): a pytest that loads it stops at
start-up. The project's own runs disable it in their configuration (``setup.cfg``, and the example
engine's ``pyproject.toml`` for ``pytest examples/floe-engine-postgres/tests``); a pytest started by
a test in a temporary directory reads neither, so it gets :func:`plugin_args` on its command line.

Why not another way: ``PYTEST_ADDOPTS`` is removed by ``pytester`` from the runs it starts;
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` would also drop floe's own plugin, whose loading through its
entry point is what an adopter of the compliance suite relies on; installing ``testcontainers``
would load a plugin from floe's test extra into runs that must see floe and pytest only.
``tests/test_compliance_suite.py`` checks that this list names exactly the installed plugins that
cannot load, and that the configuration files disable each.
"""

from __future__ import annotations

FOREIGN_PLUGINS = ("bqemulator",)
"""Entry-point names of installed pytest plugins that cannot load here (see the module docstring)."""


def plugin_args() -> list[str]:
    """``-p no:NAME`` for each of :data:`FOREIGN_PLUGINS`."""
    return [arg for name in FOREIGN_PLUGINS for arg in ("-p", f"no:{name}")]
