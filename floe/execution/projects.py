"""The dbt project transforms run from: the user's project, overlaid with floe's macros.

``floe run`` never edits the user's dbt project. For each compute it writes a project under
``<product>/target/floe/run/<compute>/``, which the transforms on that compute share (they run one
after another in the compute's worker, which parses the project once):

- ``dbt_project.yml``: a copy of the user's, with the profile of the compute, its own
  ``target``/``logs`` folders (transforms on different computes run at once), the engine's macro
  folder appended to ``macro-paths`` and the engine's project-level configs such as Spark's
  ``+file_format: iceberg`` (``floe_run_project_config``; set where the user set nothing, so the
  user's configs win);
- a relative symbolic link for each of the user's folders (models, seeds, macros, snapshots,
  tests, analyses), so nodes keep the paths they have in the user's project; folders outside the
  project are named by absolute path instead. ``packages-install-path`` points at the user's;
- ``floe_macros/``: the engine's dbt macros (``floe_run_macro_paths``: materializations for
  tables in the catalog, say), copied from the engine's folders;
- ``profiles.yml``: the run profile (``floe_run_profile``): secrets only as placeholders.

Because the engine's macros sit in the root project, its materializations take precedence over the
adapter's (dbt lets packages override built-in materializations no more since 1.8; a root project
still can).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from floe.artifacts import write_atomic
from floe.errors import FloeError, Problem

PROJECT_FILE = "dbt_project.yml"
MACRO_DIR = "floe_macros"
PATH_KEYS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "macro-paths": ["macros"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
    "docs-paths": None,
    "asset-paths": [],
}
"""dbt's folder settings and their defaults (``docs-paths`` defaults to all the others)."""
PACKAGE_FILES = ("packages.yml", "dependencies.yml", "package-lock.yml")
RESERVED = frozenset({"target", "logs", PROJECT_FILE, "profiles.yml", MACRO_DIR})


def read_user_project(product_dir: Path) -> dict[str, Any]:
    """The user's ``dbt_project.yml`` as a mapping.

    :raises FloeError: it is missing or not a YAML mapping.
    """
    import yaml

    path = product_dir / PROJECT_FILE
    if not path.is_file():
        raise FloeError(
            [
                Problem(
                    f"{path} does not exist: `floe run` runs the product's dbt project",
                    fix=f"put the dbt project's {PROJECT_FILE} next to floe.yaml",
                )
            ]
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FloeError([Problem(f"{path} is not valid YAML: {exc}")]) from None
    if not isinstance(data, dict) or not data.get("name"):
        raise FloeError([Problem(f"{path} is not a dbt project file (no `name:`)")])
    return data


def write_project(
    product_dir: Path,
    project_dir: Path,
    user_project: Mapping[str, Any],
    profile: str,
    target: str,
    output: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]],
    macros: Sequence[Path] = (),
) -> Path:
    """Write the project ``project_dir`` (see the module docstring); return it.

    :param profile: the profile name; ``output`` is its output for the environment ``target``.
    :param defaults: project-level configs per resource key (``models``, ``seeds``…), set where
        the user's project sets nothing at that level.
    :param macros: folders whose ``.sql`` files become the project's own macros.
    """
    import yaml

    product_dir = product_dir.resolve()
    project_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {k: v for k, v in user_project.items() if k != "clean-targets"}
    data["profile"] = profile
    data["target-path"] = "target"
    data["log-path"] = "logs"
    data["clean-targets"] = ["target", "logs"]
    packages = str(user_project.get("packages-install-path") or "dbt_packages")
    data["packages-install-path"] = str((product_dir / packages).resolve())
    links: dict[str, Path] = {}
    for key, default in PATH_KEYS.items():
        entries = user_project.get(key, default)
        if entries is None:
            continue
        data[key] = [_mirror(product_dir, str(e), links) for e in entries]
    data["macro-paths"] = [*data.get("macro-paths", []), MACRO_DIR]
    for key, configs in defaults.items():
        section = data.get(key)
        section = dict(section) if isinstance(section, dict) else {}
        for name, value in configs.items():
            section.setdefault(name, value)
        data[key] = section
    for name in PACKAGE_FILES:
        if (product_dir / name).is_file():
            links[name] = product_dir / name
    _sync_links(project_dir, links)
    _copy_macros(project_dir / MACRO_DIR, macros)
    write_atomic(
        project_dir / PROJECT_FILE,
        "# Generated by `floe run` from the product's "
        f"{PROJECT_FILE}; do not edit.\n" + yaml.safe_dump(data, sort_keys=False),
    )
    profiles = {profile: {"target": target, "outputs": {target: dict(output)}}}
    write_atomic(
        project_dir / "profiles.yml",
        "# Generated by `floe run`; secrets are read from "
        "the environment at run time.\n" + yaml.safe_dump(profiles, sort_keys=False),
    )
    return project_dir


def _mirror(product_dir: Path, entry: str, links: dict[str, Path]) -> str:
    """The entry as the generated project names it: linked when inside the product, else absolute."""
    source = (product_dir / entry).resolve()
    relative = Path(os.path.normpath(entry))
    inside = not relative.is_absolute() and ".." not in relative.parts and source != product_dir
    if not inside or relative.parts[0] in RESERVED:
        return str(source)
    links[relative.as_posix()] = source
    return relative.as_posix()


def _sync_links(project_dir: Path, links: Mapping[str, Path]) -> None:
    for name, source in links.items():
        link = project_dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        wanted = os.path.relpath(source, link.parent)
        if link.is_symlink():
            if os.readlink(link) == wanted:
                continue
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        elif link.exists():
            link.unlink()
        if source.exists():
            link.symlink_to(wanted, target_is_directory=source.is_dir())


def _copy_macros(folder: Path, sources: Sequence[Path]) -> None:
    """The ``.sql`` files of ``sources`` in ``folder``, written only when they changed (dbt's
    partial parse compares the files), and nothing else there."""
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    for source in sources:
        for item in sorted(source.glob("*.sql")):
            names.add(item.name)
            text = item.read_text(encoding="utf-8")
            target = folder / item.name
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                write_atomic(target, text)
    for stale in folder.glob("*.sql"):
        if stale.name not in names:
            stale.unlink()
