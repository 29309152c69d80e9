"""``byoc validate --mode``: each hosting mode's rules, broken one at a time in a small stdlib
server (tests/fixtures/validate_modes), fail their named check; the server that keeps them
passes."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import images
from byoc.backends.docker import DockerBackend
from byoc.cli import cli
from byoc.project import Project
from byoc.validate import Report, validate
from byoc.validate.common import FAIL, PASS, SKIPPED
from byoc.validate.modes import nginx_test_command, server_timeouts
from helpers import FIXTURES, train_job

SERVER = FIXTURES / "validate_modes"
TAG = f"t-hv-modes-{uuid.uuid4().hex[:8]}"
#: The stdlib server answers /ping within a second; two defects never do.
FAST = {"startup_timeout": 8.0}


@pytest.fixture(scope="session")
def modes_image(docker_client: Any, base_image: str) -> Iterator[str]:
    """The server that keeps every rule, labels included."""
    tag = f"{TAG}:good"
    images.build(SERVER, tag=tag, build_args={"BASE_IMAGE": base_image}, network="host")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def unlabelled_image(docker_client: Any, base_image: str, modes_image: str) -> Iterator[str]:
    """The same server without the hosting-mode labels (set to false)."""
    tag = f"{TAG}:unlabelled"
    images.build(SERVER, tag=tag, build_args={"BASE_IMAGE": base_image, "LABELS": "false"},
                 network="host")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def defect_image(docker_client: Any, modes_image: str) -> Iterator[Callable[..., str]]:
    """The good image with ``ENV DEFECT=...``: one layer of metadata per defect, built once."""
    built: dict[str, str] = {}

    def image(defect: str, env: str = "") -> str:
        if defect not in built:
            tag = f"{TAG}:{defect.replace('_', '-')}"
            dockerfile = f"FROM {modes_image}\nENV {env or f'DEFECT={defect}'}\n".encode()
            docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
            built[defect] = tag
        return built[defect]

    yield image
    for tag in built.values():
        docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("modes-model")
    (root / "model").mkdir()
    (root / "model" / "weights.json").write_text(json.dumps({"w": [1, 2, 3]}))
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "model" / "weights.json", arcname="weights.json")
    return archive


@pytest.fixture(scope="session")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("modes-payload") / "payload.json"
    path.write_text('{"instances": [[1, 2, 3]]}\n')
    return path


@pytest.fixture
def no_leftovers(docker_client: Any) -> Iterator[None]:
    before = {container.id for container in docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": "com.byoc.validate"})}
    yield
    left = [container.name for container in docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": "com.byoc.validate"}) if container.id not in before]
    assert [name for name in left if any(mode in name for mode in
                                         ("multi-model", "bind-port", "async", "serverless"))] == []


def run(image: str, model: Path, payload: Path, *modes: str, **options: Any) -> Report:
    return validate(image, model=model, payload=payload, modes=modes, **{**FAST, **options})


def failed(report: Report) -> set[str]:
    return {check.name for check in report.checks if check.result == FAIL}


pytestmark = pytest.mark.docker


def test_the_server_that_keeps_every_rule_passes_every_mode(modes_image: str, model: Path,
                                                            payload: Path,
                                                            no_leftovers: None) -> None:
    report = run(modes_image, model, payload, "all")
    assert failed(report) == set(), report.to_text()
    names = [check.name for check in report.checks]
    for mode in ("multi-model", "pipeline", "async", "serverless"):
        assert any(name.startswith(f"{mode}.") for name in names), names
    assert report.check("multi-model.invoke").result == PASS
    assert "weights.json" in report.check("multi-model.invoke").saw  # the archive's model answered
    assert "9123" in report.check("pipeline.port").saw
    assert "9200" in report.check("pipeline.safe_ports").saw  # its internal port, in the range
    assert "200 MB" in report.check("async.large_body").saw
    assert report.check("serverless.writes").result == PASS
    # not provoked without --memory, and a stdlib server has no gunicorn or nginx timeout to read
    memory = report.check("multi-model.memory")
    assert memory.result == SKIPPED and "not exercised" in memory.saw and "--memory" in memory.saw
    timeout = report.check("async.timeout")
    assert timeout.result == SKIPPED and "body size only" in timeout.saw
    assert report.exit_code == 0
    junit = report.to_junit()
    assert 'classname="byoc.validate.multi-model"' in junit


def test_the_labels_are_required(unlabelled_image: str, model: Path, payload: Path) -> None:
    report = run(unlabelled_image, model, payload, "multi-model", "pipeline")
    assert failed(report) == {"multi-model.label", "pipeline.label"}, report.to_text()
    label = report.check("pipeline.label")
    assert "accept-bind-to-port is 'false'" in label.saw and "LABEL" in label.fix


@pytest.mark.parametrize(("defect", "mode", "failures", "named", "reason"), [
    ("ignore_bind_port", "pipeline", {"pipeline.port", "pipeline.safe_ports"},
     "pipeline.port", "SAGEMAKER_BIND_TO_PORT=9123: GET /ping answered connection refused"),
    ("extra_port", "pipeline", {"pipeline.safe_ports"}, "pipeline.safe_ports",
     "8000 (127.0.0.1)"),
    ("mme_ping_needs_model", "multi-model", {"multi-model.ping"}, "multi-model.ping", "HTTP 503"),
    ("mme_reload_ok", "multi-model", {"multi-model.load_again"}, "multi-model.load_again",
     "HTTP 200"),
    ("mme_list_flat", "multi-model", {"multi-model.list"}, "multi-model.list", "GET /models"),
    ("mme_unknown_500", "multi-model", {"multi-model.not_loaded", "multi-model.unload"},
     "multi-model.not_loaded", "HTTP 500"),
    ("fixed_body_limit", "async", {"async.large_body"}, "async.large_body", "HTTP 413"),
    ("writes_outside_tmp", "serverless", {"serverless.writes"}, "serverless.writes",
     "Read-only file system"),
])
def test_each_broken_rule_fails_its_check(defect_image: Callable[..., str], model: Path,
                                          payload: Path, defect: str, mode: str,
                                          failures: set[str], named: str, reason: str) -> None:
    report = run(defect_image(defect), model, payload, mode)
    assert failed(report) == failures, report.to_text()
    check = report.check(named)
    assert reason in check.saw, check.saw
    assert check.fix
    assert report.exit_code == 1


def test_an_image_without_python_on_path_is_probed_on_a_published_port(
        defect_image: Callable[..., str], model: Path, payload: Path) -> None:
    """No Python for the sidecar: the server runs on the bridge network, its port published."""
    image = defect_image("python_off_path", "PATH=/usr/local/bin")  # serve names its python
    report = run(image, model, payload, "pipeline", "serverless")
    assert failed(report) == set(), report.to_text()
    assert "/ping 200 on 9123" in report.check("pipeline.port").saw
    assert "published port" in report.check("pipeline.port").saw
    assert "9123" in report.check("pipeline.safe_ports").saw  # read with /bin/cat
    assert report.check("serverless.writes").result == PASS


def test_memory_pressure_gets_507_or_an_oom_kill(modes_image: str,
                                                 defect_image: Callable[..., str],
                                                 model: Path, payload: Path,
                                                 no_leftovers: None) -> None:
    good = run(modes_image, model, payload, "multi-model", memory=256)
    check = good.check("multi-model.memory")
    assert check.result == PASS and check.saw.startswith("507 after"), check.saw
    bad = run(defect_image("mme_no_507"), model, payload, "multi-model", memory=256)
    check = bad.check("multi-model.memory")
    assert check.result == FAIL and "OOM-killed" in check.saw, check.saw
    assert failed(bad) == {"multi-model.memory"}


def test_the_timeouts_read_from_gunicorn_and_nginx() -> None:
    gunicorn = ("/usr/bin/python3 -m gunicorn --bind unix:/tmp/run/gunicorn.sock --workers 2"
                " --timeout 3600 --graceful-timeout 25 iris.wsgi:app")
    nginx = ("http {\n  server {\n    location / {\n      proxy_read_timeout 60s;\n"
             "      proxy_pass http://gunicorn;\n    }\n  }\n}\n")
    assert server_timeouts([gunicorn, "nginx: worker process"], nginx) == {
        "gunicorn --timeout": 3600, "nginx proxy_read_timeout": 60}
    assert server_timeouts(["gunicorn -t120 app:app"], None) == {"gunicorn --timeout": 120}
    assert server_timeouts(["gunicorn --timeout=90 app:app"], "http { }") == {
        "gunicorn --timeout": 90, "nginx proxy_read_timeout": 60}  # nginx's default
    assert server_timeouts(["gunicorn app:app"], "proxy_read_timeout 1h;") == {
        "gunicorn --timeout": 30, "nginx proxy_read_timeout": 3600}  # gunicorn's default
    assert server_timeouts(["python3 /opt/server/server.py"], None) == {}


def test_nginx_is_read_with_the_configuration_it_runs() -> None:
    titles = ["python3 /opt/program/serve",
              "nginx: master process /usr/sbin/nginx -c /tmp/serve-1/nginx.conf -p /tmp/serve-1"
              " -e stderr", "nginx: worker process"]
    assert nginx_test_command(titles) == ["/usr/sbin/nginx", "-T", "-e", "stderr",
                                          "-c", "/tmp/serve-1/nginx.conf", "-p", "/tmp/serve-1"]
    assert nginx_test_command(["nginx: master process nginx -g daemon off;"]) == [
        "nginx", "-T", "-e", "stderr"]
    assert nginx_test_command(["gunicorn app:app"]) is None


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "serverless", "--memory", "512"], "a serverless endpoint has 1024, 2048, 3072,"),
    (["--mode", "all", "--memory", "1500"], "--memory 1500: a serverless endpoint has"),
    (["--mode", "all", "--serve-only"], "leave out --train-only and --serve-only"),
    (["--mode", "pipeline", "--channel", "train=."], "--mode does not train"),
    (["--mode", "async"], "pass --payload FILE"),
    (["--memory", "1024"], "--memory goes with --mode"),
    (["--mode", "pipeline", "--memory", "1024"], "--memory goes with --mode serverless or"),
])
def test_bad_mode_options_are_one_error_line(tmp_path: Path, payload: Path, args: list[str],
                                             message: str, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.chdir(tmp_path)  # outside any project
    model = tmp_path / "model"
    model.mkdir()
    given = ["--model", str(model)] if "--payload" in message else [
        "--model", str(model), "--payload", str(payload)]
    if "--mode" not in args:  # the checks of training need a channel
        given += ["--channel", f"train={tmp_path}"]
    result = CliRunner().invoke(cli, ["validate", "t-hv-no-such-image", *given, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unknown_mode_is_refused() -> None:
    result = CliRunner().invoke(cli, ["validate", "x", "--mode", "streaming"])
    assert result.exit_code == 2 and "'streaming' is not one of" in result.output



def test_the_default_template_passes_every_mode_but_the_multi_model_label(
        default_image: str, default_project: Path, tmp_path: Path, no_leftovers: None) -> None:
    """The default template against --mode all, with real nginx and gunicorn (whose timeouts the
    async check reads). Rendered with multi_model=no it lacks only the label: its runtime is the
    same either way."""
    project = Project.load(default_project)
    trained = train_job(backend=DockerBackend(default_image), project=project,
                        output_dir=tmp_path / "jobs")
    report = validate(default_image, project=project, model=trained.model_archive, modes=("all",),
                      startup_timeout=30.0)
    assert failed(report) == {"multi-model.label"}, report.to_text()
    label = report.check("multi-model.label")  # byoc new --set multi_model=yes adds it
    assert "multi-models" in label.saw and "multi_model" not in label.fix
    others = {check.name: check.result for check in report.checks
              if check.name.split(".")[0] in ("pipeline", "async", "serverless")}
    assert set(others.values()) == {PASS} and len(others) == 10, report.to_text()
    assert report.check("multi-model.invoke").result == PASS
    timeout = report.check("async.timeout").saw
    assert "gunicorn --timeout 3600 s" in timeout and "nginx proxy_read_timeout 3600 s" in timeout
