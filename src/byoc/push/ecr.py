"""The Amazon ECR half of ``byoc push``: repository and login token.

Every AWS call goes through :mod:`byoc.aws`, which turns botocore's errors into an
:class:`~byoc.errors.AwsError` (or a :class:`~byoc.errors.ConfigError`). Nothing here touches
Docker: the result is a repository URI and a :class:`RegistryAuth`, which the docker half of
:mod:`byoc.push.registry` uses to push.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..aws import call, caller_account, client, lookup, resolve_region, session
from ..errors import AwsError, ConfigError
from ..say import Say, quiet

#: ECR's own rule for repository names.
REPOSITORY_PATTERN = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


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
    ecr = client(aws, "ecr", region)
    log(f"Contacting Amazon ECR at {ecr.meta.endpoint_url} for repository {name}")
    repository = ensure_repository(ecr, name, account=account, region=region, create=create,
                                   immutable_tags=immutable_tags, scan_on_push=scan_on_push, log=log)
    if repository.tag_is_immutable(tag) and tag_exists(ecr, repository, tag):
        raise AwsError(f"tag {tag!r} already exists in {repository.uri}, whose tags are immutable:"
                       " push a new tag (commit your changes, or pass --tag)")
    return EcrTarget(repository=repository, auth=authorization(ecr))
