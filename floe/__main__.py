"""``python -m floe``."""

from floe.cli import entry

entry()
