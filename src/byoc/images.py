"""``byoc build``: build a project's image with a live log, and know what it was built from.

Every image byoc builds carries labels saying what it was built from: :data:`CONTEXT_LABEL`, a
hash of the build context as Docker receives it (``.dockerignore`` honoured, the Dockerfile
included); :data:`SOURCE_LABEL`, the git commit of the project then (``-dirty`` when the tree had
changes); and :data:`OPTIONS_LABEL`, the build arguments, network and platform, so that
:func:`ensure_current` can rebuild a stale image the way it was built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import contract
from ._docker import docker_client, explain, stream_error
from .errors import BuildError, ConfigError
from .say import Say, quiet

TAIL_LINES = 25
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
#: ``sha256:<hex>`` of the build context the image was built from.
CONTEXT_LABEL = "com.byoc.context"
#: ``<git commit>`` or ``<git commit>-dirty`` of the project when the image was built ("" outside git).
SOURCE_LABEL = "com.byoc.source"
#: JSON of the build options (``args``, ``network``, ``platform``) to rebuild it the same way.
OPTIONS_LABEL = "com.byoc.build"
#: byoc's state directory in a project (see :attr:`byoc.project.Project.state_dir`).
STATE_DIR = ".byoc"


def _dockerignore(context: Path) -> list[str]:
    """The patterns of ``.dockerignore``, read as the Docker SDK reads them."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: Path) -> list[str]:
    """The files of the build context Docker receives, relative and sorted; byoc's own state
    (``.byoc/``: local jobs and their artifacts) is left out, so training never makes an image
    stale."""
    from docker.utils.build import exclude_paths

    found = exclude_paths(str(context), _dockerignore(context), dockerfile="Dockerfile")
    return sorted(name for name in found if name.split(os.sep, 1)[0] != STATE_DIR)


def context_hash(context: Path) -> str:
    """``sha256:<hex>`` over the build context: each path, its type and mode, and its content."""
    digest = hashlib.sha256()
    for name in context_files(context):
        path = context / name
        info = path.lstat()
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISLNK(info.st_mode):
            digest.update(b"l" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif stat.S_ISDIR(info.st_mode):
            digest.update(b"d")
        else:
            digest.update(b"x" if info.st_mode & 0o111 else b"f")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def git_source(root: Path) -> str:
    """``<commit>`` (12 digits) of the git tree holding *root*, ``<commit>-dirty`` when anything
    under *root* has changed since, "" outside git."""
    commit = _git(root, "rev-parse", "--short=12", "HEAD")
    if not commit:
        return ""
    return f"{commit}-dirty" if _git(root, "status", "--porcelain", "--", ".") else commit


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def build(context: Path, *, tag: str, build_args: Mapping[str, str] | None = None,
          platform: str | None = None, no_cache: bool = False, network: str | None = None,
          log: Say = quiet, environ: Mapping[str, str] | None = None) -> str:
    """Build the Dockerfile in *context* as *tag*, streaming the log to *log*, with the labels
    that say what it was built from (see the module's docstring).

    A *platform* other than the engine's own is built with ``docker buildx`` (BuildKit) when the
    docker CLI has it, and refused otherwise; the image built is checked to be of *platform*.

    :returns: the image reference (*tag*).
    :raises BuildError: with the failing step and the tail of the log.
    :raises ConfigError: for a bad tag, no Dockerfile, or a platform that cannot be built here.
    :raises DockerUnavailableError: when no engine answers.
    """
    if not TAG_PATTERN.fullmatch(tag):
        raise ConfigError(f"invalid image tag {tag!r}")
    if not (context / "Dockerfile").is_file():
        raise ConfigError(f"no Dockerfile in {context}")
    client = docker_client(environ)
    import docker.errors

    labels = {CONTEXT_LABEL: context_hash(context), SOURCE_LABEL: git_source(context),
              OPTIONS_LABEL: json.dumps({"args": dict(build_args or {}), "network": network,
                                         "platform": platform}, sort_keys=True)}
    native = _engine_platform(client)
    if platform and _normal(platform) != native:
        _buildx(context, tag=tag, build_args=build_args or {}, platform=platform, no_cache=no_cache,
                network=network, labels=labels, native=native, log=log, environ=environ)
        _check_platform(client, tag, platform)
        return tag
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    step = ""
    try:
        stream = client.api.build(path=str(context), tag=tag, buildargs=dict(build_args or {}),
                                  platform=platform, nocache=no_cache, network_mode=network,
                                  labels=labels, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            error = stream_error(chunk)
            if error:
                raise BuildError(f"build failed at {step or 'the first step'}: {error}",
                                 detail="\n".join(tail))
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.splitlines():
                if not line.strip():
                    continue
                if line.startswith("Step "):
                    step = line.strip()
                tail.append(line)
                log(line)
    except docker.errors.APIError as exc:
        raise BuildError(f"build failed: {explain(exc)}", detail="\n".join(tail)) from exc
    return tag


def _normal(platform: str) -> str:
    """``linux/amd64`` for ``linux/amd64``, ``linux/x86_64`` or ``linux/amd64/v1``."""
    parts = platform.lower().split("/")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1]) if len(parts) > 1 else ""
    return f"{parts[0]}/{arch}"


