import pytest

import predictor


@pytest.fixture
def client(trained, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(trained))
    return predictor.create_app().test_client()


def test_ping_answers_200_once_the_model_is_loaded(client):
    assert client.get("/ping").status_code == 200


def test_csv_rows_get_one_prediction_each(client):
    response = client.post("/invocations", data="5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n",
                           content_type="text/csv")
    assert response.status_code == 200
    assert response.data.decode().split() == ["setosa", "virginica"]


def test_json_is_answered_as_json(client):
    response = client.post("/invocations", json=[[5.1, 3.5, 1.4, 0.2]])
    assert response.get_json() == {"predictions": ["setosa"]}


def test_bad_input_is_a_client_error(client):
    assert client.post("/invocations", data="1,2,3", content_type="text/csv").status_code == 400
    assert client.post("/invocations", data="x", content_type="text/plain").status_code == 415


def test_ping_is_503_without_a_model(opt_ml, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(opt_ml))
    response = predictor.create_app().test_client().get("/ping")
    assert response.status_code == 503
    assert b"cannot load the model" in response.data
