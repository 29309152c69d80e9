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
#: In :data:`STATE_DIR`: the options (``args``, ``network``, ``platform``) of the project's last
#: ``byoc build`` or automatic build, which an automatic build of a missing image reuses.
BUILD_RECORD = "build.json"

#: A base image the engine could not pull (the error of a FROM step).
_PULL_FAILED = re.compile(
    r"pull access denied|manifest for \S+ not found|manifest unknown|not found: manifest|"
    r"failed to resolve reference|repository does not exist|registry-1\.docker\.io|"
    r"toomanyrequests|error pulling image|TLS handshake timeout|"
    r"Get \S*https://[^\s\"]+/v2/", re.IGNORECASE)
#: pip, or apt, or anything else in a RUN step, that could not reach the network.
_NETWORK_FAILED = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"Failed to establish a new connection|NewConnectionError|ConnectTimeoutError|"
    r"ReadTimeoutError|ProxyError|Connection refused|Could not resolve host|"
    r"Temporary failure resolving|Could not resolve '|Could not connect to|"
    r"Failed to fetch https?://|Unable to fetch some archives|Retrying \(Retry\(total=")
_PIP_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+)|"
                             r"No matching distribution found for (\S+)")
_APT = re.compile(r"\bapt(-get)?\b|Temporary failure resolving|Unable to locate package|"
                  r"Unable to fetch some archives")
_FROM = re.compile(r"Step \d+/\d+ : FROM\s+(\S+)", re.IGNORECASE)
#: BuildKit's (buildx's) words for fetching the base image.
_PULL_SOURCE = re.compile(r"failed to resolve source metadata|load metadata for")


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
    step_log: deque[str] = deque(maxlen=TAIL_LINES)  # the output of the step running
    try:
        stream = client.api.build(path=str(context), tag=tag, buildargs=dict(build_args or {}),
                                  platform=platform, nocache=no_cache, network_mode=network,
                                  labels=labels, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            error = stream_error(chunk)
            if error:
                raise _failed(f"build failed at {step or 'the first step'}: {error}", step, error,
                              step_log, tail, log)
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.splitlines():
                if not line.strip():
                    continue
                if line.startswith("Step "):
                    step = line.strip()
                    step_log.clear()
                step_log.append(line)
                tail.append(line)
                log(line)
    except docker.errors.APIError as exc:
        raise _failed(f"build failed: {explain(exc)}", step, explain(exc), step_log, tail,
                      log) from exc
    return tag


def failure_hint(step: str, error: str, log: str) -> str:
    """How to fix a build that failed for want of a network or of a base image, said as the
    ``byoc build`` options that fix it (a build byoc makes by itself reuses them, see
    :func:`ensure_current`); ``""`` when the step, its error and the log show neither.

    A FROM step whose image cannot be pulled calls for a base image the engine has; pip or
    apt-get that could not reach the network, for the network (``--network host`` when this
    machine has one), the project's ``wheels/`` or a base image that has the packages.
    """
    base = "`byoc build --build-arg BASE_IMAGE=<a local image>` (`docker images` lists them)"
    network_fix = "check this machine's network or proxy and try `byoc build --network host`"
    text = "\n".join((step, error, log))
    network = _NETWORK_FAILED.search(text)
    pulled = _FROM.search(step)
    if pulled or (not step and _PULL_SOURCE.search(text)):
        if not (_PULL_FAILED.search(text) or network):
            return ""
        image = pulled.group(1) if pulled and "$" not in pulled.group(1) else "the base image"
        return (f"{image} is not in the local engine and cannot be pulled (no network, or no"
                f" access to its registry): build on an image this engine has with {base}, or"
                " restore the network (and `docker login` for a private registry)")
    wanted = _PIP_NO_VERSION.search(text)
    if wanted and not network:
        name = wanted.group(1) or wanted.group(2)
        if "(from versions: none)" in text:  # an index that answered would list some
            return (f"pip found no version of {name} at all: the build cannot reach a package"
                    f" index ({network_fix}, or put the wheels in the project's wheels/ to install"
                    " them offline), or no package has that name")
        return f"pip found no version of {name}: check its pin in the requirements"
    if wanted:
        return (f"pip could not reach a package index during the build: {network_fix}, or put"
                " the wheels in the project's wheels/ to install them offline")
    if network and _APT.search(text):
        return (f"apt-get could not reach its package mirrors during the build: {network_fix},"
                f" or build on an image that has the packages with {base}")
    if network:
        return (f"the build could not reach the network: {network_fix}, or build on an image"
                f" that has what the step fetches with {base}")
    return ""


def _failed(message: str, step: str, error: str, step_log: deque[str], tail: deque[str],
            log: Say) -> BuildError:
    """The :class:`BuildError` of a failed build: the message with :func:`failure_hint`'s fix
    (from the failed step's own output, *step_log*, not the steps before); the log's tail as its
    detail only when *log* did not show the log already."""
    hint = failure_hint(step, error, "\n".join(step_log))
    return BuildError(message + (f". {hint}" if hint else ""),
                      detail="" if log is not quiet else "\n".join(tail))


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
        raise _failed(f"docker buildx build --platform {platform} failed"
                      f" (exit {process.returncode})", "", "", tail, tail, log)


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


def record_options(context: Path, *, build_args: Mapping[str, str] | None = None,
                   network: str | None = None, platform: str | None = None) -> None:
    """Remember, in the project's :data:`BUILD_RECORD`, how its image was last built, for
    :func:`ensure_current` to build a missing image the same way. Best effort: a project that
    cannot be written to just has no record."""
    record = context / STATE_DIR / BUILD_RECORD
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"args": dict(build_args or {}), "network": network,
                                      "platform": platform}, indent=2, sort_keys=True) + "\n",
                          encoding="utf-8")
    except OSError:
        pass


