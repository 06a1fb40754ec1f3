"""``floe compile PRODUCT`` answered from the stamp of its last compile (floe/compile_stamp.py):
when nothing it depends on changed, the program prints what the compile would print without
importing attrs, cattrs, pluggy or jsonschema; when anything changed, the real compile runs and
reports what it finds. Every case runs the ``floe`` program in a real process; whether the stamp
answered is read from ``python -X importtime`` (no cattrs imported), never from timing."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
CANARY = "floe-stamp-canary-5c1e7a"
"""The value of a variable the compile consults: never written to the stamp."""
ENTERPRISE = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: enterprise
metadata: {name: acme, owner: platform-team}
plugins:
  compute:
    approved:
      - name: duckdb
        config: { threads: 4 }
      - name: big
        engine: duckdb
        config: { threads: 8 }
    default: duckdb
environments:
  - name: dev
  - name: prod
"""
DOMAIN = """\
apiVersion: floe.dev/v1
kind: Manifest
scope: domain
parent: ../enterprise.yaml
metadata: {name: sales}
plugins:
  compute:
    approved: [duckdb, big]
"""
PRODUCT = """\
apiVersion: floe.dev/v1
kind: DataProduct
metadata: {name: orders, owner: sales}
platform: ../platform/domains/sales.yaml
transforms:
  - type: dbt
    path: models/orders/
    compute: duckdb
  - type: dbt
    path: models/customers/
"""
ENGINE = "from tests.support.engines import hookimpl_engine\nplugin = hookimpl_engine('acme')\n"
LIBRARIES = ("attr", "attrs", "cattrs", "cattr", "pluggy", "jsonschema")


class Compile(NamedTuple):
    status: int
    stdout: str
    stderr: str
    imported: frozenset[str]
    """The top-level modules the process imported."""

    @property
    def from_stamp(self) -> bool:
        return not self.imported & set(LIBRARIES)


class Workspace(NamedTuple):
    root: Path
    product: Path
    site: Path
    env: dict[str, str]

    def compile(self, *args: str, stamp: bool = True, cwd: Path | None = None, **env: str) -> Compile:
        """``python -X importtime -m floe compile ARGS`` (default: the product, by its relative path)."""
        environ = {**self.env, **env}
        if not stamp:
            environ["FLOE_NO_COMPILE_STAMP"] = "1"
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "floe", "compile", *(args or ("orders",))],
            capture_output=True,
            text=True,
            env=environ,
            cwd=cwd or self.root,
            timeout=120,
            check=False,
        )
        imported, stderr = set(), []
        for line in done.stderr.splitlines():
            if line.startswith("import time:"):
                name = line.rsplit("|", 1)[1].strip()
                imported.add(name.split(".")[0])
            else:
                stderr.append(line)
        return Compile(done.returncode, done.stdout, "\n".join(stderr), frozenset(imported))

    @property
    def stamp(self) -> Path:
        return self.product / ".floe" / "compile-stamp.json"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "work"
    (root / "platform" / "domains").mkdir(parents=True)
    (root / "platform" / "enterprise.yaml").write_text(ENTERPRISE, encoding="utf-8")
    (root / "platform" / "domains" / "sales.yaml").write_text(DOMAIN, encoding="utf-8")
    product = root / "orders"
    for model in ("orders", "customers"):
        (product / "models" / model).mkdir(parents=True)
    (product / "floe.yaml").write_text(PRODUCT, encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        FLOE_DISABLE_PLUGINS=CANARY,  # consulted by every compile: its value must stay off disk
    )
    return Workspace(root, product, site, env)


def stamped(ws: Workspace) -> Compile:
    """Compile until the stamp answers (the first compile writes the artifacts and the stamp)."""
    first = ws.compile()
    assert first.status == 0, first.stderr
    assert not first.from_stamp
    repeat = ws.compile()
    assert repeat.from_stamp, "the repeat of an unchanged compile was not answered from its stamp"
    return repeat


