"""The image a SageMaker job runs: ``--image`` as given, else the project's, pushed to ECR.

``byoc push`` prints a digest-pinned URI; this module remembers it per local image ID in
``.byoc/sagemaker/pushed.json``. When the project's local image is the one last pushed and ECR
still holds that digest, the URI is used without pushing; otherwise the image is pushed first
(built when missing), with the same progress as ``byoc push``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError
from ..project import Project
from ..say import Say
from ._aws import DIGEST_PLACEHOLDER, Aws

PUSHED = "pushed.json"


def record_path(project: Project) -> Path:
    return project.state_dir / "sagemaker" / PUSHED


def recorded(project: Project) -> dict[str, str]:
    path = record_path(project)
    try:
        data = contract.read_json(path, object)
    except ConfigError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(project: Project, image_id: str, uri: str) -> None:
    path = record_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"image_id": image_id, "uri": uri}, indent=2) + "\n",
                    encoding="utf-8")


def in_ecr(aws: Aws, uri: str) -> bool:
    """Whether ECR holds the digest of ``<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:…``."""
    name, _, digest = uri.partition("@")
    registry, _, repository = name.partition("/")
    if not digest or ".dkr.ecr." not in registry:
        return False
    found = aws.lookup("ecr", "DescribeImages", repositoryName=repository,
                       registryId=registry.split(".", 1)[0], imageIds=[{"imageDigest": digest}],
                       missing=frozenset({"ImageNotFoundException", "RepositoryNotFoundException"}))
    return bool(found and found.get("imageDetails"))


def resolve(aws: Aws, project: Project | None, image: str | None, *, dry_run: bool = False,
            say: Say, push: Callable[..., Any] | None = None, progress: Any = None,
            local_image_id: Callable[[str], str | None] | None = None) -> str:
    """The image URI for a job.

    :param push: ``byoc.push.push`` (a parameter so a test can count calls).
    :raises ConfigError: no ``--image`` and no project. A dry run with nothing pushed yet names
        the image as ``byoc push`` will push it, its digest a placeholder (``aws.placeholders``).
    """
    if image:
        return image
    if project is None:
        raise ConfigError("pass --image URI (an image in ECR), or run inside a byoc project")
    local = f"{project.image}:latest"
    image_id = (local_image_id or _local_image_id)(local)
    known = recorded(project)
    if known.get("uri") and (image_id is None or known.get("image_id") == image_id):
        if dry_run or in_ecr(aws, known["uri"]):
            if image_id is None:
                say(f"note: cannot inspect {local} here (no Docker engine, or no such image);"
                    f" using the image last pushed, {known['uri']}")
            return known["uri"]
    if dry_run:
        # a dry run pushes nothing: the request names the image as `byoc push` will push it
        uri = (f"{aws.account}.dkr.ecr.{aws.region}.amazonaws.com/"
               f"{project.repository or project.image}@{DIGEST_PLACEHOLDER}")
        aws.placeholders.append(f"{DIGEST_PLACEHOLDER} stands for the digest of {local}, which has"
                                " not been pushed to ECR: `byoc push` (or a run without --dry-run)"
                                " pushes it; or pass --image URI")
        return uri
    say(f"pushing {local} to ECR first")
    if push is None:
        from ..push import push as push_image
        push = push_image
    result = push(project, region=aws.region, profile=aws.profile, log=say, progress=progress)
    uri = str(result.uri)
    pushed_id = (local_image_id or _local_image_id)(local)
    if pushed_id:
        remember(project, pushed_id, uri)
    return uri


def local_labels(reference: str) -> dict[str, str] | None:
    """The labels of the image *reference* in the local engine; None without an engine or the
    image (an image only in a registry, which byoc does not pull to look at)."""
    from .._docker import docker_available, docker_client

    if not docker_available():
        return None
    client = docker_client()
    try:
        config = client.api.inspect_image(reference).get("Config") or {}
    except Exception:  # noqa: BLE001 - a missing image or an engine error: just not known
        return None
    finally:
        client.close()
    return {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}


def _local_image_id(reference: str) -> str | None:
    """The ID of *reference* in the local engine; None without an engine or the image."""
    from .._docker import docker_available, docker_client

    if not docker_available():
        return None
    client = docker_client()
    try:
        return str(client.api.inspect_image(reference)["Id"])
    except Exception:  # noqa: BLE001 - a missing image or an engine error: just not known
        return None
    finally:
        client.close()
