"""The Amazon ECR half of ``byoc push``: account, region, repository and login token.

Only this module talks to AWS. It imports boto3 inside its functions, and every botocore error is
turned into an :class:`~byoc.errors.AwsError` (or a :class:`~byoc.errors.ConfigError`) where the
call is made. Nothing here touches Docker: the result is a repository URI and a
:class:`RegistryAuth`, which the docker half of :mod:`byoc.registry` uses to push.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AwsError, ConfigError
from .say import Say, quiet

#: The environment variables that name a region, in the order they are read.
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
#: ECR's own rule for repository names.
REPOSITORY_PATTERN = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")

EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired",
                           "TokenRefreshRequired"})
INVALID_CODES = frozenset({"InvalidClientTokenId", "UnrecognizedClientException",
                           "SignatureDoesNotMatch", "InvalidSignatureException", "AuthFailure",
                           "IncompleteSignature", "InvalidAccessKeyId", "MissingAuthenticationToken"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                          "Forbidden"})
NO_CREDENTIALS = ("no AWS credentials found: pass --profile or set AWS_PROFILE, run `aws configure`"
                  " (or `aws sso login`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
#: AWS calls byoc makes are quick ones: a silent endpoint fails within about
#: MAX_ATTEMPTS * (CONNECT_TIMEOUT or READ_TIMEOUT) seconds, not botocore's 60 s per read.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
MAX_ATTEMPTS = 2
#: What to do when a call is refused, for the calls where there is more to say.
DENIED_HINTS = {"CreateRepository": " (or create the repository yourself and pass --no-create)",
                "HeadBucket": " (IAM calls it s3:ListBucket; a bucket of another account is"
                              " refused too: name yours with --bucket)"}
#: What to do about other error codes, said after AWS's message.
CODE_HINTS = {"ResourceLimitExceeded": " (ask for a higher quota in the Service Quotas console, or"
                                       " use fewer or other instances)",
              "ThrottlingException": " (AWS kept throttling after byoc's retries: wait and retry)"}


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry. The password never appears in a repr or a message."""

    registry: str
    username: str
    password: str = field(repr=False)

    def auth_config(self) -> dict[str, str]:
        """The docker SDK's ``auth_config``: sent to the engine in a header, never stored."""
        return {"username": self.username, "password": self.password,
                "serveraddress": self.registry}


@dataclass(frozen=True)
class EcrRepository:
    """An ECR repository as ``byoc push`` found or created it."""

    account: str
    region: str
    name: str
    #: ``<account>.dkr.ecr.<region>.amazonaws.com/<name>``
    uri: str
    tag_mutability: str
    scan_on_push: bool
    created: bool
    mutability_exclusions: tuple[str, ...] = ()

    @property
    def registry(self) -> str:
        return self.uri.split("/", 1)[0]

    def tag_is_immutable(self, tag: str) -> bool:
        """Whether pushing *tag* again would be refused by the repository."""
        if not self.tag_mutability.startswith("IMMUTABLE"):
            return False
        return not any(fnmatch.fnmatchcase(tag, pattern) for pattern in self.mutability_exclusions)


def resolve_region(region: str | None = None, *, profile: str | None = None,
                   project_region: str | None = None,
                   environ: Mapping[str, str] | None = None) -> str:
    """The region to push to: *region*, then ``AWS_REGION``/``AWS_DEFAULT_REGION``, then the
    profile's config, then *project_region* (``[aws] region`` of ``byoc.toml``).

    :raises ConfigError: when none of them names one, or the name is malformed.
    """
    import os

    env = os.environ if environ is None else environ
    found = region or next((env[name] for name in REGION_ENV if env.get(name)), None)
    if not found:
        found = _profile_region(profile) or project_region
    if not found:
        raise ConfigError("no AWS region: pass --region, set AWS_REGION, set one in your AWS profile"
                          " (`aws configure set region us-east-1`) or add `region = \"...\"` under"
                          " [aws] in byoc.toml")
    if not REGION_PATTERN.fullmatch(found):
        raise ConfigError(f"{found!r} is not an AWS region name (e.g. us-east-1)")
    return found


def _profile_region(profile: str | None) -> str | None:
    import botocore.exceptions
    import botocore.session

    try:
        config = botocore.session.Session(profile=profile).get_scoped_config()
    except botocore.exceptions.ProfileNotFound as exc:
        raise _profile_error(exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"cannot read the AWS config files: {exc}") from exc
    value = config.get("region")
    return str(value) if value else None


def _profile_error(exc: Exception) -> ConfigError:
    # botocore names the profile, whether it came from --profile or AWS_PROFILE
    return ConfigError(f"{exc}: check --profile, AWS_PROFILE and the AWS config files")


def session(profile: str | None, region: str) -> Any:
    """A boto3 session for *profile* (None: the default chain) in *region*.

    :raises ConfigError: when the profile does not exist.
    """
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise _profile_error(exc) from exc