def test_an_unchanged_product_is_answered_from_the_stamp_exactly_as_the_compile_answers(
    ws: Workspace,
) -> None:
    first = ws.compile()
    assert first.status == 0 and "wrote orders/target/floe/compiled.json" in first.stdout
    artifacts = {p: p.read_bytes() for p in (ws.product / "target" / "floe").iterdir()}
    repeat = ws.compile()
    full = ws.compile(stamp=False)
    assert repeat.from_stamp and not full.from_stamp
    assert (
        (repeat.status, repeat.stdout, repeat.stderr)
        == (full.status, full.stdout, full.stderr)
        == (
            0,
            "ok: acme → sales → orders: 2 transform(s) on duckdb; environments dev, prod\n"
            "artifacts unchanged in orders/target/floe\n",
            "",
        )
    )
    assert {p: p.read_bytes() for p in (ws.product / "target" / "floe").iterdir()} == artifacts
    mode = ws.stamp.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600 and stat.S_IMODE(ws.stamp.parent.stat().st_mode) == 0o700
    text = ws.stamp.read_text(encoding="utf-8")
    assert "FLOE_DISABLE_PLUGINS" in json.loads(text)["environment"]  # consulted, so recorded…
    assert CANARY not in text  # …by a keyed digest, never its value


def test_a_product_edited_is_compiled_and_an_error_reported_with_its_location(ws: Workspace) -> None:
    stamped(ws)
    source = ws.product / "floe.yaml"
    source.write_text(PRODUCT.replace("compute: duckdb", "compute: big"), encoding="utf-8")
    changed = ws.compile()
    assert not changed.from_stamp and changed.status == 0
    assert "2 transform(s) on big, duckdb" in changed.stdout and "wrote orders/target/floe/" in changed.stdout
    assert ws.compile().from_stamp  # recorded again (the content decides while the edit is fresh)
    source.write_text(PRODUCT.replace("compute: duckdb", "compute: nowhere"), encoding="utf-8")
    for _ in range(2):  # a failed compile is never recorded: reported every time
        broken = ws.compile()
        assert not broken.from_stamp and broken.status == 1 and broken.stdout == ""
        assert "orders/floe.yaml:8" in broken.stderr and "nowhere" in broken.stderr, broken.stderr
        assert "Traceback" not in broken.stderr


def test_a_parent_manifest_edited_is_compiled(ws: Workspace) -> None:
    stamped(ws)
    domain = ws.root / "platform" / "domains" / "sales.yaml"
    domain.write_text(DOMAIN.replace("approved: [duckdb, big]", "approved: [big]"), encoding="utf-8")
    broken = ws.compile()
    assert not broken.from_stamp and broken.status == 1 and broken.stdout == ""
    assert ".yaml:" in broken.stderr and "duckdb" in broken.stderr, broken.stderr
    domain.write_text(DOMAIN.replace("[duckdb, big]", "[big, duckdb]"), encoding="utf-8")
    again = ws.compile()
    assert not again.from_stamp and again.status == 0
    assert ws.compile().from_stamp
    domain.write_text(DOMAIN, encoding="utf-8")  # back to the first text: not what the stamp holds
    assert not ws.compile().from_stamp
    assert ws.compile().from_stamp


def test_a_reference_retargeted_by_a_symlink_is_compiled(ws: Workspace) -> None:
    other = ws.root / "other"
    (other / "domains").mkdir(parents=True)
    (other / "enterprise.yaml").write_text(ENTERPRISE.replace("name: acme", "name: globex"), encoding="utf-8")
    (other / "domains" / "sales.yaml").write_text(DOMAIN, encoding="utf-8")
    (ws.root / "platform").rename(ws.root / "acme-platform")
    (ws.root / "platform").symlink_to("acme-platform")
    stamped(ws)
    (ws.root / "platform").unlink()
    (ws.root / "platform").symlink_to("other")
    changed = ws.compile()
    assert not changed.from_stamp and changed.stdout.startswith("ok: globex → sales → orders")


