"""byoc as a user installs it: a wheel (built through the sdist) in a fresh virtual
environment, not editable, with nothing else in it."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _run(*args: str | Path, cwd: Path | None = None, timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.setdefault("UV_SYSTEM_CERTS", "1")  # the system's certificates, as byoc.backends.envs uses
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and a wheel built from it (so the sdist must carry everything)."""
    out = tmp_path_factory.mktemp("dist")
    built = _run(_uv(), "build", "--out-dir", out, REPO)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


@pytest.fixture(scope="session")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with the wheel installed in it: its bin directory."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    made = _run(_uv(), "venv", "--python", os.environ.get("BYOC_TEST_PYTHON", "python3"), venv)
    assert made.returncode == 0, made.stderr
    wheel = next(dist.glob("byoc-*.whl"))
    done = _run(_uv(), "pip", "install", "--python", venv / "bin" / "python", wheel)
    assert done.returncode == 0, done.stderr
    yield venv / "bin"


def test_the_wheel_carries_the_template_and_the_sdist_its_source(dist: Path) -> None:
    with zipfile.ZipFile(next(dist.glob("byoc-*.whl"))) as wheel:
        names = wheel.namelist()
    template = REPO / "cookiecutter"
    expected = sorted(f"byoc/template/{p.relative_to(template)}" for p in template.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(n for n in names if n.startswith("byoc/template/")) == expected
    assert "byoc/py.typed" in names and "byoc/backends/envs.py" in names
    assert "byoc/job/definition.py" in names and "byoc/local/train.py" in names
    with tarfile.open(next(dist.glob("byoc-*.tar.gz"))) as sdist:
        members = sdist.getnames()
    assert any(m.endswith("/cookiecutter/cookiecutter.json") for m in members)
    assert not any("/src/byoc/template" in m for m in members)


def test_the_installed_byoc_needs_none_of_the_containers_packages(installed: Path) -> None:
    shown = _run(installed / "python", "-m", "pip", "show", "byoc")
    if shown.returncode != 0:  # a uv-made venv has no pip: ask uv
        shown = _run(_uv(), "pip", "show", "--python", installed / "python", "byoc")
    assert shown.returncode == 0, shown.stderr
    requires = next(line for line in shown.stdout.splitlines() if line.startswith("Requires:"))
    listed = {name.strip().lower() for name in requires.split(":", 1)[1].split(",")}
    assert listed == {"boto3", "click", "cookiecutter", "docker", "google-crc32c", "regex", "rich",
                      "uv", "watchdog"}
    for module in ("flask", "gunicorn", "gevent", "numpy", "sklearn"):
        found = _run(installed / "python", "-c", f"import {module}")
        assert found.returncode != 0, f"{module} is importable in byoc's own environment"


def test_the_installed_byoc_scaffolds_and_trains_as_processes(installed: Path,
                                                              tmp_path: Path) -> None:
    created = _run(installed / "byoc", "new", "wheel-demo", "--no-input", "-o", tmp_path)
    assert created.returncode == 0, created.stderr
    project = Path(created.stdout.strip())
    assert (project / "container" / "wheel_demo" / "train").is_file()
    trained = _run(installed / "byoc", "local", "train", "--backend", "process", cwd=project)
    assert trained.returncode == 0, trained.stderr
    assert Path(trained.stdout.strip()).name == "model.tar.gz"
    assert re.search(r"algo-1 \| epoch=30 training:loss=\S+; training:accuracy=\S+;", trained.stderr)


def _readme_use_block() -> list[str]:
    """The command lines of README.md's Use section's first code block, comments left out."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Use\n"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_the_readme_use_section_runs_as_written(installed: Path, tmp_path: Path) -> None:
    lines = _readme_use_block()
    assert lines[0].startswith("byoc new ") and "make test" in lines and "make build" in lines
    # as written, with byoc's venv from Install active (its bin first on PATH), answering the
    # prompts with their defaults; up to make test (what follows needs Docker or a server)
    setup = lines[:lines.index("make test") + 1]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")
           and not k.startswith("PYTEST")}
    env["PATH"] = f"{installed}:{env['PATH']}"
    script = "set -e\n" + "\n".join(setup) + "\nmake local-train BACKEND=process\n"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, input="\n" * 10,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "model.tar.gz" in done.stdout
    project = tmp_path / "churn-model"
    assert (project / ".venv" / "bin" / "python").is_file()
    assert next((project / ".byoc" / "jobs").glob("*/model.tar.gz"), None) is not None
    # another venv active and byoc not on PATH: one Error line with the fix, not make's own
    bare = {**env, "PATH": f"{project / '.venv' / 'bin'}:/usr/bin:/bin"}
    build = subprocess.run(["make", "build"], cwd=project, env=bare, capture_output=True,
                           text=True, timeout=60)
    assert build.returncode != 0
    assert build.stderr.splitlines()[0] == (
        "Error: byoc is not on PATH: activate the virtual environment byoc is installed in"
        " (e.g. . ~/.venvs/byoc/bin/activate), or run make BYOC=/path/to/byoc")
    assert "No such file or directory" not in build.stderr
