"""``byoc push``: ship an image to Amazon ECR, or to any OCI registry.

Two halves that meet in :func:`push`:

* the ECR half (:mod:`byoc.push.ecr`): account from STS, region, repository found or created, login
  token decoded into a :class:`RegistryAuth`;
* the docker half (:func:`push_image`): tag, log in through the SDK's ``auth_config`` (the
  password goes to the engine in a request header only: it is never printed, put on a command line
  or written to a Docker config file), push with per-layer progress, and fail on any error the
  engine reports inside the push stream (it answers HTTP 200 even then).

``BYOC_ECR_REGISTRY_OVERRIDE=HOST[:PORT]`` is for tests and mirrors only: it sends an ECR push,
with the ECR login token, to HOST instead of the registry ECR named, and says so in the log. byoc's
own tests use it to push to a local registry with the token moto hands out.
"""

from __future__ import annotations

import os
import platform as platform_module
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import contract, images
from .._docker import docker_client, explain, stream_error
from ..errors import ConfigError, ImageNotFoundError, PushError
from ..project import Project
from ..say import Say, quiet
from . import ecr
from .ecr import RegistryAuth as RegistryAuth

#: Redirects an ECR push to another registry host (tests, mirrors); see the module docstring.
ECR_REGISTRY_OVERRIDE_ENV = "BYOC_ECR_REGISTRY_OVERRIDE"
#: The password for ``--registry`` when it is not read from standard input.
REGISTRY_PASSWORD_ENV = "BYOC_REGISTRY_PASSWORD"
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
HOST_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?")
SAGEMAKER_PLATFORM = contract.PLATFORM
AUTH_ERROR = re.compile(r"no basic auth credentials|unauthorized|authentication required", re.I)


@dataclass(frozen=True)
class PushResult:
    """Where an image went: :attr:`uri` is the digest-pinned reference to give SageMaker."""

    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def uri(self) -> str:
        """``<registry>/<repository>@sha256:...``"""
        return f"{self.registry}/{self.repository}@{self.digest}"

    @property
    def tagged_uri(self) -> str:
        """``<registry>/<repository>:<tag>``"""
        return f"{self.registry}/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class LayerProgress:
    """One event of a push stream about one layer."""

    layer: str
    status: str
    #: The engine's own progress bar (``[===>   ] 1.2MB/4MB``), or "".
    bar: str = ""


Progress = Callable[[LayerProgress], None]


def load_project(path: Path | None, *, image: str | None = None) -> Project | None:
    """The project to push: the one at *path*, else the one around the current directory.

    With an explicit *image* and no *path*, being outside a project is fine (None).

    :raises ConfigError: when a project is needed and not found, or its ``byoc.toml`` is bad.
    """
    return Project.find(path, required=image is None)


def push(project: Project | None = None, *, image: str | None = None,
         repository: str | None = None, tag: str | None = None, region: str | None = None,
         profile: str | None = None, registry: str | None = None, create: bool = True,
         immutable_tags: bool = False, scan_on_push: bool | None = None,
         username: str | None = None, password: str | None = None,
         build_args: Mapping[str, str] | None = None, log: Say = quiet,
         progress: Progress | None = None, environ: Mapping[str, str] | None = None) -> PushResult:
    """Push *image* (default: the project's ``<image>:latest``, built when missing) to Amazon ECR,
    or to *registry* when given, and return where it went.

    :param project: supplies the image, the repository (``[aws] repository``, else the image name),
        the region (``[aws] region``, read last) and the build context.
    :param tag: the tag to push; default :func:`default_tag` (git commit or UTC time).
    :param region: ECR only; else ``AWS_REGION``/``AWS_DEFAULT_REGION``, the profile, the project.
    :param registry: ``HOST[:PORT]`` of any OCI registry instead of ECR; log in with *username*
        and *password* (default: ``$BYOC_REGISTRY_PASSWORD``), or with nothing (the engine's
        anonymous access, or the Docker config's credentials).
    :param create: ECR: create the repository when missing (scan on push unless *scan_on_push* is
        False, immutable tags when *immutable_tags*). An existing repository is used as it is.
    :param progress: called for each layer event; default: a plain line through *log* whenever a
        layer changes state.
    :raises ConfigError: conflicting or malformed options, no region, no project.
    :raises AwsError: AWS credentials, permissions, missing repository, immutable tag.
    :raises ImageNotFoundError: the image is missing and there is no project to build it from.
    :raises BuildError: building the missing image failed.
    :raises PushError: login or push refused, registry unreachable.
    :raises DockerUnavailableError: no Docker engine answers.
    """
    env = os.environ if environ is None else environ
    auth = _check_options(registry=registry, region=region, profile=profile, create=create,
                          immutable_tags=immutable_tags, scan_on_push=scan_on_push,
                          username=username, password=password, environ=env)
    if project is not None:
        local = image or f"{project.image}:latest"
        name = repository or project.repository or project.image
    elif image is not None:
        local, name = image, repository or _repository_of(image)
    else:
        raise ConfigError("nothing to push: give a project directory or --image")
    ready = False
    if tag is None:  # the tag names what the image was built from: settle the image first
        tag = source_tag(_prepare_image(project, local, explicit=image is not None,
                                        build_args=build_args, log=log, environ=env), log=log)
        ready = True
    if not TAG_PATTERN.fullmatch(tag):
        raise ConfigError(f"invalid tag {tag!r}: letters, digits, _ . - (at most 128, not first . -)")
    if tag == "latest":
        log("warning: the tag 'latest' says nothing about what was pushed; the digest does")
    if registry is None:
        target = ecr.prepare(name, tag=tag, region=region, profile=profile,
                              project_region=project.region if project else None, create=create,
                              immutable_tags=immutable_tags, scan_on_push=scan_on_push is not False,
                              log=log, environ=env)
        host, auth = target.repository.registry, target.auth
        override = env.get(ECR_REGISTRY_OVERRIDE_ENV)
        if override:
            _check_host(override, ECR_REGISTRY_OVERRIDE_ENV)
            log(f"warning: {ECR_REGISTRY_OVERRIDE_ENV} is set: pushing to {override} instead of {host}")
            host = override
            auth = RegistryAuth(registry=host, username=auth.username, password=auth.password)
    else:
        host = registry
    if not ready:
        _prepare_image(project, local, explicit=image is not None, build_args=build_args, log=log,
                       environ=env)
    client = docker_client(env)
    try:
        return push_image(local, registry=host, repository=name, tag=tag, auth=auth, log=log,
                          progress=progress, client=client)
    finally:
        client.close()


