"""The process backend runs a project in its own environment, built from its requirements."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from byoc.backends import envs
from byoc.cli import cli
from helpers import FIXTURES, free_port

LABELS = ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
#: A small pure-Python requirement keeps the probe project's environments quick to build.
SMALL = "packaging==25.0\n"


def _probe_project(tmp_path: Path, requirements: str | None = SMALL, name: str = "probe") -> Path:
    project = Path(shutil.copytree(FIXTURES / "probe", tmp_path / name))
    if requirements is not None:
        (project / "container" / "requirements.txt").write_text(requirements)
    return project


def _train(project: Path, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "byoc", "local", "train", str(project),
                           "--backend", "process", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def _env_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("environment:")]


def _quiet(message: str) -> None:
    pass


def test_a_project_that_adds_pandas_trains_and_serves_with_no_manual_step(tmp_path: Path) -> None:
    created = CliRunner().invoke(cli, ["new", "pandas-model", "-o", str(tmp_path), "--no-input"])
    project = Path(created.stdout.strip())
    requirements = project / "container" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "pandas\n")
    model = project / "container" / "pandas_model" / "model.py"
    # both training and serving go through pandas, whatever the example model is
    text = model.read_text() + (
        "\n\nimport pandas  # noqa: E402\n"
        "_fit, _predict = fit, predict\n\n\n"
        "def fit(training, validation, job):\n"
        "    frame = pandas.DataFrame(training.features)\n"
        "    assert frame.shape == training.features.shape\n"
        "    return _fit(training, validation, job)\n\n\n"
        "def predict(model, features):\n"
        "    return _predict(model, pandas.DataFrame(features).to_numpy())\n")
    model.write_text(text)

    started = time.monotonic()
    first = _train(project)
    first_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    assert any(line.startswith("environment: built ") for line in _env_lines(first.stderr))
    started = time.monotonic()
    second = _train(project)
    second_seconds = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert _env_lines(second.stderr)[-1].startswith("environment: reusing ")
    print(f"pandas project: first train {first_seconds:.1f} s, second {second_seconds:.1f} s")

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "byoc", "local", "serve", str(project),
                               "--backend", "process", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert server.stderr is not None
        lines = []
        for line in server.stderr:
            lines.append(line)
            if "ready: POST" in line or server.poll() is not None:
                break
        assert any("environment: reusing" in line for line in lines), "".join(lines)
        predicted = CliRunner().invoke(cli, ["local", "predict",
                                             str(project / "local_test" / "payload.csv"),
                                             "--url", f"http://127.0.0.1:{port}"])
        assert predicted.stdout.split() == LABELS, predicted.output + "".join(lines)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.communicate(timeout=60)


def test_an_unbuildable_pin_is_one_error_line_and_keeps_the_last_environment(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    good = _train(project)
    assert good.returncode == 0, good.stderr
    cache = envs.cache_dir() / "envs"
    before = {p.name: (p / envs.MARKER).read_text() for p in cache.iterdir() if p.is_dir()}

    (project / "container" / "requirements.txt").write_text(SMALL + "numpy==99.0.0\n")
    bad = _train(project)
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, bad.stderr
    assert errors[0].startswith("Error: cannot build the environment from container/requirements.txt:"
                                " numpy==99.0.0: there is no version of numpy==99.0.0; fix or remove"
                                " that line in container/requirements.txt, or check that the package"
                                " index"), errors
    assert "Traceback" not in bad.stderr
    after = {p.name: (p / envs.MARKER).read_text() for p in cache.iterdir() if p.is_dir()}
    assert after == before  # nothing half-built left, nothing built before touched

    (project / "container" / "requirements.txt").write_text(SMALL)
    again = _train(project)
    assert again.returncode == 0, again.stderr
    assert _env_lines(again.stderr)[-1].startswith("environment: reusing ")


def test_no_package_index_says_to_check_the_network(tmp_path: Path) -> None:
    project = _probe_project(tmp_path, "byoc-test-never-published==1.0\n")
    result = _train(project, env={"UV_OFFLINE": "1"})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "byoc-test-never-published==1.0: byoc-test-never-published was not found" in errors[0]
    assert "check the network and the package index" in errors[0]


def test_an_image_python_missing_here_says_which_interpreter_runs(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("python:3.11-slim", "python:3.99-slim"))
    result = _train(project)
    assert result.returncode == 0, result.stderr
    note = _env_lines(result.stderr)[0]
    assert note.startswith("environment: the image runs Python 3.99, and no python3.99 is on this"
                           " machine; using "), note
    assert note.endswith("instead: install python3.99 or set BYOC_PYTHON to match the image")


def test_the_image_python_is_used_when_the_machine_has_it(tmp_path: Path) -> None:
    wanted = f"{sys.version_info[0]}.{sys.version_info[1]}"
    choice = envs.choose_interpreter(wanted, {"PATH": os.environ["PATH"]})
    assert choice.note == "" and choice.interpreter.minor == wanted
    assert envs.image_python(FIXTURES / "probe") == "3.11"


def test_a_byoc_python_that_does_not_run_is_a_config_error(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    result = _train(project, env={"BYOC_PYTHON": str(tmp_path / "no-python")})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: BYOC_PYTHON={tmp_path / 'no-python'} is not a Python interpreter that runs here;"
        " point it at one (e.g. /usr/bin/python3.11) or unset it")


@pytest.mark.parametrize("damage", ["deleted", "marker", "interpreter", "package"])
def test_a_damaged_environment_is_rebuilt(tmp_path: Path, damage: str) -> None:
    project = _probe_project(tmp_path, SMALL + f"# {damage}\n")  # an environment of its own
    first = envs.prepare(project, say=_quiet, progress=False)
    assert "packaging" in envs.probe(str(first.python), packages=True).packages  # type: ignore[union-attr]
    if damage == "deleted":
        shutil.rmtree(first.root)
    elif damage == "marker":
        (first.root / envs.MARKER).write_text("{not json")
    elif damage == "interpreter":
        (first.root / "bin" / "python").unlink()
    else:
        site = next(first.root.glob("lib/python*/site-packages"))
        for path in site.glob("packaging*"):
            shutil.rmtree(path)
    said: list[str] = []
    second = envs.prepare(project, say=said.append, progress=False)
    assert second.built and second.root == first.root
    if damage != "deleted":
        assert said[0] == f"environment: {first.root} is incomplete or damaged; building it again"
    found = envs.probe(str(second.python), packages=True)
    assert found is not None and "packaging" in found.packages
    assert json.loads((second.root / envs.MARKER).read_text())["packages"] == ["packaging"]
    third = envs.prepare(project, say=_quiet, progress=False)
    assert not third.built
    assert sorted(p.name for p in second.root.parent.iterdir()
                  if p.name.startswith(f".{second.root.name}") and p.is_dir()) == []


def test_requirements_that_shrink_get_a_fresh_environment(tmp_path: Path) -> None:
    project = _probe_project(tmp_path, SMALL + "six==1.17.0\n")
    bigger = envs.prepare(project, say=_quiet, progress=False)
    (project / "container" / "requirements.txt").write_text(SMALL)
    smaller = envs.prepare(project, say=_quiet, progress=False)
    assert smaller.root != bigger.root
    found = envs.probe(str(smaller.python), packages=True)
    assert found is not None and "six" not in found.packages and "packaging" in found.packages


def test_the_cache_follows_byoc_cache_dir_then_xdg(tmp_path: Path) -> None:
    assert envs.cache_dir({"BYOC_CACHE_DIR": str(tmp_path / "a"), "XDG_CACHE_HOME": "/x"}) \
        == tmp_path / "a"
    assert envs.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "byoc"
    assert envs.cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "byoc"


def test_a_build_error_names_the_pins_uv_quotes(tmp_path: Path) -> None:
    """Of two pins of one package, the one uv's message quotes is named, not the first; two that
    conflict are both named (uv's message as uv words it)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.4.6\nflask>=3\nnumpy==0.0.999\n")
    log = tmp_path / "uv.log"
    missing = envs._build_error(["error: No solution found when resolving dependencies",
                                 "  cause: Because there is no version of numpy==0.0.999 and you"
                                 " require numpy==0.0.999, we can conclude that your requirements"
                                 " are unsatisfiable."], requirements, Path("requirements.txt"), log)
    assert ": numpy==0.0.999: there is no version of numpy==0.0.999; fix or remove that line" \
        in missing.message
    both = envs._build_error(["error: No solution found when resolving dependencies",
                              "  cause: Because you require numpy==2.4.6 and numpy==0.0.999, we can"
                              " conclude that your requirements are unsatisfiable."],
                             requirements, Path("requirements.txt"), log)
    assert ": numpy==2.4.6 and numpy==0.0.999: " in both.message
    assert "keep one of those lines in requirements.txt" in both.message
