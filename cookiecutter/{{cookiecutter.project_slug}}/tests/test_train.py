import json

from conftest import run_train


def test_training_writes_the_model_and_prints_metrics(opt_ml):
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "training:accuracy=" in result.stdout
    assert [p.name for p in (opt_ml / "model").iterdir()] == ["model.npz"]
    assert not (opt_ml / "output" / "failure").exists()


def test_a_bad_hyperparameter_fails_with_a_reason_and_no_model(opt_ml):
    config = opt_ml / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps({"max_depth": "deep"}))
    result = run_train(opt_ml)
    assert result.returncode == 1
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == "hyperparameter 'max_depth': expected an integer, got 'deep'"
    assert list((opt_ml / "model").iterdir()) == []


def test_a_malformed_row_names_the_file_and_line(opt_ml):
    data = opt_ml / "input" / "data" / "training" / "iris.csv"
    lines = data.read_text().splitlines()
    lines[2] = "setosa,4.7,abc,1.3,0.2"
    data.write_text("\n".join(lines) + "\n")
    result = run_train(opt_ml)
    assert result.returncode == 1
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == f"{data}:3: column 3 is not a number: 'abc'"