def call(client: Any, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
    """Call *operation* (e.g. ``DescribeRepositories``) on *client*.

    :param service: the IAM prefix of the service (``ecr``, ``sts``), to name the permission.
    :raises AwsError: for any failure, with one line saying what to do.
    """
    found = lookup(client, service, operation, missing=frozenset(), **kwargs)
    assert found is not None  # nothing counts as missing
    return found


def lookup(client: Any, service: str, operation: str, *, missing: frozenset[str],
           **kwargs: Any) -> dict[str, Any] | None:
    """:func:`call`, but None for the error codes in *missing* (those that mean "not there")."""
    import botocore.exceptions as bx

    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    name = f"{service}:{operation}"
    try:
        result: dict[str, Any] = method(**kwargs)
    except bx.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in missing:
            return None
        raise _client_error(exc, service, operation) from exc
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
        raise AwsError(NO_CREDENTIALS) from exc
    except (bx.TokenRetrievalError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError) as exc:
        raise AwsError(f"the AWS credentials have expired ({type(exc).__name__}): log in again"
                       " (e.g. `aws sso login`) and retry") from exc
    except bx.CredentialRetrievalError as exc:
        raise AwsError(f"cannot get AWS credentials: {exc}") from exc
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
            bx.ConnectionClosedError) as exc:
        raise AwsError(f"cannot reach AWS for {name}: {exc} (no answer after {MAX_ATTEMPTS}"
                       " attempts; check the network, a proxy, AWS_ENDPOINT_URL)") from exc
    except bx.BotoCoreError as exc:
        raise AwsError(f"{name} failed: {exc}") from exc
    return result