def recorded_options(context: Path) -> dict[str, Any]:
    """The options :func:`record_options` wrote for *context* ({} when there are none)."""
    try:
        found = json.loads((context / STATE_DIR / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def describe_options(options: Mapping[str, Any]) -> str:
    """``--build-arg K=V --network host``: build options as ``byoc build``'s options."""
    args = options.get("args")
    pairs = sorted(args.items()) if isinstance(args, dict) else []
    words = [f"--build-arg {key}={value}" for key, value in pairs]
    words += [f"--{key} {options[key]}" for key in ("network", "platform")
              if isinstance(options.get(key), str)]
    return " ".join(words)


def ensure_current(context: Path, reference: str, *, build_args: Mapping[str, str] | None = None,
                   log: Say = quiet, environ: Mapping[str, str] | None = None) -> str:
    """Make the local image *reference* match the project in *context* as it is now.

    A missing image is built with the options of the project's last build (``byoc build``'s
    build arguments, network and platform, see :func:`record_options`); an image whose
    :data:`CONTEXT_LABEL` differs from the context now is rebuilt with the options it was built
    with. *build_args* go over either, and *log* says why and how it builds. The build cache
    keeps a rebuild after a small change quick. An image without the label (a plain ``docker
    build``) is used as it is, with a warning: how it was built cannot be repeated.

    :returns: the context's hash if the image now carries it, else "".
    :raises BuildError: when the (re)build fails.
    """
    digest = context_hash(context)
    found = provenance(reference, environ)
    if found.matches(digest):
        return digest
    options = found.options if found.present else recorded_options(context)
    recorded = options.get("args")
    recorded = recorded if isinstance(recorded, dict) else {}
    if not found.present:
        how = describe_options(options)
        log(f"Image {reference} is missing: building it" + (
            f" with the options of the project's last build: {how}" if how else ""))
    elif not found.context:
        log(f"warning: image {reference} does not say what it was built from (built outside byoc),"
            " so byoc cannot tell whether it matches the project: build it with `byoc build`")
        return ""
    else:
        log(f"The project changed since {reference} was built: rebuilding it (the build cache"
            " keeps this quick)")
    network = options.get("network") if isinstance(options.get("network"), str) else None
    platform = options.get("platform") if isinstance(options.get("platform"), str) else None
    arguments = {**{str(k): str(v) for k, v in recorded.items()}, **(build_args or {})}
    build(context, tag=reference, build_args=arguments, platform=platform, network=network,
          log=log, environ=environ)
    record_options(context, build_args=arguments, network=network, platform=platform)
    return digest


def image_exists(reference: str, environ: Mapping[str, str] | None = None) -> bool:
    import docker.errors

    try:
        docker_client(environ).images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True
