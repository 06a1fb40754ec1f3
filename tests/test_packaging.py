"""The extras install with the pip that ships with Python 3.11 (23.2), and pinned pairs stay together.

pip 23.2's resolver crashes (``InconsistentCandidate``) when floe's extras allow versions of a project
that a package those extras install pins more tightly: the test extra's ``sqlglot~=30.17`` next to
fakesnow's ``sqlglot~=30.17.0`` did (measured: ``pip 23.2.1 install --dry-run '.[all,test]'`` crashed
on it; it resolves with the pins below). This checks the same relation offline, against the
metadata of the installed packages.
"""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

SETUP = Path(__file__).resolve().parents[1] / "setup.cfg"


def extras() -> dict[str, list[Requirement]]:
    parser = configparser.ConfigParser()
    parser.read(SETUP)
    section = parser["options.extras_require"]
    return {
        name: [Requirement(line) for line in section[name].splitlines() if line.strip()] for name in section
    }


def probes(specifiers: SpecifierSet) -> list[Version]:
    """Versions at and around every bound of ``specifiers``: where two pins can disagree."""
    found: set[Version] = set()
    for spec in specifiers:
        release = [*Version(spec.version.replace(".*", "")).release, 0, 0][:3]
        major, minor, micro = release
        for version in (
            (major, minor, micro),
            (major, minor, micro + 1),
            (major, minor + 1, 0),
            (major + 1, 0, 0),
            (major, max(minor - 1, 0), 0),
        ):
            found.add(Version(".".join(map(str, version))))
    return sorted(found)


def test_floe_never_allows_what_an_installed_dependency_pins_out() -> None:
    ours: dict[str, tuple[str, SpecifierSet]] = {}
    for extra, requirements in extras().items():
        for requirement in requirements:
            ours.setdefault(canonicalize_name(requirement.name), (extra, requirement.specifier))
    environment = default_environment()
    disagreements = []
    for name in sorted(ours):
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            theirs = Requirement(text)
            if theirs.marker is not None and not theirs.marker.evaluate({**environment, "extra": ""}):
                continue
            target = canonicalize_name(theirs.name)
            if target not in ours or not any(s.operator in ("~=", "==") for s in theirs.specifier):
                continue
            extra, specifier = ours[target]
            for version in probes(specifier) + probes(theirs.specifier):
                if specifier.contains(version, prereleases=True) and not theirs.specifier.contains(
                    version, prereleases=True
                ):
                    disagreements.append(
                        f"[{extra}] {target}{specifier} allows {version}, which {name} pins out "
                        f"({theirs.specifier})"
                    )
                    break
    assert not disagreements, "\n".join(disagreements)


def test_fakesnow_comes_with_a_snowflake_connector_it_can_import() -> None:
    """fakesnow 0.11 requires the connector unpinned; connector 5 removed the module fakesnow imports."""
    for extra, requirements in extras().items():
        names = {canonicalize_name(r.name): r for r in requirements}
        if "fakesnow" in names:
            assert names["fakesnow"].specifier.contains("0.11.18") and not names[
                "fakesnow"
            ].specifier.contains("0.12.0")
            connector = names.get("snowflake-connector-python")
            assert connector is not None, f"[{extra}] pins fakesnow without the Snowflake connector"
            assert not connector.specifier.contains("5.0.0") and connector.specifier.contains("4.8.1")