def _client_error(exc: Any, service: str, operation: str) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    message = _message_of(str(error.get("Message") or ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    name = f"{service}:{operation}"
    if code in EXPIRED_CODES:
        return AwsError(f"the AWS credentials have expired ({code}): refresh them (e.g. `aws sso"
                        " login`, or new session credentials) and retry")
    if code in INVALID_CODES:
        return AwsError(f"AWS rejected the credentials ({code}): check the access key, secret and"
                        " session token of the profile or environment in use")
    if code in DENIED_CODES or status == 403:
        return AwsError(f"access denied calling {name}: the AWS identity in use needs the {name}"
                        f" permission{DENIED_HINTS.get(operation, '')}", detail=message)
    if code == str(status) and status is not None and status >= 500:
        # no AWS error document: a proxy's or load balancer's page (HTML), said in one line
        return AwsError(f"{name} failed: AWS answered HTTP {status} ({message or 'no reason given'})"
                        " after byoc's retries: a problem on AWS's side or on the way there; retry"
                        " later")
    return AwsError(f"{name} failed: {code or status}: {message}{CODE_HINTS.get(code, '')}")


#: The most of an HTML page's text shown in place of an error message.
PAGE_LIMIT = 200


def _message_of(text: str) -> str:
    """AWS's error message, in one line; some endpoints (moto among them) send an XML body in
    its place, and a proxy or load balancer in front of the service may send an HTML page, of
    which the title (else the first heading, else the text) is kept."""
    found = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    if found:
        text = found.group(1)
    elif re.search(r"<(!doctype\s+html|html|body|head|title|h1)\b", text, re.IGNORECASE):
        heading = re.search(r"<(title|h1)\b[^>]*>(.*?)</\1>", text, re.DOTALL | re.IGNORECASE)
        text = " ".join((heading.group(2) if heading else re.sub(r"<[^>]*>", " ", text)).split())
        if len(text) > PAGE_LIMIT:
            text = text[:PAGE_LIMIT - 3].rstrip() + "..."
    return " ".join(text.split())


def caller_account(aws: Any, region: str, log: Say | None = None) -> str:
    """The account of the credentials in use (``sts:GetCallerIdentity``)."""
    sts = _client(aws, "sts", region)
    if log is not None:
        log(f"Contacting AWS STS at {sts.meta.endpoint_url} for the account of the credentials")
    identity = call(sts, "sts", "GetCallerIdentity")
    return str(identity["Account"])


def ensure_repository(ecr: Any, name: str, *, account: str, region: str, create: bool = True,
                      immutable_tags: bool = False, scan_on_push: bool = True,
                      log: Say = quiet) -> EcrRepository:
    """Find the repository *name*, or create it (scan-on-push, tag immutability as asked).

    An existing repository is used as it is.

    :raises AwsError: when it is missing and *create* is false, or a call fails.
    """
    if not REPOSITORY_PATTERN.fullmatch(name) or not 2 <= len(name) <= 256:
        raise ConfigError(f"{name!r} is not a valid ECR repository name (lowercase letters, digits"
                          " and . _ - /, 2 to 256 characters)")
    found = lookup(ecr, "ecr", "DescribeRepositories", repositoryNames=[name],
                   missing=frozenset({"RepositoryNotFoundException"}))
    if found is not None:
        repository = _repository(found["repositories"][0], account, region, created=False)
        if immutable_tags and not repository.tag_mutability.startswith("IMMUTABLE"):
            log(f"warning: repository {name} exists with {repository.tag_mutability} tags;"
                " --immutable-tags applies only to a repository byoc creates")
        return repository
    if not create:
        raise AwsError(f"ECR repository {name!r} does not exist in account {account}, region"
                       f" {region}: create it, or drop --no-create to let byoc create it")
    created = lookup(ecr, "ecr", "CreateRepository", repositoryName=name,
                     imageTagMutability="IMMUTABLE" if immutable_tags else "MUTABLE",
                     imageScanningConfiguration={"scanOnPush": scan_on_push},
                     missing=frozenset({"RepositoryAlreadyExistsException"}))
    if created is None:  # created by someone else since we looked
        return ensure_repository(ecr, name, account=account, region=region, create=False, log=log)
    repository = _repository(created["repository"], account, region, created=True)
    log(f"Created ECR repository {repository.uri} ({repository.tag_mutability} tags,"
        f" scan on push {'on' if repository.scan_on_push else 'off'})")
    return repository


def _repository(data: Mapping[str, Any], account: str, region: str, *,
                created: bool) -> EcrRepository:
    exclusions = tuple(str(item.get("filter", ""))
                       for item in data.get("imageTagMutabilityExclusionFilters") or ())
    return EcrRepository(account=str(data.get("registryId") or account), region=region,
                         name=str(data["repositoryName"]), uri=str(data["repositoryUri"]),
                         tag_mutability=str(data.get("imageTagMutability") or "MUTABLE"),
                         scan_on_push=bool((data.get("imageScanningConfiguration") or {})
                                           .get("scanOnPush")),
                         created=created, mutability_exclusions=exclusions)


def tag_exists(ecr: Any, repository: EcrRepository, tag: str) -> bool:
    """Whether *repository* holds an image tagged *tag* (``ecr:DescribeImages``)."""
    found = lookup(ecr, "ecr", "DescribeImages", repositoryName=repository.name,
                   registryId=repository.account, imageIds=[{"imageTag": tag}],
                   missing=frozenset({"ImageNotFoundException"}))
    return bool(found and found.get("imageDetails"))


def authorization(ecr: Any) -> RegistryAuth:
    """Docker credentials for the account's registry (``ecr:GetAuthorizationToken``)."""
    answer = call(ecr, "ecr", "GetAuthorizationToken")
    data = (answer.get("authorizationData") or [None])[0]
    if not data:
        raise AwsError("ecr:GetAuthorizationToken returned no authorization data")
    endpoint = str(data.get("proxyEndpoint") or "")
    return decode_token(str(data.get("authorizationToken") or ""),
                        registry=re.sub(r"^https?://", "", endpoint).rstrip("/"))


def decode_token(token: str, *, registry: str) -> RegistryAuth:
    """Split ECR's token, base64 of ``AWS:<password>``, into a :class:`RegistryAuth`.

    :raises AwsError: when the token is not of that form (its content is never shown).
    """
    try:
        username, sep, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AwsError("ECR returned an authorization token that is not base64 text") from exc
    if not sep or not username or not password:
        raise AwsError("ECR returned an authorization token that is not USER:PASSWORD")
    return RegistryAuth(registry=registry, username=username, password=password)


@dataclass(frozen=True)
class EcrTarget:
    """Everything the docker half needs to push to ECR."""

    repository: EcrRepository
    auth: RegistryAuth = field(repr=False)


def prepare(name: str, *, tag: str, region: str | None = None, profile: str | None = None,
            project_region: str | None = None, create: bool = True, immutable_tags: bool = False,
            scan_on_push: bool = True, log: Say = quiet,
            environ: Mapping[str, str] | None = None) -> EcrTarget:
    """Resolve the region and account, find or create the repository *name*, refuse a tag an
    immutable repository holds already, and get a login token.

    :raises ConfigError: no region, unknown profile, bad repository name.
    :raises AwsError: credentials missing, expired or refused; a call denied; repository missing
        with ``create=False``; *tag* already in an immutable repository.
    """
    region = resolve_region(region, profile=profile, project_region=project_region, environ=environ)
    aws = session(profile, region)
    account = caller_account(aws, region, log)
    ecr = _client(aws, "ecr", region)
    log(f"Contacting Amazon ECR at {ecr.meta.endpoint_url} for repository {name}")
    repository = ensure_repository(ecr, name, account=account, region=region, create=create,
                                   immutable_tags=immutable_tags, scan_on_push=scan_on_push, log=log)
    if repository.tag_is_immutable(tag) and tag_exists(ecr, repository, tag):
        raise AwsError(f"tag {tag!r} already exists in {repository.uri}, whose tags are immutable:"
                       " push a new tag (commit your changes, or pass --tag)")
    return EcrTarget(repository=repository, auth=authorization(ecr))


def client_config() -> Any:
    """Short timeouts and few retries: see :data:`CONNECT_TIMEOUT`."""
    from botocore.config import Config

    return Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                  retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"})


def _client(aws: Any, service: str, region: str) -> Any:
    import botocore.exceptions

    try:
        return aws.client(service, region_name=region, config=client_config())
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"cannot make an AWS {service} client: {exc}") from exc
