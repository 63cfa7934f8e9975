"""`pip install -e .` is quiet: setuptools warns about every folder inside a package that it
could import but was not told of; and a data folder's file that no pattern names is left out
of the installed package without a word."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_folder_of_a_package_is_a_declared_package_with_its_data_files():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages, data = set(setuptools["packages"]), setuptools["package-data"]
    undeclared = []
    for package in sorted(packages):
        folder = ROOT / package.replace(".", "/")
        holds_only_data = not (folder / "__init__.py").exists()
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name != "__pycache__" and f"{package}.{child.name}" not in packages:
                undeclared.append(f"folder {child.relative_to(ROOT)}")
            elif holds_only_data and child.is_file() and not any(fnmatch(child.name, pattern) for pattern in data.get(package, [])):
                undeclared.append(f"file {child.relative_to(ROOT)}")
    assert undeclared == []
