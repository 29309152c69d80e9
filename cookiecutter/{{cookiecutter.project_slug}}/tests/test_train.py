import json
import re
import shutil
import tarfile

from conftest import run_train

EPOCH_LINE = re.compile(r"^epoch=(\d+) training:loss=(\S+); training:accuracy=(\S+);$", re.MULTILINE)


def set_hyperparameters(root, **values):
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({name: str(value) for name, value in values.items()}))


def test_training_writes_the_model_and_prints_metrics_per_epoch(opt_ml):
    set_hyperparameters(opt_ml, epochs=20)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    epochs = EPOCH_LINE.findall(result.stdout)
    assert [int(epoch) for epoch, _, _ in epochs] == list(range(1, 21))
    losses = [float(loss) for _, loss, _ in epochs]
    assert losses[-1] < losses[0] / 3  # it learns
    assert float(epochs[-1][2]) >= 0.9
    assert [p.name for p in (opt_ml / "model").iterdir()] == ["model.npz"]
    assert not (opt_ml / "output" / "failure").exists()


def test_the_same_seed_gives_the_same_model_and_another_seed_another(opt_ml, tmp_path):
    models = []
    for seed in (1, 1, 2):
        set_hyperparameters(opt_ml, epochs=5, seed=seed)
        assert run_train(opt_ml).returncode == 0
        models.append((opt_ml / "model" / "model.npz").read_bytes())
    assert models[0] == models[1] != models[2]


def test_a_resumed_job_ends_with_the_model_of_an_uninterrupted_one(opt_ml):
    set_hyperparameters(opt_ml, epochs=12)
    assert run_train(opt_ml).returncode == 0
    uninterrupted = (opt_ml / "model" / "model.npz").read_bytes()

    checkpoints = opt_ml / "checkpoints"
    checkpoints.mkdir()
    set_hyperparameters(opt_ml, epochs=5)  # the first part of the job
    assert run_train(opt_ml).returncode == 0
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch-000003.npz", "epoch-000004.npz", "epoch-000005.npz"]  # the last three
    set_hyperparameters(opt_ml, epochs=12)  # the same job, restarted
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert f"resuming from checkpoint {checkpoints / 'epoch-000005.npz'} (epoch 5)" in result.stdout
    assert [int(e) for e, _, _ in EPOCH_LINE.findall(result.stdout)] == list(range(6, 13))
    assert (opt_ml / "model" / "model.npz").read_bytes() == uninterrupted


def test_an_unreadable_checkpoint_is_skipped_for_the_one_before(opt_ml):
    checkpoints = opt_ml / "checkpoints"
    checkpoints.mkdir()
    set_hyperparameters(opt_ml, epochs=4)
    assert run_train(opt_ml).returncode == 0
    (checkpoints / "epoch-000004.npz").write_bytes(b"cut short")
    (checkpoints / "epoch-000005.npz.sagemaker-ignore").write_bytes(b"being written")
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "skipping checkpoint" in result.stderr
    assert "(epoch 3)" in result.stdout


def test_a_model_channel_is_the_starting_point(opt_ml):
    set_hyperparameters(opt_ml, epochs=30)
    assert run_train(opt_ml).returncode == 0
    channel = opt_ml / "input" / "data" / "model"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as archive:
        archive.add(opt_ml / "model" / "model.npz", arcname="model.npz")
    shutil.rmtree(opt_ml / "model")
    (opt_ml / "model").mkdir()
    config = opt_ml / "input" / "config" / "inputdataconfig.json"
    config.write_text(json.dumps({
        "training": {"TrainingInputMode": "File"},
        "model": {"TrainingInputMode": "File", "ContentType": "application/x-sagemaker-model"}}))
    set_hyperparameters(opt_ml, epochs=1)
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    assert "starting from the previous model" in result.stdout
    first_loss = float(EPOCH_LINE.findall(result.stdout)[0][1])
    assert first_loss < 0.15  # a fresh model's first epoch is far from this


def test_a_bad_hyperparameter_fails_with_a_reason_and_no_model(opt_ml):
    set_hyperparameters(opt_ml, epochs="many")
    result = run_train(opt_ml)
    assert result.returncode == 1
    reason = (opt_ml / "output" / "failure").read_text().splitlines()[0]
    assert reason == "hyperparameter 'epochs': expected an integer, got 'many'"
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
