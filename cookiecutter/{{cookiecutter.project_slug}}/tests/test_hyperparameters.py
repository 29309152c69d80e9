import pytest

import hyperparameters
import model


def test_defaults_fill_in_when_nothing_is_set():
    params = hyperparameters.parse({}, model.HYPERPARAMETERS)
    assert params == {name: spec.default for name, spec in model.HYPERPARAMETERS.items()}
    assert params["epochs"] >= 1


def test_plain_and_json_encoded_strings_give_the_same_values():
    plain = hyperparameters.parse({"epochs": "5", "learning_rate": "0.05"}, model.HYPERPARAMETERS)
    encoded = hyperparameters.parse({"epochs": '"5"', "learning_rate": '"0.05"'},
                                    model.HYPERPARAMETERS)
    assert plain == encoded
    assert plain["epochs"] == 5 and plain["learning_rate"] == 0.05


def test_platform_keys_are_ignored():
    params = hyperparameters.parse({"sagemaker_program": '"train.py"',
                                    "_tuning_objective_metric": "validation:accuracy"},
                                   model.HYPERPARAMETERS)
    assert "sagemaker_program" not in params
    assert "_tuning_objective_metric" not in params


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epoch": "3"}, "unknown hyperparameter 'epoch' (valid: batch_size, epochs, l2"),
        ({"epochs": "0"}, "'epochs': must be at least 1"),
        ({"epochs": "2.5"}, "'epochs': expected an integer"),
        ({"learning_rate": "fast"}, "'learning_rate': expected a number"),
        ({"learning_rate": "nan"}, "'learning_rate': expected a finite number"),
        ({"momentum": "1"}, "'momentum': must be at most 0.999"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(raw, message):
    with pytest.raises(hyperparameters.HyperparameterError, match=message.replace("(", r"\(")):
        hyperparameters.parse(raw, model.HYPERPARAMETERS)
