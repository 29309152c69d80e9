import pytest

import hyperparameters
import model


def test_defaults_fill_in_when_nothing_is_set():
    params = hyperparameters.parse({}, model.HYPERPARAMETERS)
    assert params == {name: spec.default for name, spec in model.HYPERPARAMETERS.items()}


def test_plain_and_json_encoded_strings_give_the_same_values():
    plain = hyperparameters.parse({"criterion": "entropy", "max_depth": "3"}, model.HYPERPARAMETERS)
    encoded = hyperparameters.parse({"criterion": '"entropy"', "max_depth": '"3"'},
                                    model.HYPERPARAMETERS)
    assert plain == encoded
    assert plain["criterion"] == "entropy" and plain["max_depth"] == 3


def test_platform_keys_are_ignored():
    params = hyperparameters.parse({"sagemaker_program": '"train.py"',
                                    "_tuning_objective_metric": "validation:accuracy"},
                                   model.HYPERPARAMETERS)
    assert "sagemaker_program" not in params
    assert "_tuning_objective_metric" not in params


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_dept": "3"}, "unknown hyperparameter 'max_dept' (valid: criterion, max_depth"),
        ({"max_depth": "0"}, "'max_depth': must be at least 1"),
        ({"max_depth": "2.5"}, "'max_depth': expected an integer"),
        ({"criterion": "best"}, "'criterion': expected one of gini, entropy, log_loss"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(raw, message):
    with pytest.raises(hyperparameters.HyperparameterError, match=message.replace("(", r"\(")):
        hyperparameters.parse(raw, model.HYPERPARAMETERS)
