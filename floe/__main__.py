"""``python -m floe``."""

from floe.cli import main

raise SystemExit(main())
