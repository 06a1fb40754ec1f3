"""JSON Schema ``pattern`` with ECMA-262's ``$``: a trailing newline never passes an anchored pattern.

Python's ``$`` also matches before a final newline, so without floe's pattern keyword a catalog named
``"lake\\n"`` or a secret named ``"ABC\\n"`` would pass the schema and carry the newline into SQL, file
names and Kubernetes objects.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from floe.fastschema import ecma_pattern
from floe.schemas import SCHEMA_BASE, SchemaStore

PATTERNS = [
    "^[a-z][a-z0-9_]*$",
    "^[A-Z_][A-Z0-9_]{0,127}$",
    "^https?://[^\\s]+$",
    "^a$|^\\[[0-9:.]+\\]$",
    "^[$a-z]+$",
    "^x\\$$",
]


@settings(max_examples=400, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), text=st.text(alphabet="az_AZ09$[]:.\n /h", max_size=10))
def test_anchored_patterns_match_the_whole_text(pattern: str, text: str) -> None:
    """``^X$`` (and alternations of such) mean: the whole text matches X, as in ECMA-262."""
    whole = any(re.fullmatch(alternative[1:-1], text) for alternative in pattern.split("|"))
    assert bool(ecma_pattern(pattern).search(text)) == whole


def test_a_trailing_newline_is_refused_in_names(tmp_path: Path) -> None:
    store = SchemaStore()
    uri = store.add(
        {
            "$id": SCHEMA_BASE + "test-names.schema.json",
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "env": {"type": "object", "propertyNames": {"pattern": "^[A-Z_]+$"}},
            },
        }
    )
    validator = store.validator(uri)
    assert validator.is_valid({"name": "lake", "env": {"ABC": 1}})
    assert not validator.is_valid({"name": "lake\n"})
    assert not validator.is_valid({"env": {"ABC\n": 1}})
    messages = [e.message for e in validator.iter_errors({"name": "lake\n"})]
    assert messages == ["'lake\\n' does not match '^[a-z][a-z0-9_]*$'"]
