"""Checks of SageMaker's hosting modes on a serving container, over HTTP.

Shared by the Python runtime's tests as a process (tests/test_container_serve.py)
and in its image (tests/test_container_hosting.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePath

import requests

CSV_ROWS = "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n"
#: TCP states in /proc/net/tcp: 0A is LISTEN.
LISTEN = "0A"


def models_root(parent: Path, model_dir: Path, *names: str) -> Path:
    """SageMaker's /opt/ml/models: each model extracted under NAME/model."""
    root = parent / "models"
    for name in names:
        shutil.copytree(model_dir, root / name / "model")
    return root


def oversized_model(root: Path, size: int = 1 << 40, name: str = "huge") -> Path:
    """A model folder whose one file is *size* bytes long (sparse: it takes no room on disk).

    The default, 1 TiB, is more than any memory here.
    """
    folder = root / name / "model"
    folder.mkdir(parents=True)
    with (folder / "weights.bin").open("wb") as sparse:
        sparse.truncate(size)
    return folder


def load_model(url: str, name: str, folder: PurePath | str) -> requests.Response:
    return requests.post(f"{url}/models", json={"model_name": name, "url": str(folder)}, timeout=30)


def invoke_model(url: str, name: str) -> requests.Response:
    return requests.post(f"{url}/models/{name}/invoke", data=CSV_ROWS,
                         headers={"Content-Type": "text/csv"}, timeout=30)


def assert_multi_model_api(url: str, root: PurePath, workers: int) -> None:
    """SageMaker's multi-model API, status by status.

    *root* is where the server sees SageMaker's /opt/ml/models: models a and b, and huge
    (:func:`oversized_model`).
    """
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200  # no model loaded
    assert requests.get(f"{url}/models", timeout=5).json() == {"models": []}
    assert invoke_model(url, "a").status_code == 404

    assert load_model(url, "a", root / "a" / "model").status_code == 200
    again = load_model(url, "a", root / "a" / "model")
    assert (again.status_code, again.text) == (409, "model a is already loaded\n")
    # every worker answers it, each with its own copy (one request each at least)
    for _ in range(4 * workers):
        answer = invoke_model(url, "a")
        assert (answer.status_code, answer.text) == (200, "setosa\nvirginica\n")
    assert requests.get(f"{url}/models/a", timeout=5).json() == {
        "modelName": "a", "modelUrl": str(root / "a" / "model")}
    assert requests.get(f"{url}/models/b", timeout=5).status_code == 404

    assert load_model(url, "b", root / "b" / "model").status_code == 200
    first = requests.get(f"{url}/models", params={"max_results": "1"}, timeout=5).json()
    assert first == {"models": [{"modelName": "a", "modelUrl": str(root / "a" / "model")}],
                     "nextPageToken": "1"}
    second = requests.get(f"{url}/models", params={"max_results": "1", "next_page_token": "1"},
                          timeout=5).json()
    assert second == {"models": [{"modelName": "b", "modelUrl": str(root / "b" / "model")}]}
    assert requests.get(f"{url}/models", params={"max_results": "0"}, timeout=5).status_code == 400

    huge = load_model(url, "huge", root / "huge" / "model")
    assert huge.status_code == 507, huge.text
    assert "not enough memory to load model huge" in huge.text
    assert requests.get(f"{url}/models/huge", timeout=5).status_code == 404

    assert requests.delete(f"{url}/models/a", timeout=5).status_code == 200
    assert requests.delete(f"{url}/models/a", timeout=5).status_code == 404
    for _ in range(4 * workers):  # unloaded for every worker, not only the one that was told
        assert invoke_model(url, "a").status_code == 404
        assert invoke_model(url, "b").status_code == 200

    for body in (b"not json", b'{"model_name": "c"}', b'{"url": "/x"}'):
        refused = requests.post(f"{url}/models", data=body, timeout=5)
        assert refused.status_code == 400 and refused.text.count("\n") == 1, refused.text
    assert load_model(url, "c", root / "nowhere").status_code == 400
    assert requests.post(f"{url}/invocations", data=CSV_ROWS, headers={"Content-Type": "text/csv"},
                         timeout=5).status_code == 404
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200


def listening_ports(proc_net_tcp: str) -> set[int]:
    """The ports listened on, from the text of /proc/net/tcp and /proc/net/tcp6."""
    ports = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
