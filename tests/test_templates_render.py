"""``byoc new --template``: the choice, the list, and what every Python template shares."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from click.testing import CliRunner

from byoc import scaffold
from byoc.cli import cli
from byoc.errors import ConfigError

PYTHON_TEMPLATES = ("sklearn", "xgboost", "pytorch")
#: The files of container/<program>/ that are the user's; a template may bring its own.
USER_FILES = {"model.py", "dataset.py", "payloads.py"}
#: Project files outside container/ that every Python template shares as they are.
SHARED = ("Dockerfile", ".dockerignore", "Makefile", "byoc.toml", "wheels/README.md",
          "tests/conftest.py", "tests/test_evaluate.py", "local_test/payload.csv",
          "local_test/train_local.sh", "local_test/test/iris.csv")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("templates")
    return {name: scaffold.new_project("churn-model", output_dir=out / name, framework=name)
            for name in PYTHON_TEMPLATES}


def test_list_templates_names_each_with_one_line() -> None:
    result = CliRunner().invoke(cli, ["new", "--list-templates"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert names[0] == "sklearn" and set(PYTHON_TEMPLATES) <= set(names)
    assert lines[0].endswith("(default)") and not any(line.endswith("(default)") for line in lines[1:])
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # a name and a summary
    assert names == [info.name for info in scaffold.list_templates()]


def test_every_runtime_file_is_the_same_in_every_python_template(rendered: dict[str, Path]) -> None:
    base = rendered["sklearn"] / "container" / "churn_model"
    runtime = sorted(p.name for p in base.iterdir() if p.name not in USER_FILES)
    assert {"training.py", "job.py", "channels.py", "predictor.py", "server.py", "train",
            "serve", "evaluate", "evaluation.py"} <= set(runtime)
    for name in PYTHON_TEMPLATES[1:]:
        program = rendered[name] / "container" / "churn_model"
        assert sorted(p.name for p in program.iterdir() if p.name not in USER_FILES) == runtime
        match, mismatch, errors = filecmp.cmpfiles(base, program, runtime, shallow=False)
        assert (mismatch, errors) == ([], []), f"{name}: runtime files differ: {mismatch + errors}"
        _, mismatch, errors = filecmp.cmpfiles(rendered["sklearn"], rendered[name], SHARED,
                                               shallow=False)
        assert (mismatch, errors) == ([], []), f"{name}: project files differ: {mismatch + errors}"


def test_each_template_brings_its_model_requirements_and_tests(rendered: dict[str, Path]) -> None:
    sklearn, xgboost, pytorch = (rendered[name] for name in PYTHON_TEMPLATES)
    program = Path("container") / "churn_model"
    default = (sklearn / "container" / "requirements.txt").read_text()
    assert "numpy==" in default and "scikit-learn" not in default and "xgboost" not in default
    assert "xgboost-cpu==" in (xgboost / "container" / "requirements.txt").read_text()
    assert "torch==2.13.0" in (pytorch / "container" / "requirements.txt").read_text()
    assert "import xgboost" in (xgboost / program / "model.py").read_text()
    assert "torch.distributed" in (pytorch / program / "model.py").read_text()
    # XGBoost reads libsvm with a reader of its own; PyTorch keeps the shared CSV reader
    assert "text/libsvm" in (xgboost / program / "dataset.py").read_text()
    assert filecmp.cmp(sklearn / program / "dataset.py", pytorch / program / "dataset.py", shallow=False)
    assert sorted(p.name for p in (sklearn / "tests").iterdir()) == [
        "conftest.py", "test_evaluate.py", "test_hyperparameters.py", "test_metric_definitions.py",
        "test_predictor.py", "test_train.py"]
    for project in (xgboost, pytorch):
        assert sorted(p.name for p in (project / "tests").iterdir()) == [
            "conftest.py", "test_evaluate.py", "test_model.py"]
    for project in (sklearn, xgboost, pytorch):
        # evaluate: plots in the image, scikit-learn only to test its figures against
        assert "matplotlib==" in (project / "container" / "requirements.txt").read_text()
        assert "scikit-learn" in (project / "requirements.txt").read_text()
        for name in ("classes", "probabilities"):
            assert f"\ndef {name}(model: " in (project / program / "model.py").read_text()
    assert '"num_round"' in (xgboost / "local_test/test_dir/input/config/hyperparameters.json").read_text()
    assert '"epochs"' in (pytorch / "local_test/test_dir/input/config/hyperparameters.json").read_text()
    assert "An XGBoost model" in (xgboost / "README.md").read_text()


def test_template_and_set_framework_must_agree(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--template xgboost and framework=pytorch disagree"):
        scaffold.new_project("churn-model", output_dir=tmp_path, framework="xgboost",
                             extra_context={"framework": "pytorch"})
    result = CliRunner().invoke(cli, ["new", "churn-model", "-o", str(tmp_path), "--template", "tf"])
    assert result.exit_code == 2
    offered = ", ".join(info.name for info in scaffold.list_templates())
    assert result.stderr == (f"Error: framework must be one of {offered}; got 'tf'"
                             " (byoc new --list-templates)\n")
    missing = CliRunner().invoke(cli, ["new"])
    assert missing.exit_code == 2 and "missing argument NAME (or --list-templates)" in missing.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_template_option_renders_that_template(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "boosted", "-o", str(tmp_path), "--no-input",
                                      "--template", "xgboost"])
    assert result.exit_code == 0, result.output
    model = tmp_path / "boosted" / "container" / "boosted" / "model.py"
    assert "xgb.train(" in model.read_text()


MULTI_MODEL_LABEL = "LABEL com.amazonaws.sagemaker.capabilities.multi-models=true"
BIND_TO_PORT_LABEL = "LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true"


def test_only_multi_model_yes_labels_the_image_for_multi_model_endpoints(
        rendered: dict[str, Path], tmp_path: Path) -> None:
    for project in rendered.values():
        dockerfile = (project / "Dockerfile").read_text()
        assert BIND_TO_PORT_LABEL in dockerfile.splitlines()
        assert MULTI_MODEL_LABEL not in dockerfile
    for name in PYTHON_TEMPLATES:
        project = scaffold.new_project("mme", output_dir=tmp_path / name, framework=name,
                                       extra_context={"multi_model": "yes"})
        lines = (project / "Dockerfile").read_text().splitlines()
        assert MULTI_MODEL_LABEL in lines and BIND_TO_PORT_LABEL in lines
        assert (project / "container" / "mme" / "multimodel.py").is_file()


def test_multi_model_is_refused_for_r_with_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "r-mme", "-o", str(tmp_path), "--no-input",
                                      "--template", "r", "--set", "multi_model=yes"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: multi_model=yes needs a Python template: the R server answers"
                             " only /ping and /invocations, not SageMaker's multi-model API\n")
    bad = CliRunner().invoke(cli, ["new", "mme", "-o", str(tmp_path), "--no-input",
                                   "--set", "multi_model=maybe"])
    assert bad.exit_code == 2 and bad.stderr == "Error: multi_model must be one of no, yes; got 'maybe'\n"
    assert list(tmp_path.iterdir()) == []
