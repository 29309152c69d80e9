import json
import shutil
import tarfile

import numpy as np
import pytest
import xgboost as xgb

import hyperparameters
import model
import predictor
from conftest import run_program, run_train

DATA = "iris.csv"


def set_hyperparameters(root, **values):
    path = root / "input" / "config" / "hyperparameters.json"
    params = json.loads(path.read_text())
    params.update({key: str(value) for key, value in values.items()})
    path.write_text(json.dumps(params))


def add_channel(root, name, source, content_type="text/csv"):
    config = root / "input" / "config" / "inputdataconfig.json"
    entries = json.loads(config.read_text())
    entries[name] = {"ContentType": content_type, "TrainingInputMode": "File",
                     "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    config.write_text(json.dumps(entries))
    (root / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(source, root / "input" / "data" / name)


def rounds(root):
    return xgb.Booster(model_file=root / "model" / model.MODEL_FILE).num_boosted_rounds()


def test_training_prints_each_round_and_writes_the_model(opt_ml):
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "epoch=1 training:mlogloss=" in result.stdout
    assert "epoch=20 training:mlogloss=" in result.stdout
    assert "training:accuracy=" in result.stdout
    assert [p.name for p in (opt_ml / "model").iterdir()] == [model.MODEL_FILE]
    assert rounds(opt_ml) == 20


def test_checkpoints_are_saved_and_a_rerun_resumes_from_the_latest(opt_ml):
    (opt_ml / "checkpoints").mkdir()
    assert run_train(opt_ml).returncode == 0
    saved = sorted(p.name for p in (opt_ml / "checkpoints").iterdir())
    assert saved == ["xgboost-checkpoint-000010.ubj", "xgboost-checkpoint-000020.ubj"]
    set_hyperparameters(opt_ml, num_round=30)
    shutil.rmtree(opt_ml / "model")
    (opt_ml / "model").mkdir()
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "resuming from checkpoint xgboost-checkpoint-000020.ubj (20 rounds)" in result.stderr
    assert "epoch=1 " not in result.stdout and "epoch=21 training:" in result.stdout
    assert rounds(opt_ml) == 30


def test_the_validation_channel_stops_training_early(opt_ml, tmp_path):
    # every third row mislabelled: the validation loss rises once the model grows confident
    rows = (opt_ml / "input" / "data" / "training" / DATA).read_text().split()
    classes = sorted({row.split(",")[0] for row in rows})
    noisy = [classes[(classes.index(row.split(",")[0]) + 1) % 3] + row[row.index(","):]
             if number % 3 == 0 else row for number, row in enumerate(rows)]
    (tmp_path / "noisy.csv").write_text("\n".join(noisy) + "\n")
    add_channel(opt_ml, "validation", tmp_path / "noisy.csv")
    set_hyperparameters(opt_ml, num_round=500, early_stopping_rounds=3, eta=0.5)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "validation:mlogloss=" in result.stdout and "validation:accuracy=" in result.stdout
    assert rounds(opt_ml) < 500


def test_early_stopping_without_validation_fails_with_the_reason(opt_ml):
    set_hyperparameters(opt_ml, early_stopping_rounds=3)
    assert run_train(opt_ml).returncode == 1
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == "early_stopping_rounds needs a validation channel"


def test_libsvm_input_gives_the_same_model_as_csv(opt_ml, tmp_path):
    csv_file = opt_ml / "input" / "data" / "training" / DATA
    assert run_train(opt_ml).returncode == 0
    from_csv = (opt_ml / "model" / model.MODEL_FILE).read_bytes()
    lines = [line.split(",") for line in csv_file.read_text().split()]
    libsvm = tmp_path / "iris.libsvm"
    libsvm.write_text("".join(f"{row[0]} " + " ".join(f"{i}:{v}" for i, v in enumerate(row[1:])) + "\n"
                              for row in lines))
    csv_file.unlink()
    shutil.copy(libsvm, csv_file.parent)
    config = opt_ml / "input" / "config" / "inputdataconfig.json"
    config.write_text(config.read_text().replace("text/csv", "text/libsvm"))
    (opt_ml / "model" / model.MODEL_FILE).unlink()
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    first = model.load(opt_ml / "model")
    features = np.asarray([[float(v) for v in row[1:]] for row in lines])
    reference = opt_ml / "reference"
    reference.mkdir()
    (reference / model.MODEL_FILE).write_bytes(from_csv)
    assert (model.predict(first, features) == model.predict(model.load(reference), features)).all()


def test_incremental_training_starts_from_the_previous_model(opt_ml, tmp_path):
    assert run_train(opt_ml).returncode == 0
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(opt_ml / "model" / model.MODEL_FILE, arcname=model.MODEL_FILE)
    add_channel(opt_ml, "model", archive, content_type="application/x-sagemaker-model")
    set_hyperparameters(opt_ml, num_round=5)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert rounds(opt_ml) == 25


def test_a_bad_hyperparameter_fails_with_a_reason_and_no_model(opt_ml):
    set_hyperparameters(opt_ml, objective="reg:nonsense")
    assert run_train(opt_ml).returncode == 1
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason.startswith("hyperparameter 'objective': expected one of multi:softprob")
    assert list((opt_ml / "model").iterdir()) == []


def test_unknown_names_are_refused():
    with pytest.raises(hyperparameters.HyperparameterError, match="unknown hyperparameter 'criterion'"):
        hyperparameters.parse({"criterion": "gini"}, model.HYPERPARAMETERS)


@pytest.fixture
def client(trained, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(trained))
    return predictor.create_app().test_client()


def test_rows_get_class_labels_and_missing_values_are_accepted(client):
    response = client.post("/invocations", data="5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n5.1,,1.4,0.2\n",
                           content_type="text/csv")
    assert response.status_code == 200, response.data
    assert response.data.decode().split() == ["setosa", "virginica", "setosa"]
    assert client.post("/invocations", json=[[5.1, 3.5, 1.4, 0.2]]).get_json() == {
        "predictions": ["setosa"]}
    assert client.post("/invocations", data="1,2,3", content_type="text/csv").status_code == 400


def test_predictions_are_those_of_xgboosts_inplace_predict(trained):
    """The dense path (a proxy made once) answers what inplace_predict does, for any float rows."""
    fitted = model.load(trained / "model")
    assert fitted.dense is not None
    rng = np.random.default_rng(3)
    rows = rng.normal(5, 2, size=(300, 4))
    rows[::7, 1] = np.nan
    cases = [rows[:1], rows[1:9], rows, rows.astype(np.float32), np.asfortranarray(rows[:20]),
             rows[::2], rows[:0]]
    for features in cases * 2:  # again: the proxy and XGBoost's output buffer are reused
        expected = fitted.booster.inplace_predict(features, missing=np.nan)
        found = fitted.scores(features)
        assert found.dtype == expected.dtype and found.shape == expected.shape
        assert np.array_equal(found, expected, equal_nan=True)
    assert model.predict(fitted, rows[:1]).dtype == np.asarray(fitted.classes).dtype


def write_rows(path, labels, features):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label}," + ",".join(f"{v:.4f}" for v in row) + "\n"
                            for label, row in zip(labels, features, strict=True)))


