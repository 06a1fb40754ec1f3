"""Where a data product keeps what floe reads and writes, by name: one place for both the compile
(:mod:`floe.compiled`) and the start-up check that must not import it (:mod:`floe.compile_stamp`)."""

from __future__ import annotations

PRODUCT_FILE = "floe.yaml"
"""The data product's manifest in its directory."""
STATE_DIR = ".floe"
"""The product's private folder (``0700``): the embedded catalog, run logs, the compile stamp."""
ARTIFACT_PARTS = ("target", "floe")
"""The folder of the compile's artifacts, below the product directory."""
ARTIFACT_FILES = ("profiles.yml", "compiled.json")
"""The compile's artifacts, in the order they are written."""
