"""The README's quickstart command, and byoc on an image it did not make."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc.cli import cli
from helpers import FIXTURES, REPO


def test_quickstart_scaffolds_trains_serves_and_predicts(tmp_path: Path) -> None:
    # the byoc under test (installing is tested from the wheel in test_install.py and .ci/run)
    byoc = shutil.which("byoc")
    assert byoc, "byoc is not on PATH"
    env = {**os.environ, "QUICKSTART_BACKEND": "process", "QUICKSTART_DIR": str(tmp_path),
           "QUICKSTART_BYOC": byoc}
    done = subprocess.run([str(REPO / "scripts" / "quickstart")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("== byoc local predict local_test/payload.csv") + 1
    assert lines[start:start + 6] == ["setosa", "setosa", "versicolor", "versicolor", "virginica",
                                      "virginica"]
    assert '{"predictions": ["setosa", "setosa", "versicolor"' in done.stdout
    assert "stopped; the server and its files are removed" in done.stderr
    assert (tmp_path / "quickstart-demo" / ".byoc" / "jobs" / "latest").is_file()


@pytest.mark.docker
def test_any_image_runs_without_a_project(tmp_path: Path, probe_image: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = FIXTURES / "probe" / "local_test" / "test_dir" / "input" / "data" / "training"
    result = CliRunner().invoke(cli, ["local", "train", "--image", probe_image, "--channel",
                                      f"train={data}", "--hyperparameter", "epochs=3"])
    assert result.exit_code == 0, result.output
    assert "backend: docker" in result.stderr
    model = Path(result.stdout.strip())
    assert model.parent.parent == tmp_path / ".byoc" / "jobs"
    with tarfile.open(model) as tar:
        assert tar.getnames() == ["algo-1.json"]


def test_an_image_without_an_engine_or_project_is_a_clear_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["local", "train", "--backend", "process", "--image", "x:1"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: --backend process runs a byoc project's programs;"
                             " --image needs Docker\n")
    outside = CliRunner().invoke(cli, ["local", "train", "--backend", "process"])
    assert outside.exit_code == 2 and "not a byoc project" in outside.stderr


def test_importing_the_cli_does_no_work(tmp_path: Path) -> None:
    code = ("import sys, byoc.cli; "
            "print(sorted(m for m in ('docker', 'boto3', 'sklearn', 'flask') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True, env={**os.environ, "HOME": str(tmp_path)})
    assert done.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_command() -> None:
    result: Any = CliRunner().invoke(cli, ["--help"])
    for command in ("new", "build", "local", "push", "doctor"):
        assert f"  {command} " in result.stdout
