"""The ``floe`` program ends at once after a compile (floe/cli.py ``entry``): its output and
artifacts complete, its ``atexit`` handlers run, a running thread still waited for; the
interpreter's teardown skipped only there. Each case runs floe in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRODUCT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: orders}
platform: ../enterprise.yaml
transforms:
  - type: dbt
    path: models/orders/
  - type: dbt
    path: models/customers/
"""
ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme}
plugins:
  compute:
    approved: [duckdb]
    default: duckdb
"""
PROBE = """\
import atexit, gc, sys, threading, time
from pathlib import Path
import floe.cli

class Teardown:
    def __del__(self):
        print("torn down", flush=True)

kept = Teardown()  # freed by the interpreter's teardown, if it happens
atexit.register(lambda: print("atexit ran", "gc", gc.get_threshold()[0]))  # no flush: floe must flush it
if "--thread" in sys.argv:  # a thread still running when the compile ends: it waits for the artifact, then 1 s
    sys.argv.remove("--thread")
    artifact = Path(sys.argv[-1], "target", "floe", "compiled.json")

    def work():
        deadline = time.monotonic() + 60
        while not artifact.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1)
        print("thread done", flush=True)

    threading.Thread(target=work).start()
sys.argv = ["floe", *sys.argv[1:]]
floe.cli.entry()
"""


@pytest.fixture
def product(tmp_path: Path) -> Path:
    (tmp_path / "enterprise.yaml").write_text(ENTERPRISE)
    folder = tmp_path / "product"
    for model in ("orders", "customers"):
        (folder / "models" / model).mkdir(parents=True)
    (folder / "floe.yaml").write_text(PRODUCT)
    return folder


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"
    }  # stdout buffered, as in a shell pipe
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_a_compile_ends_at_once_with_its_output_artifacts_and_atexit_handlers(product: Path) -> None:
    done = probe("compile", str(product))
    assert done.returncode == 0, done.stderr
    assert "ok: acme → orders: 2 transform(s) on duckdb" in done.stdout
    assert f"wrote {product / 'target' / 'floe' / 'compiled.json'}" in done.stdout
    assert done.stdout.rstrip().endswith("atexit ran gc 100000")  # young garbage collected less often
    assert "torn down" not in done.stdout  # the teardown was skipped
    compiled = json.loads((product / "target" / "floe" / "compiled.json").read_text())
    assert [t["name"] for t in compiled["transforms"]] == ["orders", "customers"]
    assert "duckdb" in (product / "target" / "floe" / "profiles.yml").read_text()


def test_an_invalid_product_ends_at_once_with_its_error(product: Path) -> None:
    (product / "floe.yaml").write_text(PRODUCT.replace("models/customers/", "models/missing/"))
    done = probe("compile", str(product))
    assert done.returncode == 1
    assert "path 'models/missing/' does not exist" in done.stderr
    assert "atexit ran" in done.stdout and "torn down" not in done.stdout


def test_a_running_thread_or_another_command_gets_the_usual_exit(product: Path) -> None:
    waited = probe("--thread", "compile", str(product))
    assert waited.returncode == 0, waited.stderr
    assert "thread done" in waited.stdout and "torn down" in waited.stdout
    other = probe("engines")
    assert other.returncode == 0, other.stderr
    assert "duckdb" in other.stdout and "torn down" in other.stdout
    assert "atexit ran gc 700" in other.stdout  # another command keeps Python's threshold


def test_the_installed_program_and_python_m_floe_end_alike_into_a_closed_pipe(product: Path) -> None:
    floe = Path(sys.executable).with_name("floe")
    for command in ([str(floe)], [sys.executable, "-m", "floe"]):
        shell = f"{' '.join(command)} compile {product} | true; echo status=${{PIPESTATUS[0]}}"
        done = subprocess.run(
            shell, shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120
        )
        assert "status=0" in done.stdout, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
        full = subprocess.run(
            [*command, "compile", str(product)], capture_output=True, text=True, timeout=120
        )
        last = full.stdout.rstrip().splitlines()[-1]  # the whole output, to its last line
        assert full.returncode == 0 and last.startswith("artifacts unchanged in "), full.stdout + full.stderr


def test_main_called_in_process_returns(product: Path) -> None:
    code = textwrap.dedent(f"""\
        import floe.cli
        import gc
        status = floe.cli.main(["compile", {str(product)!r}])
        print("returned", status, "gc", gc.get_threshold()[0])
        """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "returned 0 gc 700" in done.stdout, done.stderr  # a caller's collector is left alone


def test_a_repeated_compile_leaves_identical_artifacts_alone_and_rewrites_changed_ones(product: Path) -> None:
    first = probe("compile", str(product))
    assert first.returncode == 0 and first.stdout.count("wrote ") == 2, first.stdout + first.stderr
    out = product / "target" / "floe"
    before = {name: (out / name).stat() for name in ("compiled.json", "profiles.yml")}
    again = probe("compile", str(product))
    assert again.returncode == 0, again.stderr
    assert "wrote " not in again.stdout and f"artifacts unchanged in {out}" in again.stdout
    for name, stat in before.items():  # not rewritten: same file, same mtime
        now = (out / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    (out / "profiles.yml").write_text("tampered\n")  # a changed artifact is rewritten, the other kept
    fixed = probe("compile", str(product))
    assert f"wrote {out / 'profiles.yml'}" in fixed.stdout and "compiled.json" not in fixed.stdout
    assert "duckdb" in (out / "profiles.yml").read_text()
    (product / "models" / "refunds").mkdir()
    (product / "floe.yaml").write_text(PRODUCT + "  - type: dbt\n    path: models/refunds/\n")
    changed = probe("compile", str(product))
    assert f"wrote {out / 'compiled.json'}" in changed.stdout, changed.stdout + changed.stderr
