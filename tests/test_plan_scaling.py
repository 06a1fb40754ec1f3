"""Issue 15 §4: the plan's graph is built in time linear in the project, not nodes × transforms.

``benchmarks/scale.py`` found ``floe plan`` of 10,000 models (100 transforms) twice as slow as
dbt's own partial parse when nothing changed; 15 s of it was assigning each model to the transform
whose folder holds it (:func:`floe.execution.graph.plan`), which compares every model's path with
every transform's folder. Counted here in Python function calls (deterministic, not wall time):
ten times the models in ten times the transforms must cost about ten times the calls, not a hundred.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from floe.execution.graph import Node, TransformInput, plan


def _project(transforms: int, per_transform: int) -> tuple[list[Node], list[TransformInput]]:
    nodes, inputs = [], []
    for t in range(transforms):
        inputs.append(TransformInput(name=f"t{t:03d}", path=f"models/t{t:03d}/", compute="duckdb"))
        for i in range(per_transform):
            name = f"t{t:03d}_m{i:03d}"
            parent = () if i == 0 else (f"model.p.t{t:03d}_m{(i - 1) // 2:03d}",)
            nodes.append(
                Node(
                    f"model.p.{name}",
                    "model",
                    "p",
                    name,
                    f"models/t{t:03d}/{name}.sql",
                    ("p", f"t{t:03d}", name),
                    parent,
                    "table",
                )
            )
    return nodes, inputs


def _calls(transforms: int, per_transform: int) -> int:
    nodes, inputs = _project(transforms, per_transform)
    count = 0

    def counter(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(counter)
    try:
        planned = plan(nodes, inputs, "p")
    finally:
        sys.setprofile(None)
    assert len(planned.transforms) == transforms and not planned.unassigned
    return count


def test_assigning_models_to_transforms_is_linear() -> None:
    small = _calls(5, 20)  # 100 models in 5 transforms
    large = _calls(50, 20)  # 1,000 models in 50 transforms
    assert large / small <= 20, f"{small} calls for 100 models, {large} for 1,000: x{large / small:.0f}"