@pytest.mark.parametrize(
    "change",
    ["artifact deleted", "artifact edited", "transform folder removed", "folder made readable"],
)
def test_what_the_compile_wrote_or_checked_changed_is_compiled(ws: Workspace, change: str) -> None:
    stamped(ws)
    compiled_json = ws.product / "target" / "floe" / "compiled.json"
    if change == "artifact deleted":
        compiled_json.unlink()
    elif change == "artifact edited":
        compiled_json.write_text(compiled_json.read_text(encoding="utf-8").replace("orders", "ORDERS"))
    elif change == "transform folder removed":
        shutil.rmtree(ws.product / "models" / "customers")
    else:
        (ws.product / ".floe").chmod(0o755)
    again = ws.compile()
    assert not again.from_stamp
    if change == "transform folder removed":
        assert again.status == 1 and "models/customers/" in again.stderr, again.stderr
        return
    assert again.status == 0, again.stderr
    if change == "folder made readable":
        assert stat.S_IMODE((ws.product / ".floe").stat().st_mode) == 0o700  # the compile narrowed it again
    else:
        assert "wrote orders/target/floe/compiled.json" in again.stdout
        assert "ORDERS" not in compiled_json.read_text(encoding="utf-8")


def test_the_command_line_the_directory_and_the_environment_are_part_of_the_stamp(ws: Workspace) -> None:
    stamped(ws)
    assert not ws.compile(str(ws.product)).from_stamp  # another command line
    assert ws.compile(str(ws.product)).from_stamp
    assert not ws.compile(str(ws.product), cwd=ws.product).from_stamp  # another directory
    assert ws.compile(str(ws.product), cwd=ws.product).from_stamp
    changed = ws.compile(str(ws.product), cwd=ws.product, FLOE_DISABLE_PLUGINS="another")
    assert not changed.from_stamp  # a variable the compile consulted, changed
    assert ws.compile(str(ws.product), cwd=ws.product, FLOE_DISABLE_PLUGINS="another").from_stamp
    unset = {k: v for k, v in ws.env.items() if k != "FLOE_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "floe", "compile", str(ws.product)],
        capture_output=True,
        text=True,
        env=unset,
        cwd=ws.product,
        check=False,
    )
    assert re.search(r"\|\s+cattrs\b", done.stderr) and done.returncode == 0  # the variable unset: compiled
    assert not ws.compile(str(ws.product), cwd=ws.product, stamp=False).from_stamp  # turned off


def install(site: Path, module: str, body: str, version: str = "1.0") -> Path:
    """A distribution ``module`` in ``site`` whose entry point ``acme`` is ``module:plugin``."""
    (site / f"{module}.py").write_text(body, encoding="utf-8")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[floe]\nacme = {module}:plugin\n", encoding="utf-8")
    return info


def let_code_settle() -> None:
    """A stamp does not trust code changed (mtime or ctime) in the last 2 s: wait that long."""
    time.sleep(2.1)


def with_acme(ws: Workspace) -> None:
    """The engine ``acme`` installed, approved as compute ``fast`` and used by the product; stamped."""
    install(ws.site, "acme_engine", ENGINE)
    enterprise = ws.root / "platform" / "enterprise.yaml"
    text = enterprise.read_text(encoding="utf-8")
    enterprise.write_text(
        text.replace("      - name: big\n", "      - name: fast\n        engine: acme\n      - name: big\n"),
        encoding="utf-8",
    )
    domain = ws.root / "platform" / "domains" / "sales.yaml"
    domain.write_text(DOMAIN.replace("[duckdb, big]", "[duckdb, big, fast]"), encoding="utf-8")
    (ws.product / "floe.yaml").write_text(
        PRODUCT.replace("compute: duckdb", "compute: fast"), encoding="utf-8"
    )
    let_code_settle()
    assert stamped(ws).stdout.startswith("ok: acme → sales → orders: 2 transform(s) on duckdb, fast")


def test_a_broken_plugin_installed_since_is_reported(ws: Workspace) -> None:
    with_acme(ws)
    shutil.rmtree(ws.site / "acme_engine-1.0.dist-info")  # an upgrade: another distribution, broken
    install(ws.site, "acme_engine2", "raise ImportError('missing driver')\n", version="2.0")
    let_code_settle()  # even settled: the folder's entry-point stamp differs from the recorded one
    broken = ws.compile()
    assert not broken.from_stamp and broken.status == 1
    assert "acme_engine2" in broken.stderr and "missing driver" in broken.stderr, broken.stderr
    assert "Traceback" not in broken.stderr


