"""The ECR half of ``byoc push`` against moto in server mode (a real HTTP endpoint on 127.0.0.1).

Where moto does not answer in AWS's real shape (expired credentials; ECR's JSON
AccessDeniedException body), a tiny HTTP server in tests/fixtures/registry/servers.py answers
instead: AWS's wire protocol is a boundary byoc does not own. None of these tests needs Docker:
``byoc push`` settles the AWS half before it opens a Docker client.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from byoc import aws as byoc_aws
from byoc.cli import cli
from byoc.errors import AwsError, ConfigError
from byoc.project import Project
from byoc.push import ecr as byoc_ecr
from helpers import load_fixture


def load_servers() -> ModuleType:
    """tests/fixtures/registry/servers.py: moto's server and Debian's docker-registry."""
    return load_fixture("registry/servers.py")


servers = load_servers()
scripted = load_fixture("fake_aws.py")
ACCOUNT = servers.MOTO_ACCOUNT


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Dummy credentials, every AWS call to moto, no region set anywhere."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_url


def ecr(region: str = "us-east-1") -> Any:
    return boto3.client("ecr", region_name=region)


def unique(prefix: str = "repo") -> str:
    return f"byoc-test/{prefix}-{uuid.uuid4().hex[:8]}"


def prepare(name: str, **kwargs: Any) -> byoc_ecr.EcrTarget:
    kwargs.setdefault("tag", "v1")
    kwargs.setdefault("log", lambda line: None)
    return byoc_ecr.prepare(name, **kwargs)


# ---- account, region, token ---------------------------------------------------------------

def test_account_registry_and_token_come_from_aws(aws: str) -> None:
    name = unique()
    target = prepare(name, region="eu-west-1")
    host = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    assert target.repository.account == ACCOUNT
    assert target.repository.uri == f"{host}/{name}"
    assert target.auth.registry == host
    assert (target.auth.username, target.auth.password) == ("AWS", servers.MOTO_ECR_PASSWORD)
    assert servers.MOTO_ECR_PASSWORD not in repr(target)


def test_region_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Path(tmp_path / "aws-config")
    config.write_text("[default]\nregion = eu-central-1\n[profile ci]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    env = {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-2"}

    def resolve(region: str | None = None, environ: dict[str, str] | None = None,
                profile: str | None = None) -> str:
        return byoc_aws.resolve_region(region, profile=profile, project_region="sa-east-1",
                                   environ=environ or {})

    assert resolve("eu-north-1", env) == "eu-north-1"
    assert resolve(None, env) == "us-west-2"
    assert resolve(None, {"AWS_DEFAULT_REGION": "us-east-2"}) == "us-east-2"
    assert resolve(None, {}, profile="ci") == "ap-south-1"
    assert resolve(None, {}) == "eu-central-1"
    config.write_text("[default]\n")
    assert resolve(None, {}) == "sa-east-1"


def test_project_region_is_used_last(aws: str) -> None:
    target = prepare(unique(), project_region="ap-northeast-1")
    assert target.repository.region == "ap-northeast-1"
    assert ".dkr.ecr.ap-northeast-1.amazonaws.com/" in target.repository.uri


def test_no_region_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError) as caught:
        byoc_aws.resolve_region(None, environ={})
    for hint in ("--region", "AWS_REGION", "aws configure set region", "byoc.toml"):
        assert hint in caught.value.message


def test_bad_region_and_unknown_profile_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an AWS region"):
        byoc_aws.resolve_region("us east 1", environ={})
    with pytest.raises(ConfigError, match=r"The config profile \(nope\) could not be found"):
        byoc_aws.resolve_region(None, profile="nope", environ={})


def test_unknown_profile_from_the_environment(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "ghost")
    with pytest.raises(ConfigError, match=r"profile \(ghost\) could not be found: check --profile"):
        prepare(unique(), region="us-east-1")


def test_token_decoding() -> None:
    token = base64.b64encode(b"AWS:s3cr:et").decode()
    auth = byoc_ecr.decode_token(token, registry="r.example")
    assert (auth.username, auth.password, auth.registry) == ("AWS", "s3cr:et", "r.example")
    assert "s3cr" not in repr(auth)
    with pytest.raises(AwsError, match="not base64"):
        byoc_ecr.decode_token("%%%", registry="r")
    with pytest.raises(AwsError, match="USER:PASSWORD"):
        byoc_ecr.decode_token(base64.b64encode(b"no-colon").decode(), registry="r")


# ---- repositories ------------------------------------------------------------------------------

def test_missing_repository_is_created_with_scan_on_push(aws: str) -> None:
    name = unique()
    lines: list[str] = []
    target = prepare(name, region="us-east-1", log=lines.append)
    assert target.repository.created
    described = ecr().describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}
    assert described["imageTagMutability"] == "MUTABLE"
    assert any(line.startswith(f"Created ECR repository {target.repository.uri}") for line in lines)


def test_created_repository_honours_immutable_tags_and_no_scan(aws: str) -> None:
    name = unique()
    prepare(name, region="us-east-1", immutable_tags=True, scan_on_push=False)
    described = ecr().describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageTagMutability"] == "IMMUTABLE"
    assert described["imageScanningConfiguration"] == {"scanOnPush": False}


def test_existing_repository_is_used_as_it_is(aws: str) -> None:
    name = unique()
    ecr().create_repository(repositoryName=name, imageTagMutability="MUTABLE",
                            imageScanningConfiguration={"scanOnPush": False})
    lines: list[str] = []
    target = prepare(name, region="us-east-1", immutable_tags=True, log=lines.append)
    assert not target.repository.created
    described = ecr().describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described["imageTagMutability"] == "MUTABLE"
    assert described["imageScanningConfiguration"] == {"scanOnPush": False}
    assert any("--immutable-tags applies only" in line for line in lines)


def test_no_create_refuses_a_missing_repository(aws: str) -> None:
    name = unique()
    with pytest.raises(AwsError, match="does not exist in account 123456789012, region us-east-1"):
        prepare(name, region="us-east-1", create=False)
    assert not ecr().describe_repositories()["repositories"] or name not in {
        repo["repositoryName"] for repo in ecr().describe_repositories()["repositories"]}


def test_invalid_repository_name_is_a_config_error(aws: str) -> None:
    with pytest.raises(ConfigError, match="not a valid ECR repository name"):
        prepare("Upper/Case", region="us-east-1")


def test_existing_tag_in_an_immutable_repository_is_refused(aws: str) -> None:
    name = unique()
    prepare(name, region="us-east-1", immutable_tags=True, tag="v1")
    manifest = json.dumps({"schemaVersion": 2, "mediaType":
                           "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {}, "layers": []})
    ecr().put_image(repositoryName=name, imageManifest=manifest, imageTag="v1")
    with pytest.raises(AwsError, match="tag 'v1' already exists in .* immutable"):
        prepare(name, region="us-east-1", tag="v1")
    assert prepare(name, region="us-east-1", tag="v2").repository.tag_mutability == "IMMUTABLE"


# ---- credentials and permissions ---------------------------------------------------------------

def test_no_credentials(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsError, match="no AWS credentials found") as caught:
        prepare(unique(), region="us-east-1")
    assert "aws configure" in caught.value.message and not caught.value.detail


def test_rejected_credentials_with_moto_enforcing_iam(aws: str) -> None:
    with servers.moto_iam_enforced(aws), pytest.raises(AwsError, match=r"rejected the credentials"
                                                                       r" \(InvalidClientTokenId\)"):
        prepare(unique(), region="us-east-1")


def test_expired_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"GetCallerIdentity": scripted.sts_error(
        "ExpiredToken", "The security token included in the request is expired")}
    with scripted.fake_aws(answers) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "old")
        with pytest.raises(AwsError, match=r"credentials have expired \(ExpiredToken\)"):
            prepare(unique(), region="us-east-1")


def limited_user(actions: list[str]) -> dict[str, str]:
    """An IAM user in moto allowed only *actions*; :returns: its access key."""
    iam = boto3.client("iam", region_name="us-east-1")
    user = f"byoc-limited-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="limited", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]}))
    key: dict[str, str] = iam.create_access_key(UserName=user)["AccessKey"]
    return key


@contextmanager
def as_user(moto_url: str, key: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch, servers.moto_iam_enforced(moto_url):
        patch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        yield


DESCRIBE_ONLY = ["sts:GetCallerIdentity", "ecr:DescribeRepositories", "ecr:GetAuthorizationToken"]


def test_access_denied_with_moto_enforcing_iam(aws: str) -> None:
    """A real IAM policy check: the user may describe, not create. (moto answers ECR's denial as
    an XML body with HTTP 403, not ECR's JSON: byoc reads both.)"""
    key = limited_user(DESCRIBE_ONLY)
    with as_user(aws, key), pytest.raises(AwsError) as caught:
        prepare(unique(), region="us-east-1")
    error = caught.value
    assert error.message == ("access denied calling ecr:CreateRepository: the AWS identity in use"
                             " needs the ecr:CreateRepository permission (or create the repository"
                             " yourself and pass --no-create)")
    assert "is not authorized to perform: ecr:CreateRepository" in error.detail


def _ecr_ok(operation: str) -> tuple[int, str]:
    repository = {"repositoryName": "app", "registryId": ACCOUNT, "imageTagMutability": "MUTABLE",
                  "repositoryUri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/app",
                  "imageScanningConfiguration": {"scanOnPush": True}}
    return {
        "DescribeRepositories": scripted.error("RepositoryNotFoundException", "no app"),
        "CreateRepository": (200, json.dumps({"repository": repository})),
        "GetAuthorizationToken": (200, json.dumps({"authorizationData": [{
            "authorizationToken": base64.b64encode(b"AWS:pw").decode(),
            "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"}]})),
    }[operation]


@pytest.mark.parametrize("denied", ["DescribeRepositories", "CreateRepository",
                                    "GetAuthorizationToken"])
def test_access_denied_in_ecrs_own_wire_format(denied: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ECR's real denial: HTTP 400, ``{"__type": "AccessDeniedException", ...}``."""
    message = (f"User: arn:aws:iam::{ACCOUNT}:user/ci is not authorized to perform: ecr:{denied}"
               f" on resource: * because no identity-based policy allows the ecr:{denied} action")
    answers = {op: _ecr_ok(op) for op in ("DescribeRepositories", "CreateRepository",
                                          "GetAuthorizationToken")}
    answers[denied] = scripted.error("AccessDeniedException", message)
    answers["GetCallerIdentity"] = scripted.sts_identity()
    with scripted.fake_aws(answers) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
        with pytest.raises(AwsError) as caught:
            prepare("app", region="us-east-1")
    assert caught.value.message.startswith(f"access denied calling ecr:{denied}: the AWS identity"
                                           f" in use needs the ecr:{denied} permission")
    assert caught.value.detail == message
    assert fake.operations()[-1] == denied


# ---- through the CLI ---------------------------------------------------------------------------

def write_project(root: Path, *, region: str | None = None, repository: str | None = None) -> Path:
    aws = "".join(f'{key} = "{value}"\n' for key, value in
                  (("region", region), ("repository", repository)) if value)
    root.mkdir(parents=True, exist_ok=True)
    (root / "byoc.toml").write_text(f'[project]\nname = "demo"\nimage = "byoc-test-demo"\n'
                                    f"[aws]\n{aws}")
    return root


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["push", *args], input=input)


def error_of(result: Any) -> str:
    """The one ``Error:`` line on stderr, after the lines saying what is contacted (a detail may
    follow it)."""
    lines = result.stderr.splitlines()
    errors = [index for index, line in enumerate(lines) if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert all(line.startswith("Contacting ") for line in lines[:errors[0]]), result.stderr
    return lines[errors[0]]


def test_cli_no_credentials_is_one_line(moto_url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(str(write_project(tmp_path / "p", region="us-east-1")), "--tag", "v1")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert error_of(result).startswith("Error: no AWS credentials found:")
    assert "Traceback" not in result.output


def test_cli_no_region(aws: str, tmp_path: Path) -> None:
    result = run(str(write_project(tmp_path / "p")), "--tag", "v1")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no AWS region: pass --region, set AWS_REGION")


def test_cli_access_denied_names_the_call(aws: str, tmp_path: Path) -> None:
    key = limited_user(DESCRIBE_ONLY)
    with as_user(aws, key):
        result = run(str(write_project(tmp_path / "p", region="us-east-1")), "--tag", "v1")
    assert result.exit_code == 1
    assert error_of(result).startswith("Error: access denied calling ecr:CreateRepository: the AWS"
                                       " identity in use needs the ecr:CreateRepository permission")
    assert "Traceback" not in result.output


def test_cli_no_create(aws: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", region="us-east-1", repository=unique())
    result = run(str(project), "--tag", "v1", "--no-create")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "--no-create" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--registry", "r.example", "--region", "us-east-1"], "--region apply to Amazon ECR only"),
    (["--registry", "r.example", "--immutable-tags"], "--immutable-tags apply to Amazon ECR only"),
    (["--registry", "https://r.example"], "--registry takes HOST[:PORT]"),
    (["--registry", "r.example", "--username", "u"], "--username u needs a password"),
    (["--username", "u"], "--username and a password apply to --registry only"),
    (["--tag", "bad tag!"], "invalid tag 'bad tag!'"),
])
def test_cli_option_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = run(str(write_project(tmp_path / "p", region="us-east-1")), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_cli_password_stdin_needs_a_username(tmp_path: Path) -> None:
    result = run(str(write_project(tmp_path / "p")), "--registry", "r.example", "--password-stdin",
                 input="secret\n")
    assert result.exit_code == 2
    assert "but no --username" in result.stderr and "secret" not in result.output


def test_project_config_feeds_repository_and_region(tmp_path: Path) -> None:
    project = Project.load(write_project(tmp_path / "p", region="eu-west-3", repository="team/app"))
    assert (project.region, project.repository, project.image) == ("eu-west-3", "team/app",
                                                                  "byoc-test-demo")


def test_importing_byoc_does_not_import_boto3_or_docker() -> None:
    code = "import sys, byoc.cli, byoc.aws, byoc.push; print(sorted({'boto3', 'docker'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_an_endpoint_that_never_answers_fails_soon_in_one_line(
        silent_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    started = time.monotonic()
    result = run(str(write_project(tmp_path / "p", region="us-east-1")), "--tag", "v1")
    elapsed = time.monotonic() - started
    bound = byoc_aws.MAX_ATTEMPTS * (byoc_aws.READ_TIMEOUT + byoc_aws.CONNECT_TIMEOUT) + 10
    assert elapsed < bound, f"{elapsed:.0f} s"
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"Contacting AWS STS at {silent_endpoint} for the account of the credentials"
    assert error_of(result).startswith("Error: cannot reach AWS for sts:GetCallerIdentity: Read"
                                       " timeout on endpoint URL")
    assert len(lines) == 2 and "Traceback" not in result.output