def _check_options(*, registry: str | None, region: str | None, profile: str | None,
                   create: bool, immutable_tags: bool, scan_on_push: bool | None,
                   username: str | None, password: str | None,
                   environ: Mapping[str, str]) -> RegistryAuth | None:
    if registry is None:
        if username is not None or password is not None:
            raise ConfigError("--username and a password apply to --registry only; ECR logs in"
                              " with a token from your AWS credentials")
        return None
    ecr_only = [option for option, given in (("--region", region is not None),
                                             ("--profile", profile is not None),
                                             ("--no-create", not create),
                                             ("--immutable-tags", immutable_tags),
                                             ("--[no-]scan-on-push", scan_on_push is not None))
                if given]
    if ecr_only:
        raise ConfigError(f"{', '.join(ecr_only)} apply to Amazon ECR only, not to --registry")
    _check_host(registry, "--registry")
    password = password if password is not None else environ.get(REGISTRY_PASSWORD_ENV) or None
    if username is None:
        if password is not None:
            raise ConfigError(f"a password was given (--password-stdin or {REGISTRY_PASSWORD_ENV})"
                              " but no --username")
        return None
    if not password:
        raise ConfigError(f"--username {username} needs a password: pipe it to --password-stdin"
                          f" or set {REGISTRY_PASSWORD_ENV}")
    return RegistryAuth(registry=registry, username=username, password=password)


def _check_host(host: str, option: str) -> str:
    if not HOST_PATTERN.fullmatch(host):
        raise ConfigError(f"{option} takes HOST[:PORT] (no scheme, no path), got {host!r}")
    return host


def _repository_of(image: str) -> str:
    """``registry:5000/team/name:tag`` -> ``team/name``."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name


def default_tag(root: Path, *, now: datetime | None = None) -> str:
    """A traceable tag: the git commit of *root* (``<sha>-dirty-<time>`` when the tree under
    *root* has changes, so two different dirty states never share a tag), else the UTC time.
    """
    return tag_of_source(images.git_source(root), now=now)


def tag_of_source(source: str, *, now: datetime | None = None) -> str:
    """The tag for an image built from *source* (:data:`byoc.images.SOURCE_LABEL`: ``<sha>``,
    ``<sha>-dirty`` or ""): ``<sha>``, ``<sha>-dirty-<time>``, or the UTC time."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    if not source:
        return stamp
    return f"{source}-{stamp}" if source.endswith("-dirty") else source


@dataclass(frozen=True)
class _Prepared:
    """The image to push: whether it is the project as it is now, else what it says of itself."""

    reference: str
    root: Path | None
    current: bool
    recorded: images.Provenance | None = None


def _prepare_image(project: Project | None, local: str, *, explicit: bool,
                   build_args: Mapping[str, str] | None, log: Say,
                   environ: Mapping[str, str]) -> _Prepared:
    """Make sure *local* is there to push: the project's own image is built when missing and
    rebuilt when the project changed since; an ``--image`` is pushed as it is.

    :raises ImageNotFoundError: an ``--image`` missing outside a project.
    :raises BuildError: the build failed.
    """
    found = images.provenance(local, environ)
    if project is not None and (not explicit or not found.present):
        digest = images.ensure_current(project.root, local, build_args=build_args, log=log,
                                       environ=environ)
        return _Prepared(local, project.root, current=bool(digest),
                         recorded=None if digest else found)
    if not found.present:
        raise ImageNotFoundError(f"image {local} is not in the local engine: build it"
                                 " first (byoc build), or run from the project directory")
    if project is not None and found.matches(images.context_hash(project.root)):
        return _Prepared(local, project.root, current=True)
    return _Prepared(local, None, current=False, recorded=found)


