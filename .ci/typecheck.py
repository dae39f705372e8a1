"""Run mypy on dfzoo as it is installed: ``dfzoo`` from core/, ``dfzoo.plugins`` from plugins/, and so on.

mypy names a module by its folder (core/registry.py would be ``core.registry``, and every ``from dfzoo...``
import would go unchecked), and it cannot follow setuptools' editable-install finder. So this script mirrors
``[tool.setuptools] package-dir`` from pyproject.toml as symbolic links under build/typecheck/ (rebuilt on
every run, so added and removed modules follow), runs mypy with the ``[tool.mypy]`` settings (which point
``mypy_path`` there), and prints error locations as paths in the source tree. Exit status is mypy's.

Usage: ``.venv/bin/python .ci/typecheck.py [extra mypy arguments]``
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, Path]:
    """Import package -> source folder, as setuptools installs it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def build_tree(mapping: dict[str, Path]) -> dict[Path, Path]:
    """Link every package folder into TREE; returns tree prefix -> source folder (longest prefix first).

    A package whose subpackages all live in its own folder is one directory link; a package with a
    subpackage mapped elsewhere (dfzoo holds dfzoo.plugins from plugins/) is a real directory of links.
    """
    shutil.rmtree(TREE, ignore_errors=True)
    TREE.mkdir(parents=True)
    prefixes: dict[Path, Path] = {}
    for package in sorted(mapping, key=lambda name: name.count(".")):
        folder = mapping[package]
        place = TREE.joinpath(*package.split("."))
        if place.exists() and place.resolve() == folder.resolve():
            continue  # inside a linked parent folder already
        if place.exists():
            raise SystemExit(f"typecheck: {package} maps to {folder}, but {place} already links elsewhere")
        elsewhere = [
            child
            for child, child_folder in mapping.items()
            if child.startswith(f"{package}.")
            and child_folder.resolve() != folder.joinpath(*child[len(package) + 1 :].split(".")).resolve()
        ]
        if elsewhere:
            place.mkdir(parents=True)
            for entry in folder.iterdir():
                if entry.name != "__pycache__":
                    (place / entry.name).symlink_to(entry)
        else:
            place.parent.mkdir(parents=True, exist_ok=True)
            place.symlink_to(folder, target_is_directory=True)
        prefixes[place] = folder
    return dict(sorted(prefixes.items(), key=lambda item: -len(item[0].parts)))


def source_path(line: str, prefixes: dict[Path, Path]) -> str:
    """``build/typecheck/dfzoo/plugins/x.py:3: error`` -> ``plugins/x.py:3: error``."""
    for place, folder in prefixes.items():
        tree_prefix = f"{place.relative_to(ROOT)}/"
        if line.startswith(tree_prefix):
            return f"{folder.relative_to(ROOT)}/{line[len(tree_prefix) :]}"
    return line


def main(argv: list[str]) -> int:
    from mypy import api

    os.chdir(ROOT)  # mypy_path in [tool.mypy] and the reported paths are relative to the repository
    prefixes = build_tree(package_dirs())
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *argv])
    for line in stdout.splitlines():
        print(source_path(line, prefixes))
    if stderr:
        print(stderr, end="", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
