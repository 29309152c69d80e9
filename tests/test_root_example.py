"""The repository root is the default template rendered: no hand-kept copies."""

from __future__ import annotations

import filecmp
import importlib
import importlib.util
from pathlib import Path

from helpers import REPO

spec = importlib.util.spec_from_file_location("sync_root", REPO / "tools" / "sync_root.py")
assert spec and spec.loader
sync_root = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_root)


def _differences(a: Path, b: Path) -> list[str]:
    if a.is_file() or b.is_file():
        same = a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
        same = same and (a.stat().st_mode & 0o111) == (b.stat().st_mode & 0o111)
        return [] if same else [str(a)]
    compared = filecmp.dircmp(a, b, ignore=["__pycache__", ".pytest_cache"])
    found = [str(a / n) for n in compared.left_only + compared.right_only + compared.funny_files]
    for name in compared.common_files:
        found += _differences(a / name, b / name)
    for name in compared.common_dirs:
        found += _differences(a / name, b / name)
    return found


def test_root_example_equals_a_fresh_default_render(tmp_path: Path) -> None:
    rendered = sync_root.render_default(tmp_path)
    drift = []
    for name in sync_root.COPIED:
        drift += _differences(REPO / name, rendered / name)
    assert drift == [], f"run `python tools/sync_root.py`; drifted: {drift}"


def test_root_makefile_starts_with_the_generated_one(tmp_path: Path) -> None:
    rendered = sync_root.render_default(tmp_path)
    root_makefile = (REPO / "Makefile").read_text()
    assert root_makefile.startswith((rendered / "Makefile").read_text())
    assert sync_root.MAKEFILE_MARK in root_makefile


def test_readme_hyperparameter_examples_are_the_default_templates() -> None:
    # README.md's examples run in a default project: a name its model does not know fails
    import re
    import sys

    program = REPO / "container" / "iris_classifier"
    sys.path.insert(0, str(program))
    try:
        model = importlib.import_module("model")
        valid = set(model.HYPERPARAMETERS)
    finally:
        sys.path.remove(str(program))
        sys.modules.pop("model", None)
    readme = (REPO / "README.md").read_text()
    used = re.findall(r"--hyperparameter[ =]([a-z_][a-z0-9_]*)=", readme)
    assert used, "README.md gives no --hyperparameter example"
    assert set(used) <= valid, f"not hyperparameters of the default template: {set(used) - valid}"
