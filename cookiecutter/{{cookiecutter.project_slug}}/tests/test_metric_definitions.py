"""The metric definitions in byoc.toml read what training prints, as SageMaker reads the log."""

import json
import re
import tomllib

import pytest

from conftest import ROOT, run_train

DEFINITIONS = tomllib.loads((ROOT / "byoc.toml").read_text())["metric_definitions"]
#: What ``job.report`` prints for channel "training" / "validation".
CHANNELS = {"train": "training", "validation": "validation"}


def value(definition, line):
    """What SageMaker takes from *line*: the first group of the first match, or None."""
    match = re.search(definition["Regex"], line)
    return match.group(1) if match else None


def test_each_definition_has_one_capture_group_and_the_service_limits():
    assert 1 <= len(DEFINITIONS) <= 40
    for definition in DEFINITIONS:
        assert 1 <= len(definition["Name"]) <= 255 and 1 <= len(definition["Regex"]) <= 500
        assert re.compile(definition["Regex"]).groups == 1


@pytest.mark.parametrize("text", ["0.25", "1", "1e-05", "-0.3", "2.5E+10", ".5", "nan", "inf", "-inf"])
@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d["Name"])
def test_each_value_is_read_whole(definition, text):
    channel, _, name = definition["Name"].partition(":")
    line = f"epoch=3 {CHANNELS[channel]}:{name}={text}; {CHANNELS[channel]}:other=7;"
    assert value(definition, line) == text


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda d: d["Name"])
def test_other_metrics_and_channels_are_not_read(definition):
    channel, _, name = definition["Name"].partition(":")
    others = [f"{CHANNELS[c]}:{n}=0.5;" for c in CHANNELS for n in ("loss", "accuracy")
              if (c, n) != (channel, name)]
    assert all(value(definition, line) is None for line in others)
    assert value(definition, f"{CHANNELS[channel]}:{name}=cat;") is None


def test_every_definition_reads_what_training_prints(opt_ml):
    data = opt_ml / "input" / "data" / "training" / "iris.csv"
    validation = opt_ml / "input" / "data" / "validation"
    validation.mkdir()
    (validation / "holdout.csv").write_text("\n".join(data.read_text().splitlines()[::7]) + "\n")
    (opt_ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({
        "training": {"TrainingInputMode": "File"}, "validation": {"TrainingInputMode": "File"}}))
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text('{"epochs": "4"}')
    result = run_train(opt_ml)
    assert result.returncode == 0, result.stderr
    for definition in DEFINITIONS:
        found = [value(definition, line) for line in result.stdout.splitlines()]
        numbers = [float(text) for text in found if text is not None]
        assert len(numbers) == 5, definition["Name"]  # each epoch, then the final score
        assert all(0 <= number < 10 for number in numbers)
