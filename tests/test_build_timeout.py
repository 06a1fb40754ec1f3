"""``timeout`` of an approved compute: a build that runs longer is stopped and fails, named.

The governance half compiles real manifests (a lower level may only lower a timeout; a malformed
one is located). The run half holds a DuckDB build on the gate of :mod:`tests.test_run_robustness`
(nothing timed but the timeout itself): floe kills the worker when the compute's 3 s run out, fails
the transform naming the compute, the transform, the limit and where it was set, skips what
depends on it, and the next run (the gate open) succeeds with the same manifests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from floe.compiler import compile_path
from floe.errors import FloeError
from tests.test_run_robustness import Gate, assert_built, run_again, start_run, wait_for, write_product

# the ``gate`` fixture, shared with the robustness tests
from tests.test_run_robustness import gate as gate

PRODUCT_TIMEOUT = (
    "plugins:\n  compute:\n    approved:\n      - duckdb\n      - {name: duckdb-b, timeout: %s}\n"
)


def with_timeouts(root: Path, enterprise: str | None, product: str | None) -> Path:
    """The robustness product, with a timeout on ``duckdb-b`` in the enterprise manifest and/or floe.yaml."""
    path = write_product(root)
    if enterprise is not None:
        manifest = path / "platform/enterprise.yaml"
        text = manifest.read_text()
        manifest.write_text(
            text.replace("engine: duckdb\n", f"engine: duckdb\n        timeout: {enterprise}\n", 1)
        )
    if product is not None:
        floe_yaml = path / "floe.yaml"
        floe_yaml.write_text(floe_yaml.read_text() + PRODUCT_TIMEOUT % product)
    return path


def failure(path: Path) -> FloeError:
    with pytest.raises(FloeError) as exc:
        compile_path(path)
    return exc.value


def test_a_lower_level_may_lower_a_timeout_and_the_lowest_is_the_computes(tmp_path: Path) -> None:
    path = with_timeouts(tmp_path / "p", "30m", "90s")
    timeout = compile_path(path).governance.compute_for("duckdb-b", "dev").timeout
    assert timeout is not None and timeout.seconds == 90 and timeout.written == "90s"
    assert re.fullmatch(r"data product 'faults' \(.*floe\.yaml:\d+\)", timeout.set_at), timeout.set_at
    inherited = compile_path(with_timeouts(tmp_path / "q", "1.5h", None)).governance.compute_for(
        "duckdb-b", "dev"
    )
    assert inherited.timeout is not None and inherited.timeout.seconds == 5400
    assert "manifest 'acme'" in inherited.timeout.set_at
    free = compile_path(with_timeouts(tmp_path / "r", None, None)).governance.compute_for("duckdb-b", "dev")
    assert free.timeout is None


def test_a_lower_level_may_not_raise_a_timeout(tmp_path: Path) -> None:
    path = with_timeouts(tmp_path / "p", "30m", "2h")
    (problem,) = failure(path).problems
    assert problem.path == "$.plugins.compute.approved[1].timeout"
    assert problem.file is not None and problem.file.endswith("floe.yaml")
    assert problem.line == len((path / "floe.yaml").read_text().splitlines())
    assert "timeout 2h is above the 30m that manifest 'acme' allows" in problem.message
    assert (
        "enterprise.yaml:" in problem.message and "a lower level may only lower a timeout" in problem.message
    )
    assert problem.expected == "at most 30m"


@pytest.mark.parametrize("bad", ["0s", "10", "1h30m", "-5m", "soon"])
def test_a_malformed_timeout_is_located_and_says_what_is_expected(tmp_path: Path, bad: str) -> None:
    path = with_timeouts(tmp_path / "p", f"'{bad}'", None)
    problems = failure(path).problems
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.path == "$.plugins.compute.approved[1].timeout"
    assert problem.file is not None and problem.file.endswith("enterprise.yaml")
    assert problem.line is not None
    assert "a number and a unit (s, m or h), such as 90s, 30m or 1.5h" in str(problem.expected)
    assert "pattern" not in str(problem), problem


def test_a_build_past_its_computes_timeout_is_killed_named_and_the_next_run_succeeds(
    tmp_path: Path, gate: Gate
) -> None:
    root = with_timeouts(tmp_path / "faults", "30m", "3s")
    proc, output = start_run(root, gate)
    wait_for(output, r"\[gated\] started on duckdb-b", proc)
    deadline = time.monotonic() + 180
    while gate.requests == 0 and time.monotonic() < deadline:  # inside the build, held on the gate
        time.sleep(0.05)
    assert proc.wait(timeout=120) == 1, output.read_text()  # the gate never opened: only the timeout ends it
    text = output.read_text()
    assert "[gated] FAILED on duckdb-b" in text, text
    assert re.search(
        r"transform 'gated' on compute 'duckdb-b' ran longer than the compute's timeout of 3s, "
        r"set by data product 'faults' \(\S*floe\.yaml:\d+\); floe killed its dbt process",
        text,
    ), text
    assert re.search(r"\[after\] (SKIPPED|skipped)", text), text
    assert "Traceback" not in text, text

    again = run_again(root, gate)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_built(root)


def test_explain_shows_the_timeout_where_it_was_set_and_what_it_lowered(tmp_path: Path) -> None:
    import floe

    path = with_timeouts(tmp_path / "p", "30m", "90s")
    (block,) = floe.explain(str(path), environment="dev", compute="duckdb-b").settings
    (timeout,) = [r for r in block.resources if r.key == "timeout"]
    assert timeout.value == "90s" and timeout.rule == "lower only"
    assert timeout.where is not None and timeout.where.path == "$.plugins.compute.approved[1].timeout"
    assert [w.value for w in timeout.replaced] == ["30m"]
    (free,) = floe.explain(str(path), environment="dev", compute="duckdb").settings
    assert "timeout" not in {r.key for r in free.resources}
