"""The docker half of ``byoc push``: real pushes to Debian's docker-registry with password auth.

The registry runs on plain http 127.0.0.1 (the engine allows insecure registries on 127.0.0.0/8),
with htpasswd users. Every test reads what it pushed back over the registry's HTTP API and checks
the digest byoc printed. The ECR end to end test runs the AWS half against moto and sends the push,
with the password from moto's ECR token, to the local registry through BYOC_ECR_REGISTRY_OVERRIDE.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from test_ecr import load_servers

from byoc import images
from byoc.cli import cli
from byoc.cli.progress import TerminalProgress
from byoc.errors import ImageNotFoundError
from byoc.push import registry
from helpers import REQUIRE_DOCKER_ENV, free_port

docker = pytest.mark.docker
servers = load_servers()
USER, PASSWORD = "byoc", f"pw-{uuid.uuid4().hex}"


def need_registry_tools() -> None:
    """Debian's docker-registry and apache2-utils (htpasswd) run the registry."""
    missing = [tool for tool in (servers.REGISTRY_BIN, "htpasswd") if not shutil.which(tool)]
    if missing:
        message = f"{', '.join(missing)} missing: apt-get install docker-registry apache2-utils"
        if os.environ.get(REQUIRE_DOCKER_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def local_registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need_registry_tools()
    users = {USER: PASSWORD, servers.MOTO_ECR_USER: servers.MOTO_ECR_PASSWORD}
    with servers.local_registry(tmp_path_factory.mktemp("registry"), users) as running:
        yield running


@pytest.fixture(scope="session")
def read_only_registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Any]:
    need_registry_tools()
    with servers.local_registry(tmp_path_factory.mktemp("ro-registry"), {USER: PASSWORD},
                                read_only=True) as running:
        yield running


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


