"""Deeply nested JSON (``[[[[...``) in the runtime's config files and request bodies.

Python's json module recurses once per level, so a deep enough document raises
RecursionError instead of a JSONDecodeError: training must still fail with one
clear line in output/failure, and serving must answer a one-line 400.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PROGRAM_DIR = REPO / "container" / "iris_classifier"
DEPTH = 100_000
NESTED = "[" * DEPTH + "]" * DEPTH


@pytest.mark.parametrize("name", ["hyperparameters", "inputdataconfig", "resourceconfig",
                                  "checkpointconfig"])
@pytest.mark.parametrize("text", [NESTED, "[" * DEPTH], ids=["closed", "unclosed"])
def test_a_deeply_nested_config_file_fails_training_with_one_clear_line(opt_ml: Path, name: str,
                                                                         text: str) -> None:
    path = opt_ml / "input" / "config" / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, str(PROGRAM_DIR / "train")],
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr, \
        result.stderr[-2000:]
    failure = (opt_ml / "output" / "failure").read_text(encoding="utf-8")
    assert failure.splitlines()[0].startswith(f"{path} is not valid JSON: "), failure[:500]
    if text == NESTED:
        assert failure.splitlines()[0] == f"{path} is not valid JSON: nested too deeply"
    assert len(failure) < 1024  # SageMaker keeps the first 1024 characters as FailureReason
    assert not any((opt_ml / "model").iterdir())
