"""``byoc doctor``: which backends can run here, and the fix for each that cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import FIXTURES

NO_ENGINE = "unix:///nonexistent/docker.sock"


def _doctor(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "byoc", "doctor", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def _path_without_nginx(tmp_path: Path) -> str:
    """PATH with byoc's and Python's directories only (no nginx)."""
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("python3",):
        found = shutil.which(name)
        assert found
        (bins / name).symlink_to(found)
    return f"{Path(sys.executable).parent}:{bins}"


@pytest.mark.docker
def test_both_backends_can_run_with_an_engine(docker_client: Any, tmp_path: Path) -> None:
    done = _doctor(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("docker   ok    Docker engine ")
    assert lines[-1] == "backends that can run here: docker, process"


def test_no_engine_and_no_nginx_each_say_their_fix(tmp_path: Path) -> None:
    done = _doctor(cwd=tmp_path, DOCKER_HOST=NO_ENGINE, PATH=_path_without_nginx(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("docker   fail  no Docker engine answers")
    assert lines[1].strip() == ("fix: start the engine (e.g. `sudo systemctl start docker`, or"
                                " `dockerd`), or set DOCKER_HOST to one that runs")
    warn = lines.index("process  warn  nginx is not on PATH: serve runs gunicorn alone, without"
                       " nginx in front of it as in the image")
    assert lines[warn + 1].strip() == "fix: install nginx (Debian: apt-get install nginx-light)"
    assert any(line.startswith("process  ok    uv ") for line in lines)
    assert lines[-1] == "backends that can run here: process"


def test_a_project_whose_python_is_missing_gets_a_warning_with_the_fix(tmp_path: Path) -> None:
    project = Path(shutil.copytree(FIXTURES / "probe", tmp_path / "probe"))
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("python:3.11-slim", "python:3.99-slim"))
    done = _doctor(str(project), cwd=tmp_path, DOCKER_HOST=NO_ENGINE)
    assert done.returncode == 0, done.stderr
    warn = next(line for line in done.stdout.splitlines() if line.startswith("process  warn  Python"))
    assert "the image runs Python 3.99, and no python3.99 is on this machine" in warn
    assert "fix: install python3.99 (Debian: apt-get install python3.99-venv), or set BYOC_PYTHON" \
        in done.stdout


def test_no_backend_at_all_exits_non_zero(tmp_path: Path) -> None:
    done = _doctor(cwd=tmp_path, DOCKER_HOST=NO_ENGINE, BYOC_PYTHON=str(tmp_path / "nothing"))
    assert done.returncode == 1
    assert f"process  fail  BYOC_PYTHON={tmp_path / 'nothing'} is not a Python interpreter" \
        in done.stdout
    assert done.stdout.splitlines()[-1] == "backends that can run here: none"
    assert done.stderr == "Error: no backend can run here; apply a fix above\n"


def test_a_path_that_is_no_project_is_an_error(tmp_path: Path) -> None:
    done = _doctor(str(tmp_path), cwd=tmp_path, DOCKER_HOST=NO_ENGINE)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: no byoc.toml in ")


@pytest.fixture(scope="module")
def r_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from byoc import scaffold

    return scaffold.new_project("doctor-r", output_dir=tmp_path_factory.mktemp("doctor"),
                                framework="r")


def _checks(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("process ")]


def test_an_r_project_without_rscript_is_told_to_install_r(r_project: Path, tmp_path: Path) -> None:
    done = _doctor(cwd=r_project, DOCKER_HOST=NO_ENGINE, PATH=_path_without_nginx(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    checks = _checks(done.stdout)
    assert checks[0] == "process  fail  Rscript is not on PATH: the R programs cannot run as processes"
    assert lines[lines.index(checks[0]) + 1].strip() == (
        "fix: install R (Debian: apt-get install r-base-core r-cran-jsonlite r-cran-plumber"
        " r-cran-testthat)")
    assert checks[1].startswith("process  warn  nginx is not on PATH: the R program's serve runs"
                                " nginx")
    # the Python environment's checks are not an R project's
    assert not any(word in done.stdout for word in (" uv ", "Python 3", "environments are cached"))
    assert done.stderr == "Error: no backend can run here; apply a fix above\n"


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript")
def test_an_r_project_gets_each_missing_r_package_with_its_fix(r_project: Path,
                                                               tmp_path: Path) -> None:
    present = _doctor(cwd=r_project, DOCKER_HOST=NO_ENGINE)
    checks = _checks(present.stdout)
    assert checks[0].startswith("process  ok    R ") and "Rscript" in checks[0]
    # Debian's Renviron puts the r-cran-* packages on R_LIBS_SITE: point it elsewhere
    hidden = _doctor(cwd=r_project, DOCKER_HOST=NO_ENGINE, R_LIBS_SITE=str(tmp_path))
    if "process  ok    R package jsonlite is installed" in hidden.stdout:
        pytest.skip("jsonlite is installed where R_LIBS_SITE does not hide it")
    lines = hidden.stdout.splitlines()
    for name, status, why in (("jsonlite", "fail", "train and serve load it"),
                              ("plumber", "warn", "serve loads it"),
                              ("testthat", "warn", "make test runs the project's tests with it")):
        line = next(line for line in lines if f"R package {name} " in line)
        assert line.startswith(f"process  {status:<5} R package {name} is missing: {why}")
        assert lines[lines.index(line) + 1].strip() == (
            f'fix: Debian: apt-get install r-cran-{name} (or in R: install.packages("{name}"))')
    assert hidden.returncode == 1 and lines[-1] == "backends that can run here: none"
    if shutil.which("nginx"):
        assert any(line.startswith("process  ok    nginx (") for line in _checks(present.stdout))