def build_tiny(client: Any, directory: Path, tag: str, *, platform: str | None = None,
               base: str = "scratch") -> str:
    """A one-file image ``FROM scratch``: built in well under a second, pushed as fast."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.txt").write_text(f"hello from {tag}\n")
    (directory / "Dockerfile").write_text(f"FROM {base}\nCOPY hello.txt /hello.txt\n")
    for chunk in client.api.build(path=str(directory), tag=tag, platform=platform, decode=True,
                                  rm=True, forcerm=True):
        assert "error" not in chunk, chunk
    return tag


@pytest.fixture(scope="session")
def tiny_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = build_tiny(docker_client, tmp_path_factory.mktemp("tiny"),
                     f"byoc-test-tiny-{uuid.uuid4().hex[:8]}:latest")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.REGISTRY_PASSWORD_ENV, PASSWORD)


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["push", *args], input=input)


def repo() -> str:
    return f"team/app-{uuid.uuid4().hex[:8]}"


def assert_no_trace_of(secret: str, *texts: str) -> None:
    """*secret* is in none of *texts*, nor in any file under HOME (Docker config included)."""
    for text in texts:
        assert secret not in text
    home = Path.home()
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def assert_untagged(client: Any, reference: str) -> None:
    import docker.errors

    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(reference)


# ---- any registry ------------------------------------------------------------------------------

@docker
def test_push_prints_the_digest_the_registry_holds(docker_client: Any, local_registry: Any,
                                                   tiny_image: str, password_env: None) -> None:
    name = repo()
    result = run("--image", tiny_image, "--registry", local_registry.host, "--repository", name,
                 "--tag", "t1", "--username", USER)
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().splitlines()[-1]
    digest, manifest = local_registry.manifest(name, "t1", USER)
    assert printed == f"{local_registry.host}/{name}@{digest}"
    assert local_registry.manifest(name, digest, USER)[0] == digest
    assert manifest["schemaVersion"] == 2 and len(manifest["layers"]) == 1
    states = [line for line in result.stderr.splitlines() if re.fullmatch(r"[0-9a-f]{12}: .+", line)]
    assert states and len(states) == len(set(states))  # a line per layer state, not per byte
    assert f"Pushed {local_registry.host}/{name}:t1" in result.stderr
    assert "SageMaker runs" not in result.stderr  # the image is linux/amd64
    assert_untagged(docker_client, f"{local_registry.host}/{name}:t1")
    assert_no_trace_of(PASSWORD, result.stdout, result.stderr)


@docker
def test_password_from_stdin(local_registry: Any, tiny_image: str) -> None:
    name = repo()
    result = run("--image", tiny_image, "--registry", local_registry.host, "--repository", name,
                 "--tag", "t2", "--username", USER, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    digest, _ = local_registry.manifest(name, "t2", USER)
    assert result.stdout.strip().endswith(f"@{digest}")
    assert_no_trace_of(PASSWORD, result.stdout, result.stderr)


@docker
def test_library_push_reports_layer_progress(docker_client: Any, local_registry: Any,
                                             tmp_path: Path) -> None:
    image = build_tiny(docker_client, tmp_path, f"byoc-test-fresh-{uuid.uuid4().hex[:8]}:1")
    events: list[registry.LayerProgress] = []
    lines: list[str] = []
    try:
        result = registry.push(image=image, registry=local_registry.host, repository=repo(),
                               tag="t3", username=USER, password=PASSWORD, progress=events.append,
                               log=lines.append)
    finally:
        docker_client.images.remove(image, force=True)
    assert result.uri == f"{result.registry}/{result.repository}@{result.digest}"
    assert result.tagged_uri.endswith(":t3")
    assert local_registry.manifest(result.repository, "t3", USER)[0] == result.digest
    finals = {event.layer: event.status for event in events}
    assert finals and set(finals.values()) == {"Pushed"}  # a layer no repository has yet
    assert any(event.status == "Pushing" and event.bar for event in events)
    assert not any(": Pushing" in line for line in lines)  # layer events went to progress


@docker
def test_wrong_password(local_registry: Any, tiny_image: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv(registry.REGISTRY_PASSWORD_ENV, wrong)
    result = run("--image", tiny_image, "--registry", local_registry.host, "--repository", repo(),
                 "--tag", "t1", "--username", USER)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: login to {local_registry.host} as {USER} failed:")
    assert "401 Unauthorized" in result.stderr
    assert_no_trace_of(wrong, result.stderr)


@docker
def test_no_credentials_for_a_registry_that_wants_them(local_registry: Any, tiny_image: str) -> None:
    name = repo()
    result = run("--image", tiny_image, "--registry", local_registry.host, "--repository", name,
                 "--tag", "t1")
    assert result.exit_code == 1
    assert (f"\nError: push of {local_registry.host}/{name}:t1 failed: no basic auth credentials;"
            " log in with --username and a password") in result.stderr
    assert result.stdout == ""


@docker
def test_unreachable_registry(tiny_image: str, password_env: None) -> None:
    host = f"127.0.0.1:{free_port()}"
    result = run("--image", tiny_image, "--registry", host, "--repository", repo(), "--tag", "t1",
                 "--username", USER)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: login to {host} as {USER} failed:")
    assert "connection refused" in result.stderr


@docker
def test_error_inside_the_push_stream_fails_the_push(docker_client: Any, read_only_registry: Any,
                                                     tiny_image: str, password_env: None) -> None:
    """The login works and the engine answers the push with HTTP 200, then reports in the stream
    that the registry refused the upload (read-only). The SDK alone would return normally."""
    name = repo()
    result = run("--image", tiny_image, "--registry", read_only_registry.host, "--repository",
                 name, "--tag", "t1", "--username", USER)
    assert result.exit_code == 1
    assert result.stdout == ""
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"Error: push of {read_only_registry.host}/{name}:t1 failed:")
    assert "405" in error
    assert_untagged(docker_client, f"{read_only_registry.host}/{name}:t1")
    # the same push through the SDK alone: no exception, the error is only an entry in the stream
    target = f"{read_only_registry.host}/{name}"
    docker_client.api.tag(tiny_image, target, "raw")
    try:
        chunks = list(docker_client.api.push(target, tag="raw", stream=True, decode=True,
                                             auth_config={"username": USER, "password": PASSWORD}))
    finally:
        docker_client.images.remove(f"{target}:raw")
    assert any("error" in chunk for chunk in chunks)


@docker
def test_missing_image_outside_a_project(local_registry: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageNotFoundError, match="byoc-test-missing:1 is not in the local engine"):
        registry.push(registry.load_project(None, image="byoc-test-missing:1"),
                      image="byoc-test-missing:1", registry=local_registry.host, tag="t1")


# ---- the image itself --------------------------------------------------------------------------

@docker
def test_non_amd64_image_gets_a_warning(docker_client: Any, local_registry: Any,
                                        tmp_path: Path, password_env: None) -> None:
    tag = build_tiny(docker_client, tmp_path, f"byoc-test-arm-{uuid.uuid4().hex[:8]}:1",
                     platform="linux/arm64")
    try:
        result = run("--image", tag, "--registry", local_registry.host, "--repository", repo(),
                     "--tag", "t1", "--username", USER)
    finally:
        docker_client.images.remove(tag, force=True)
    assert result.exit_code == 0, result.output
    assert (f"warning: the image is linux/arm64 (this host is {platform.machine()}), but SageMaker runs"
            " linux/amd64 images: rebuild with `byoc build --platform linux/amd64`") in result.stderr


def test_platform_warning() -> None:
    assert registry.platform_warning("linux/amd64", "arm64") is None
    warning = registry.platform_warning("linux/arm64", "aarch64")
    assert warning is not None and "this host is aarch64" in warning


@docker
def test_missing_image_is_built_first_with_build_args(docker_client: Any, local_registry: Any,
                                                      tiny_image: str, tmp_path: Path,
                                                      password_env: None) -> None:
    image = f"byoc-test-built-{uuid.uuid4().hex[:8]}"
    (tmp_path / "byoc.toml").write_text(f'[project]\nname = "built"\nimage = "{image}"\n')
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE=no-such-base\nFROM ${BASE_IMAGE}\n"
                                         'LABEL built-by="byoc push"\n')
    try:
        result = run(str(tmp_path), "--registry", local_registry.host, "--tag", "t1",
                     "--username", USER, "--build-arg", f"BASE_IMAGE={tiny_image}")
        assert result.exit_code == 0, result.output
        assert f"Image {image}:latest is missing: building it" in result.stderr
        labels = docker_client.images.get(f"{image}:latest").labels
        assert labels["built-by"] == "byoc push"
        assert labels[images.CONTEXT_LABEL] == images.context_hash(tmp_path)
        digest, _ = local_registry.manifest(image, "t1", USER)  # repository: the image name
        assert result.stdout.strip().endswith(f"{local_registry.host}/{image}@{digest}")
    finally:
        docker_client.images.remove(f"{image}:latest", force=True)


@docker
def test_the_default_template_image(default_image: str, local_registry: Any) -> None:
    result = registry.push(image=default_image, registry=local_registry.host,
                           repository="iris-classifier", tag="template", username=USER,
                           password=PASSWORD, log=lambda line: None)
    digest, manifest = local_registry.manifest("iris-classifier", "template", USER)
    assert result.digest == digest
    assert len(manifest["layers"]) > 1


# ---- Amazon ECR, end to end --------------------------------------------------------------------

@docker
def test_ecr_push_end_to_end(moto_url: str, local_registry: Any, tiny_image: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """STS, region, repository and token from moto; the push, logged in with the token's
    password, to the local registry (the ECR host moto names does not exist)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(registry.ECR_REGISTRY_OVERRIDE_ENV, local_registry.host)
    name = repo()
    image = tiny_image.rsplit(":", 1)[0]
    (tmp_path / "byoc.toml").write_text(f'[project]\nname = "demo"\nimage = "{image}"\n'
                                        f'[aws]\nregion = "eu-west-1"\nrepository = "{name}"\n')
    result = run(str(tmp_path))
    assert result.exit_code == 0, result.output
    ecr_host = f"{servers.MOTO_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    assert f"Created ECR repository {ecr_host}/{name}" in result.stderr
    assert f"pushing to {local_registry.host} instead of {ecr_host}" in result.stderr
    pushed = next(line for line in result.stderr.splitlines() if line.startswith("Pushed "))
    tag = pushed.rsplit(":", 1)[1]
    assert tag.endswith("Z") and "T" in tag  # not in git: a UTC timestamp
    digest, _ = local_registry.manifest(name, tag, servers.MOTO_ECR_USER)
    assert result.stdout.strip().splitlines()[-1] == f"{local_registry.host}/{name}@{digest}"
    described = boto3.client("ecr", region_name="eu-west-1").describe_repositories(
        repositoryNames=[name])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}
    assert_no_trace_of(servers.MOTO_ECR_PASSWORD, result.stdout, result.stderr)