def test_a_plugin_changed_in_place_is_seen(ws: Workspace) -> None:
    with_acme(ws)
    module = ws.site / "acme_engine.py"
    module.write_text(ENGINE + "# the same engine, edited\n", encoding="utf-8")
    let_code_settle()
    edited = ws.compile()
    assert not edited.from_stamp and edited.status == 0, edited.stderr
    assert ws.compile().from_stamp
    module.write_text("raise ImportError('the acme driver went away')\n", encoding="utf-8")
    let_code_settle()
    broken = ws.compile()
    assert not broken.from_stamp and broken.status == 1
    assert "the acme driver went away" in broken.stderr, broken.stderr


@pytest.mark.parametrize("tamper", ["not private", "not json", "another shape"])
def test_a_stamp_that_cannot_be_trusted_is_ignored(ws: Workspace, tamper: str) -> None:
    stamped(ws)
    if tamper == "not private":
        ws.stamp.chmod(0o644)
    elif tamper == "not json":
        ws.stamp.write_text("{", encoding="utf-8")
    else:
        data = json.loads(ws.stamp.read_text(encoding="utf-8"))
        data["manifests"] = [["x"]]
        ws.stamp.write_text(json.dumps(data), encoding="utf-8")
    again = ws.compile()
    assert not again.from_stamp and again.status == 0 and again.stderr == ""
    assert ws.compile().from_stamp  # recorded again, private


def test_a_compile_that_failed_or_wrote_to_stderr_is_not_recorded(ws: Workspace) -> None:
    (ws.product / "floe.yaml").write_text(PRODUCT.replace("compute: duckdb", "compute: nowhere"))
    assert ws.compile().status == 1
    assert not ws.stamp.exists()
    (ws.product / "floe.yaml").write_text(PRODUCT, encoding="utf-8")
    warn = ws.site / "sitecustomize.py"  # a warning printed while the compile runs
    warn.write_text(
        "import atexit, sys\natexit.register(lambda: None)\n"
        "import builtins\n_real = builtins.__import__\n"
        "def _hook(name, *a, **k):\n"
        "    if name == 'floe.compiled':\n"
        "        print('warning: something', file=sys.stderr)\n"
        "    return _real(name, *a, **k)\n"
        "builtins.__import__ = _hook\n",
        encoding="utf-8",
    )
    let_code_settle()
    warned = ws.compile()
    assert warned.status == 0 and "warning: something" in warned.stderr
    assert not ws.stamp.exists()


@pytest.mark.parametrize("argv", [["compile", "orders"], ["compile", "a b/floe.yaml"], ["compile", ""]])
def test_compile_path_is_read_as_the_parser_reads_it(argv: list[str]) -> None:
    from floe import cli

    quick = cli._compile_args(argv)
    assert quick is not None
    assert vars(quick) == vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv", [["compile", "--no-partial-parse", "x"], ["compile", "-h"], ["compile"], ["engines", "x"]]
)
def test_other_command_lines_are_left_to_the_parser(argv: list[str]) -> None:
    from floe import cli

    assert cli._compile_args(argv) is None


def test_warnings_made_errors_are_part_of_the_stamp(ws: Workspace) -> None:
    stamped(ws)
    assert not ws.compile(PYTHONWARNINGS="error").from_stamp
    assert ws.compile(PYTHONWARNINGS="error").from_stamp


def test_a_module_added_on_the_import_path_that_shadows_one_the_compile_imports_is_seen(
    ws: Workspace,
) -> None:
    stamped(ws)
    (ws.site / "yaml.py").write_text("raise ImportError('a yaml.py shadows PyYAML')\n", encoding="utf-8")
    shadowed = ws.compile()
    assert not shadowed.from_stamp and shadowed.status != 0
    assert "a yaml.py shadows PyYAML" in shadowed.stderr, shadowed.stderr
