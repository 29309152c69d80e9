"""Run the container's programs as plain processes against a temp /opt/ml tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = ROOT / "container" / "{{ cookiecutter.program }}"
TEST_DIR = ROOT / "local_test" / "test_dir"

sys.path.insert(0, str(PROGRAM_DIR))


@pytest.fixture
def opt_ml(tmp_path: Path) -> Path:
    """A fresh copy of local_test/test_dir, as SageMaker would mount it."""
    root = tmp_path / "opt_ml"
    shutil.copytree(TEST_DIR, root)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    return root


def run_train(root: Path) -> subprocess.CompletedProcess[str]:
    return run_program("train", root)


def run_program(name: str, root: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run container/<program>/<name> (train, evaluate) with *root* as /opt/ml."""
    env = {**os.environ, **environ, "SAGEMAKER_BASE_DIR": str(root)}
    return subprocess.run([sys.executable, str(PROGRAM_DIR / name)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def trained(opt_ml: Path) -> Path:
    """An /opt/ml tree whose model dir holds a trained model."""
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    return opt_ml