def evaluate_archive(root):
    archive = root / "processing" / "model" / "model.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "model" / model.MODEL_FILE, arcname=model.MODEL_FILE)
    return run_program("evaluate", root)


def test_evaluate_scores_a_regressor_with_regression_metrics(opt_ml):
    """reg:squarederror on a numeric label: evaluate's regression_metrics and plot."""
    from sklearn import metrics as sk

    rng = np.random.default_rng(5)
    features = rng.normal(size=(240, 3))
    target = 2 * features[:, 0] - features[:, 1] + rng.normal(0, 0.1, 240)
    write_rows(opt_ml / "input" / "data" / "training" / DATA, target[:200], features[:200])
    write_rows(opt_ml / "processing" / "test" / "part.csv", target[200:], features[200:])
    set_hyperparameters(opt_ml, objective="reg:squarederror")
    assert run_train(opt_ml).returncode == 0
    result = evaluate_archive(opt_ml)
    assert result.returncode == 0, result.stderr
    out = opt_ml / "processing" / "evaluation"
    found = json.loads((out / "evaluation.json").read_text())["regression_metrics"]
    rows = np.loadtxt(opt_ml / "processing" / "test" / "part.csv", delimiter=",")
    truth = rows[:, 0]
    predicted = model.predict(model.load(opt_ml / "model"), rows[:, 1:])
    assert found["mse"]["value"] == pytest.approx(sk.mean_squared_error(truth, predicted))
    assert found["mae"]["value"] == pytest.approx(sk.mean_absolute_error(truth, predicted))
    assert found["r2"]["value"] == pytest.approx(sk.r2_score(truth, predicted))
    assert found["r2"]["value"] > 0.8
    assert (out / "predicted_vs_actual.png").read_bytes().startswith(b"\x89PNG")
    assert "(regression_metrics): mse=" in (opt_ml / "output" / "message").read_text()


def test_evaluate_reads_a_libsvm_test_set_when_told_its_content_type(opt_ml):
    assert run_train(opt_ml).returncode == 0
    rows = np.loadtxt(opt_ml / "input" / "data" / "training" / DATA, delimiter=",", dtype=str)
    test = opt_ml / "processing" / "test" / "part.libsvm"
    test.parent.mkdir(parents=True)
    test.write_text("".join(f"{row[0]} " + " ".join(f"{i}:{v}" for i, v in enumerate(row[1:])) + "\n"
                            for row in rows[:30]))
    assert evaluate_archive(opt_ml).returncode == 1  # read as CSV: not numbers
    assert "part.libsvm:1: " in (opt_ml / "output" / "failure").read_text()
    (opt_ml / "output" / "failure").unlink()
    result = run_program("evaluate", opt_ml, TEST_CONTENT_TYPE="text/libsvm")
    assert result.returncode == 0, result.stderr
    found = json.loads((opt_ml / "processing" / "evaluation" / "evaluation.json").read_text())
    assert found["multiclass_classification_metrics"]["accuracy"]["value"] > 0.9
