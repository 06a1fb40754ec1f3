"""The cache of floe's entry points (floe/plugin_index.py): it answers as importlib.metadata would,
and anything that can change that answer (a distribution added, removed, or its entry points edited
in place) is seen by the next call. Distributions here are real dist-info folders on ``sys.path``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from floe.plugin_index import NO_CACHE_ENV, cache_file, entry_points

ROOT = Path(__file__).resolve().parents[1]
ENGINE = "from tests.support.engines import hookimpl_engine\nplugin = hookimpl_engine({name!r})\n"


def truth() -> list[tuple[str, str, str | None, str]]:
    """What importlib.metadata says, scanning every distribution."""
    return [
        (ep.name, ep.module, ep.attr, ep.dist.name if ep.dist else "")
        for ep in metadata.entry_points(group="floe")
    ]


def cached() -> list[tuple[str, str, str | None, str]]:
    return [(r.name, r.module, r.attr, r.distribution) for r in entry_points("floe")]


def age(path: Path, seconds: float) -> None:
    """Set the mtime of ``path`` ``seconds`` ago (settled: older than the cache's 2 s)."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


def settle(site: Path, seconds: float = 60) -> None:
    for path in [site, *site.rglob("*")]:
        age(path, seconds)


def distribution(site: Path, module: str, points: str) -> Path:
    """A distribution ``module`` (``acme_x`` → ``acme-x``) with ``entry_points.txt`` holding ``points``."""
    (site / f"{module}.py").write_text(ENGINE.format(name=module), encoding="utf-8")
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(points, encoding="utf-8")
    return dist


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    yield folder


def cache_data() -> dict[str, object]:
    data: dict[str, object] = json.loads(cache_file(os.environ).read_text(encoding="utf-8"))
    return data


def test_the_cache_answers_as_importlib_metadata_in_a_private_file(site: Path, tmp_path: Path) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n[console_scripts]\nx = acme_one:x\n")
    settle(site)
    first = cached()
    assert ("acme_one", "acme_one", "plugin", "acme-one") in first
    assert first == truth()
    path = cache_file(os.environ)
    assert path.parent == tmp_path / "cache" / "floe"  # XDG_CACHE_HOME is respected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    entries = cache_data()["entries"]
    assert isinstance(entries, dict) and str(site) in entries
    before = path.stat()
    assert cached() == first  # answered from the cache: the file is not rewritten
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_importlib_metadata_backports_finder_does_not_turn_the_cache_off(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snowflake-connector-python (among others) imports the ``importlib_metadata`` backport, whose
    finder reads the same ``sys.path``: the cache is still written and used."""
    import importlib_metadata

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, importlib_metadata.MetadataPathFinder()])
    distribution(site, "acme_two", "[floe]\nacme_two = acme_two:plugin\n")
    settle(site)
    assert ("acme_two", "acme_two", "plugin", "acme-two") in cached()
    assert str(site) in cache_data()["entries"]


def test_what_the_cache_holds_is_what_is_answered_while_the_stamp_holds(site: Path) -> None:
    dist = distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    cached()
    path = cache_file(os.environ)
    data = cache_data()
    entries = data["entries"]
    assert isinstance(entries, dict)
    entries[str(site)]["distributions"] = [["acme_one", "acme-one", [["doctored", "acme_one", "plugin"]]]]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert ("doctored", "acme_one", "plugin", "acme-one") in cached()  # the cache is what answered
    age(dist / "entry_points.txt", 30)  # the same file, touched: the stamp differs, the entry is rescanned
    assert ("doctored", "acme_one", "plugin", "acme-one") not in cached()
    assert cached() == truth()


def test_an_added_edited_or_removed_distribution_is_seen_by_the_next_call(site: Path) -> None:
    one = distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site, 120)
    assert cached() == truth()

    distribution(site, "acme_two", "[floe]\nacme_two = acme_two:plugin\n")  # installed
    settle(site, 100)
    assert ("acme_two", "acme_two", "plugin", "acme-two") in cached()
    assert cached() == truth()

    points = one / "entry_points.txt"  # edited in place, same size
    points.write_text("[floe]\nacme_1ne = acme_one:plugin\n", encoding="utf-8")
    age(points, 80)
    names = [name for name, *_ in cached()]
    assert "acme_1ne" in names and "acme_one" not in names
    assert cached() == truth()

    shutil.rmtree(one)  # uninstalled
    settle(site, 60)
    assert [name for name, *_ in cached() if name.startswith("acme")] == ["acme_two"]
    assert cached() == truth()

    three = distribution(site, "acme_three", "")  # a distribution that gains its entry points later
    (three / "entry_points.txt").unlink()
    settle(site, 40)
    assert cached() == truth()
    (three / "entry_points.txt").write_text("[floe]\nacme_three = acme_three:plugin\n", encoding="utf-8")
    age(three / "entry_points.txt", 20)
    assert ("acme_three", "acme_three", "plugin", "acme-three") in cached()
    assert cached() == truth()


def test_an_earlier_distribution_of_the_same_name_hides_a_later_one(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = tmp_path / "later"
    later.mkdir()
    distribution(later, "acme_one", "[floe]\nshadowed = acme_one:plugin\n")
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    monkeypatch.syspath_prepend(str(site))  # site before later
    sys.path.insert(sys.path.index(str(site)) + 1, str(later))
    settle(site)
    settle(later)
    names = [name for name, *_ in cached()]
    assert "acme_one" in names and "shadowed" not in names
    assert cached() == truth()


def test_a_just_written_distribution_is_scanned_until_it_settles(site: Path) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site, -30)  # written "just now" whatever the machine's load: modified in the future
    assert ("acme_one", "acme_one", "plugin", "acme-one") in cached()
    assert str(site) not in cache_data()["entries"]  # type: ignore[operator]
    settle(site)
    cached()
    assert str(site) in cache_data()["entries"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "content",
    [
        b"\x00{not json",
        b"[]",
        b'{"version": 1, "entries": []}',
        b'{"version": 1, "group": "floe", "entries": {"/x": {"stamp": [1], '
        b'"distributions": [["a", "b", [["n", 1, null]]]]}}}',
    ],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(site: Path, content: bytes) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    path = cache_file(os.environ)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(0o644)
    assert cached() == truth()
    assert str(site) in cache_data()["entries"]  # type: ignore[operator]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a file others could read is replaced, not reused


@pytest.mark.parametrize("mode", [0o640, 0o606, 0o660])
def test_a_cache_file_others_could_write_or_read_is_not_trusted(site: Path, mode: int) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    cached()
    path = cache_file(os.environ)
    data = cache_data()
    data["entries"][str(site)]["distributions"] = [["acme_one", "acme-one", [["planted", "os", None]]]]  # type: ignore[index]
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(mode)
    assert "planted" not in [name for name, *_ in cached()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "planted" not in path.read_text()


def test_a_cache_file_that_is_a_symbolic_link_is_not_followed(site: Path, tmp_path: Path) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    cached()
    path = cache_file(os.environ)
    data = cache_data()
    data["entries"][str(site)]["distributions"] = [["acme_one", "acme-one", [["planted", "os", None]]]]  # type: ignore[index]
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(data), encoding="utf-8")
    elsewhere.chmod(0o600)
    path.unlink()
    path.symlink_to(elsewhere)
    assert "planted" not in [name for name, *_ in cached()]
    assert not path.is_symlink() and "planted" in elsewhere.read_text()  # replaced, its target untouched


def test_a_doctored_stamp_shape_is_rescanned(site: Path) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    cached()
    data = cache_data()
    data["entries"][str(site)]["distributions"] = "nonsense"  # type: ignore[index]
    cache_file(os.environ).write_text(json.dumps(data), encoding="utf-8")
    assert cached() == truth()


def test_no_cache_where_none_can_be_written_nor_when_asked(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    settle(site)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # cannot hold a folder
    assert cached() == truth()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "asked"))
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    assert cached() == truth()
    assert not (tmp_path / "asked").exists()


def floe_engines(site: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "XDG_CACHE_HOME": str(cache)}
    env.pop(NO_CACHE_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "floe", "engines"], capture_output=True, text=True, env=env, timeout=120
    )


def test_floe_engines_sees_a_plugin_break_mend_and_gain_an_entry_point_through_the_cache(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    dist = distribution(site, "acme_one", "[floe]\nacme_one = acme_one:plugin\n")
    cache = tmp_path / "cache"
    settle(site)
    first = floe_engines(site, cache)
    assert first.returncode == 0, first.stderr
    assert "acme_one" in first.stdout and "acme-one" in first.stdout
    assert str(site) in json.loads(next((cache / "floe").glob("*.json")).read_text())["entries"]

    module = site / "acme_one.py"
    good = module.read_text()
    module.write_text("raise ImportError('missing driver')\n")  # the plugin breaks; no metadata changes
    broken = floe_engines(site, cache)
    assert (
        "plugin 'acme_one' (from acme-one): cannot be imported: ImportError: missing driver" in broken.stderr
    )
    assert "acme_one" not in broken.stdout

    module.write_text(good)  # mended
    mended = floe_engines(site, cache)
    assert "acme_one" in mended.stdout and "acme_one" not in mended.stderr

    (site / "acme_two.py").write_text(ENGINE.format(name="acme_two"))
    (dist / "entry_points.txt").write_text("[floe]\nacme_one = acme_one:plugin\nacme_two = acme_two:plugin\n")
    age(dist / "entry_points.txt", 30)
    gained = floe_engines(site, cache)
    assert "acme_one" in gained.stdout and "acme_two" in gained.stdout, gained.stderr
