"""AWS plumbing shared by every command that calls AWS: the region, the boto3 session and
clients, and one translation of every botocore failure into a one-line
:class:`~byoc.errors.AwsError` (or a :class:`~byoc.errors.ConfigError`).

boto3 and botocore are imported inside the functions, so ``import byoc`` stays light. Credentials
come from botocore's standard chain only; byoc never reads, prints or stores them. Used by the ECR
half of ``byoc push`` (:mod:`byoc.push.ecr`) and by the SageMaker commands
(:mod:`byoc.sagemaker`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import AwsError, ConfigError
from .say import Say

#: The environment variables that name a region, in the order they are read.
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

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
    sts = client(aws, "sts", region)
    if log is not None:
        log(f"Contacting AWS STS at {sts.meta.endpoint_url} for the account of the credentials")
    identity = call(sts, "sts", "GetCallerIdentity")
    return str(identity["Account"])


def client_config(*, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                  max_attempts: int = MAX_ATTEMPTS, user_agent_extra: str | None = None) -> Any:
    """botocore's client settings: short timeouts and few retries (see :data:`CONNECT_TIMEOUT`)
    in botocore's ``standard`` retry mode, which backs off on throttling and transient errors."""
    from botocore.config import Config

    return Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                  retries={"total_max_attempts": max_attempts, "mode": "standard"},
                  user_agent_extra=user_agent_extra)


def client(aws: Any, service: str, region: str, config: Any = None) -> Any:
    """A *service* client of the boto3 session *aws* in *region* (:func:`client_config` unless
    *config* is given).

    :raises AwsError: when botocore cannot make it.
    """
    import botocore.exceptions

    try:
        return aws.client(service, region_name=region, config=config or client_config())
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"cannot make an AWS {service} client: {exc}") from exc