def source_tag(prepared: _Prepared, *, log: Say = quiet, now: datetime | None = None) -> str:
    """The default tag: what the image was really built from (see :func:`tag_of_source`).

    The project's tree names it when the image is the project as it is now; otherwise the
    image's own :data:`byoc.images.SOURCE_LABEL` does, and without one only the time is used.
    """
    if prepared.current and prepared.root is not None:
        return default_tag(prepared.root, now=now)
    recorded = prepared.recorded
    if recorded is None or not recorded.context:
        tag = tag_of_source("", now=now)
        log(f"warning: image {prepared.reference} does not say what it was built from: tagging it"
            f" {tag} (the time), not with a commit")
        return tag
    tag = tag_of_source(recorded.source, now=now)
    log(f"Image {prepared.reference} is not the project as it is now: tagging it {tag}, after what"
        " it was built from")
    return tag


def platform_warning(image_platform: str, host_machine: str | None = None) -> str | None:
    """A warning when the image is not linux/amd64, the only platform SageMaker runs."""
    if image_platform == SAGEMAKER_PLATFORM:
        return None
    host = host_machine or platform_module.machine()
    return (f"warning: the image is {image_platform} (this host is {host}), but SageMaker runs"
            f" {SAGEMAKER_PLATFORM} images: rebuild with `byoc build --platform {SAGEMAKER_PLATFORM}`")


def push_image(image: str, *, registry: str, repository: str, tag: str,
               auth: RegistryAuth | None = None, log: Say = quiet,
               progress: Progress | None = None, client: Any = None,
               environ: Mapping[str, str] | None = None) -> PushResult:
    """The docker half: push the local *image* as ``<registry>/<repository>:<tag>``.

    Logs in first when *auth* is given (so a wrong password or a dead registry is reported as
    such), scans the push stream for errors, and removes the registry tag it added afterwards.

    :returns: the result, with the digest the registry reported.
    :raises PushError: login refused, registry unreachable, any error entry in the push stream.
    :raises ImageNotFoundError: *image* is not in the local engine.
    """
    import docker.errors

    own = client is None
    client = client or docker_client(environ)
    target = f"{registry}/{repository}"
    try:
        try:
            info = client.api.inspect_image(image)
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(f"image {image} is not in the local engine") from exc
        warning = platform_warning(f"{info.get('Os')}/{info.get('Architecture')}")
        if warning:
            log(warning)
        reference = f"{target}:{tag}"
        existed = reference in (info.get("RepoTags") or ())
        if auth is not None:
            _login(client, auth)
        client.api.tag(image, target, tag)
        try:
            digest = _stream_push(client, target, tag, auth, log, progress)
        finally:
            if not existed:
                _untag(client, reference)
    except docker.errors.APIError as exc:
        raise PushError(f"push of {target}:{tag} failed: {explain(exc)}") from exc
    finally:
        if own:
            client.close()
    return PushResult(registry=registry, repository=repository, tag=tag, digest=digest)


def _login(client: Any, auth: RegistryAuth) -> None:
    import docker.errors

    try:
        client.api.login(auth.username, auth.password, registry=auth.registry, reauth=True)
    except docker.errors.APIError as exc:
        raise PushError(f"login to {auth.registry} as {auth.username} failed:"
                        f" {explain(exc)}") from exc


def _untag(client: Any, reference: str) -> None:
    import docker.errors

    try:
        client.api.remove_image(reference, noprune=True)
    except docker.errors.APIError:
        pass  # best effort: the push result does not depend on it


def _stream_push(client: Any, target: str, tag: str, auth: RegistryAuth | None, log: Say,
                 progress: Progress | None) -> str:
    """Push and follow the stream; :returns: the digest. :raises PushError: on an error entry."""
    states: dict[str, str] = {}
    digest = ""
    stream = client.api.push(target, tag=tag, stream=True, decode=True,
                             auth_config=auth.auth_config() if auth else None)
    for chunk in stream:
        error = stream_error(chunk)
        if error:
            hint = ("; log in with --username and a password (--password-stdin or"
                    f" {REGISTRY_PASSWORD_ENV})") if auth is None and AUTH_ERROR.search(error) else ""
            raise PushError(f"push of {target}:{tag} failed: {error}{hint}")
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            digest = str(aux["Digest"])
        status = str(chunk.get("status") or "")
        layer = chunk.get("id")
        if layer and status:
            event = LayerProgress(layer=str(layer), status=status, bar=str(chunk.get("progress") or ""))
            if progress is not None:
                progress(event)
            elif states.get(event.layer) != status:
                log(f"{event.layer}: {status}")
            states[event.layer] = status
        elif status:
            log(status)
    if not digest:
        raise PushError(f"push of {target}:{tag} ended without a digest from the registry")
    return digest