def _engine_platform(client: Any) -> str:
    version = client.version()
    return _normal(f"{version.get('Os', 'linux')}/{version.get('Arch', 'amd64')}")


def _buildx(context: Path, *, tag: str, build_args: Mapping[str, str], platform: str,
            no_cache: bool, network: str | None, labels: Mapping[str, str], native: str, log: Say,
            environ: Mapping[str, str] | None) -> None:
    """``docker buildx build --load`` for another platform. :raises ConfigError: without buildx."""
    env = dict(os.environ if environ is None else environ)
    docker_cli = shutil.which("docker", path=env.get("PATH"))
    probe = subprocess.run([docker_cli, "buildx", "version"], capture_output=True, env=env,
                           check=False) if docker_cli else None
    if probe is None or probe.returncode != 0:
        raise ConfigError(f"--platform {platform} needs docker buildx (BuildKit), which this machine"
                          f" lacks; this engine builds {native} only")
    command = [docker_cli or "docker", "buildx", "build", "--load", "--platform", platform, "--tag",
               tag, "--progress", "plain"]
    command += [f"--build-arg={key}={value}" for key, value in build_args.items()]
    command += [f"--label={key}={value}" for key, value in labels.items()]
    command += ["--no-cache"] if no_cache else []
    command += [f"--network={network}"] if network else []
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen([*command, str(context)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line.rstrip())
            log(line.rstrip())
    if process.returncode != 0:
        raise BuildError(f"docker buildx build --platform {platform} failed"
                         f" (exit {process.returncode})", detail="\n".join(tail))


def _check_platform(client: Any, tag: str, platform: str) -> None:
    info = client.api.inspect_image(tag)
    built = _normal(f"{info.get('Os')}/{info.get('Architecture')}")
    if built != _normal(platform):
        raise BuildError(f"asked for {platform}, but {tag} was built for {built}")


@dataclass(frozen=True)
class Provenance:
    """What a local image says it was built from (its labels), or that it is missing."""

    reference: str
    present: bool
    context: str = ""
    source: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, context_digest: str) -> bool:
        return self.present and self.context == context_digest


def provenance(reference: str, environ: Mapping[str, str] | None = None,
               client: Any = None) -> Provenance:
    """The build labels of the local image *reference*."""
    import docker.errors

    own = client is None
    client = client or docker_client(environ)
    try:
        info = client.api.inspect_image(reference)
    except docker.errors.ImageNotFound:
        return Provenance(reference, present=False)
    finally:
        if own:
            client.close()
    labels = (info.get("Config") or {}).get("Labels") or {}
    try:
        options = contract.parse_json(labels.get(OPTIONS_LABEL) or "{}", f"label {OPTIONS_LABEL}")
    except ConfigError:  # not byoc's label after all
        options = {}
    return Provenance(reference, present=True, context=str(labels.get(CONTEXT_LABEL) or ""),
                      source=str(labels.get(SOURCE_LABEL) or ""),
                      options=options if isinstance(options, dict) else {})


def ensure_current(context: Path, reference: str, *, build_args: Mapping[str, str] | None = None,
                   log: Say = quiet, environ: Mapping[str, str] | None = None) -> str:
    """Make the local image *reference* match the project in *context* as it is now.

    A missing image is built; an image whose :data:`CONTEXT_LABEL` differs from the context now
    is rebuilt, with the build arguments, network and platform it was built with (*build_args*
    added over them), and *log* says why. The build cache keeps a rebuild after a small change
    quick. An image without the label (a plain ``docker build``) is used as it is, with a
    warning: how it was built cannot be repeated.

    :returns: the context's hash if the image now carries it, else "".
    :raises BuildError: when the (re)build fails.
    """
    digest = context_hash(context)
    found = provenance(reference, environ)
    if found.matches(digest):
        return digest
    options = found.options
    recorded = options.get("args")
    recorded = recorded if isinstance(recorded, dict) else {}
    if not found.present:
        log(f"Image {reference} is missing: building it")
    elif not found.context:
        log(f"warning: image {reference} does not say what it was built from (built outside byoc),"
            " so byoc cannot tell whether it matches the project: build it with `byoc build`")
        return ""
    else:
        log(f"The project changed since {reference} was built: rebuilding it (the build cache"
            " keeps this quick)")
    network = options.get("network") if isinstance(options.get("network"), str) else None
    platform = options.get("platform") if isinstance(options.get("platform"), str) else None
    build(context, tag=reference, build_args={**{str(k): str(v) for k, v in recorded.items()},
                                               **(build_args or {})},
          platform=platform, network=network, log=log, environ=environ)
    return digest


def image_exists(reference: str, environ: Mapping[str, str] | None = None) -> bool:
    import docker.errors

    try:
        docker_client(environ).images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True
