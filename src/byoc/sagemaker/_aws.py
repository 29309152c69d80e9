"""AWS clients for the SageMaker commands: region, account, role, bucket, and every call.

Credentials come from botocore's standard chain only (environment, profile, SSO, container or
instance role); byoc never reads, prints or stores them. Every client has short connect and read
timeouts and botocore's ``standard`` retry mode, which retries throttling (``ThrottlingException``)
and transient errors with exponential backoff, a bounded number of times. Every failure becomes
one :class:`~byoc.errors.AwsError` line through :func:`byoc.aws.call`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import aws
from ..errors import AwsError, ConfigError
from ..project import Project

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 70.0
#: Attempts per call (the first plus retries) in botocore's standard retry mode.
MAX_ATTEMPTS = 4
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SECTION = "sagemaker"
#: What a dry run without credentials prints in place of the account (see :attr:`Aws.dry_run`).
ACCOUNT_PLACEHOLDER = "<account>"
#: What a dry run prints in place of an image digest that ``byoc push`` has not made yet.
DIGEST_PLACEHOLDER = "<digest-of-byoc-push>"
#: What to say when no role is named.
NO_ROLE = ("no SageMaker execution role: pass --role ARN (or a role name), or add"
           ' `role = "arn:aws:iam::<account>:role/<name>"` under [sagemaker] in byoc.toml; byoc'
           " never creates roles (the role needs the AmazonSageMakerFullAccess policy or"
           " equivalent, and a trust policy for sagemaker.amazonaws.com)")


@dataclass(frozen=True)
class SageMakerConfig:
    """The ``[sagemaker]`` section of ``byoc.toml``: defaults for every SageMaker command."""

    role: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    instance_type: str | None = None

    @classmethod
    def of(cls, project: Project | None) -> SageMakerConfig:
        if project is None:
            return cls()
        path = project.config.path
        data = project.config.sagemaker
        values = {key: data.get(key) for key in ("role", "bucket", "prefix", "instance_type")}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{path}: [sagemaker] {key} must be a string")
        return cls(**values)


@dataclass
class Aws:
    """One region's clients, made on first use."""

    region: str
    profile: str | None = None
    session: Any = None
    #: A dry run: what needs credentials (the account) becomes :data:`ACCOUNT_PLACEHOLDER` when
    #: they are missing or refused, instead of an error; :attr:`placeholders` says why.
    dry_run: bool = False
    #: For a dry run, what stands in the request in place of what could not be learnt.
    placeholders: list[str] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict)
    _account: str | None = None

    @classmethod
    def connect(cls, region: str | None = None, *, profile: str | None = None,
                project: Project | None = None,
                environ: Mapping[str, str] | None = None) -> Aws:
        """Resolve the region (``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile,
        ``[aws] region``) and open a session on the standard credential chain.

        :raises ConfigError: no region, a malformed one, an unknown profile.
        """
        found = aws.resolve_region(region, profile=profile,
                                    project_region=project.region if project else None,
                                    environ=environ)
        return cls(region=found, profile=profile, session=aws.session(profile, found))

    def client(self, service: str) -> Any:
        if service not in self._clients:
            config = aws.client_config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                                       max_attempts=MAX_ATTEMPTS, user_agent_extra="byoc")
            self._clients[service] = aws.client(self.session, service, self.region, config)
        return self._clients[service]

    def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """*operation* (``CreateTrainingJob``) of the *service* client; :raises AwsError: one line."""
        return aws.call(self.client(service), _IAM.get(service, service), operation, **kwargs)

    def lookup(self, service: str, operation: str, *, missing: frozenset[str],
               **kwargs: Any) -> dict[str, Any] | None:
        """:meth:`call`, None for the error codes in *missing*."""
        return aws.lookup(self.client(service), _IAM.get(service, service), operation,
                           missing=missing, **kwargs)

    @property
    def account(self) -> str:
        """The account of the credentials (``sts:GetCallerIdentity``); in a dry run without
        usable credentials, :data:`ACCOUNT_PLACEHOLDER`."""
        if self._account is None:
            try:
                identity = self.call("sts", "GetCallerIdentity")
            except AwsError as exc:
                if not self.dry_run:
                    raise
                self._account = ACCOUNT_PLACEHOLDER
                self.placeholders.append(
                    f"{ACCOUNT_PLACEHOLDER} stands for the AWS account, which needs credentials"
                    f" ({exc.message.split(': ')[0]}): pass --bucket and --role as an ARN, or"
                    " configure credentials, for the real values")
            else:
                self._account = str(identity["Account"])
        return self._account

    def role_arn(self, role: str | None, config: SageMakerConfig) -> str:
        """The execution role: *role* (an ARN, or a name in this account), else the config's.

        :raises ConfigError: when none is named; the role is never created.
        """
        chosen = role or config.role
        if not chosen:
            raise ConfigError(NO_ROLE)
        if ROLE_ARN.fullmatch(chosen):
            return chosen
        if ROLE_NAME.fullmatch(chosen):
            return f"arn:aws:iam::{self.account}:role/{chosen}"
        raise ConfigError(f"--role {chosen!r} is neither a role ARN"
                          " (arn:aws:iam::<account>:role/<name>) nor a role name")

    def default_bucket(self) -> str:
        """SageMaker's default bucket name: ``sagemaker-<region>-<account>``."""
        return f"sagemaker-{self.region}-{self.account}"

    def bucket(self, bucket: str | None, config: SageMakerConfig) -> str:
        """The bucket for channels and artifacts: *bucket*, the config's, else SageMaker's default
        bucket. It must exist: byoc does not create buckets.

        :raises ConfigError: when it does not exist or its name is malformed.
        """
        chosen = bucket or config.bucket or self.default_bucket()
        if not BUCKET.fullmatch(chosen):
            raise ConfigError(f"{chosen!r} is not an S3 bucket name")
        found = self.lookup("s3", "HeadBucket", Bucket=chosen,
                            missing=frozenset({"404", "NoSuchBucket", "NotFound"}))
        if found is None:
            raise ConfigError(f"S3 bucket {chosen} does not exist in this account: create it"
                              f" (`aws s3 mb s3://{chosen} --region {self.region}`), or name"
                              ' another with --bucket or `bucket = "..."` under [sagemaker] in'
                              " byoc.toml")
        return chosen


#: The IAM prefix of a client's actions, where it differs from the client's name.
_IAM = {"sagemaker-runtime": "sagemaker"}


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``; :raises ConfigError: for another URI."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if not match:
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)