# ---- tags and progress (no engine needed, but cheap) ----------------------------------------

def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C",
                           str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_default_tag_is_traceable(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert registry.default_tag(tmp_path, now=now) == "20260102T030405Z"
    git(tmp_path, "init", "-q")
    (tmp_path / "train").write_text("v1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    commit = git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert registry.default_tag(tmp_path, now=now) == commit
    (tmp_path / "train").write_text("v2\n")
    assert registry.default_tag(tmp_path, now=now) == f"{commit}-dirty-20260102T030405Z"


def test_terminal_progress_redraws_each_layer_in_place() -> None:
    out = io.StringIO()
    draw = TerminalProgress(out)
    draw(registry.LayerProgress("aaa", "Preparing"))
    draw(registry.LayerProgress("bbb", "Preparing"))
    draw(registry.LayerProgress("aaa", "Pushing", "[==>   ] 1MB/3MB"))
    draw(registry.LayerProgress("bbb", "Pushed"))
    assert out.getvalue() == ("aaa: Preparing\n"
                              "bbb: Preparing\n"
                              "\x1b[2A\r\x1b[2Kaaa: Pushing [==>   ] 1MB/3MB\n\x1b[1B"
                              "\x1b[1A\r\x1b[2Kbbb: Pushed\n")


@docker
def test_image_name_gives_the_default_repository(tmp_path: Path, tiny_image: str,
                                                 local_registry: Any) -> None:
    result = registry.push(image=tiny_image, registry=local_registry.host, tag="t9",
                           username=USER, password=PASSWORD, log=lambda line: None)
    assert result.repository == tiny_image.rsplit(":", 1)[0]
    assert registry._repository_of("registry.example:5000/team/app:1") == "team/app"
    assert registry._repository_of("team/app@sha256:abc") == "team/app"



@docker
def test_make_push_in_a_fresh_project(moto_url: str, local_registry: Any, default_image: str,
                                      docker_client: Any, tmp_path: Path) -> None:
    """`byoc new`, then `make push`: repository created in moto, image in the registry."""
    import sys

    from byoc import scaffold

    name = f"app-{uuid.uuid4().hex[:8]}"
    project = scaffold.new_project(name, output_dir=tmp_path)
    docker_client.images.get(default_image).tag(name, "latest")  # what `make build` makes
    # as a user runs it: not nested in the `make check` that may be running these tests
    outer = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}
    env = {**{k: v for k, v in os.environ.items() if k not in outer},
           "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing",
           registry.ECR_REGISTRY_OVERRIDE_ENV: local_registry.host}
    try:
        done = subprocess.run(["make", "--no-print-directory", "push",
                               f"BYOC={sys.executable} -m byoc"], cwd=project,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        ecr_host = f"{servers.MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
        assert f"Created ECR repository {ecr_host}/{name}" in done.stderr
        pushed = next(line for line in done.stderr.splitlines() if line.startswith("Pushed "))
        digest, _ = local_registry.manifest(name, pushed.rsplit(":", 1)[1], servers.MOTO_ECR_USER)
        assert done.stdout.strip().splitlines()[-1] == f"{local_registry.host}/{name}@{digest}"
        assert_no_trace_of(servers.MOTO_ECR_PASSWORD, done.stdout, done.stderr)
    finally:
        docker_client.images.remove(f"{name}:latest", force=True)
