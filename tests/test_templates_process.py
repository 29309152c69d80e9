"""The XGBoost and PyTorch templates on the process backend, in the project's own environment.

The process backend builds the project's environment from its requirements with uv, so
XGBoost always runs here. PyTorch from PyPI for Linux is a CUDA build of several GB: its
test runs only where the CPU wheel is on disk (in the directory of ``BYOC_TORCH_WHEEL``;
linked into the project's ``wheels/``, where the image's pip and the environment's uv both
take it) and skips otherwise. (On Docker both always run:
tests/test_templates_docker.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from byoc import scaffold

BYOC = [sys.executable, "-m", "byoc"]
LIBRARY = {"xgboost": "xgboost", "pytorch": "torch"}
TORCH_WHEELS = Path(os.environ.get("BYOC_TORCH_WHEEL", "/opt/wheels/torch.whl")).parent


@pytest.mark.parametrize("template", ["xgboost", "pytorch"])
def test_template_trains_as_processes_where_its_library_is_installed(template: str,
                                                                    tmp_path: Path) -> None:
    if template == "pytorch" and not any(TORCH_WHEELS.glob("torch-*.whl")):
        pytest.skip(f"no torch CPU wheel in {TORCH_WHEELS}: an environment would fetch the"
                    " multi-GB CUDA build (Docker covers the template)")
    project = scaffold.new_project(f"proc-{template}", output_dir=tmp_path, framework=template)
    if template == "pytorch":  # wheels/, as the README says: not PyPI's CUDA build
        for wheel in TORCH_WHEELS.glob("torch-*.whl"):
            (project / "wheels" / wheel.name).symlink_to(wheel)
    trained = subprocess.run([*BYOC, "local", "train", str(project), "--backend", "process"],
                             capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr
    with tarfile.open(trained.stdout.strip()) as tar:
        assert len(tar.getnames()) == 1
    assert "algo-1 | training:accuracy=" in trained.stderr
    if template == "pytorch":
        built = next(line for line in trained.stderr.splitlines()
                     if line.startswith("environment: ") and "/envs/" in line).split()[2]
        assert list(Path(built).glob("lib/python*/site-packages/torch-*+cpu.dist-info"))


def test_gpus_are_refused_on_the_process_backend(tmp_path: Path) -> None:
    project = scaffold.new_project("proc-gpus", output_dir=tmp_path, framework="pytorch")
    result = subprocess.run([*BYOC, "local", "train", str(project), "--backend", "process",
                             "--gpus", "all"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ("Error: --gpus needs the docker backend: the process backend runs the"
                             " programs on this machine, which sees its own GPUs as they are\n")
    bad = subprocess.run([*BYOC, "local", "serve", str(project), "--gpus", "two"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr == "Error: --gpus takes all, a count or device=ID[,ID...]; got 'two'\n"
