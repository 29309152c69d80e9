"""A failed ``byoc build``: the ``Error:`` line last, the log once, and for a build that could not
reach the network or pull its base image, the options that fix it; and a build byoc makes by
itself (a missing image) with the options of the project's last ``byoc build``.

Real builds on the local engine, on tiny Dockerfiles over the test base image. The offline
failures are real: RUN steps built with ``--network none`` (pip, apt-get), and a FROM image that
is nowhere (this machine cannot reach Docker Hub, and with a network the registry answers that the
repository does not exist: both are pull failures).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import images
from byoc.cli import cli
from byoc.errors import BuildError

pytestmark = pytest.mark.docker

MARKER = "byoc-build-log-marker"


def _project(root: Path, dockerfile: str) -> Path:
    root.mkdir(parents=True)
    (root / "byoc.toml").write_text(f'[project]\nname = "t-cliux-{uuid.uuid4().hex[:8]}"\n')
    (root / "Dockerfile").write_text(dockerfile)
    return root


def _build(root: Path, *options: str) -> Any:
    return CliRunner().invoke(cli, ["build", str(root), "--tag", "t-cliux-never:built", *options])


def _error_last(result: Any) -> str:
    """The Error: line, which must be the last line, and the only one."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.rstrip("\n").splitlines()
    assert lines[-1].startswith("Error: "), result.stderr
    assert sum(line.startswith("Error: ") for line in lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return str(lines[-1])


def test_a_failed_step_ends_with_the_error_line_and_shows_its_log_once(
        tmp_path: Path, base_image: str, docker_client: Any) -> None:
    # an earlier step that got over a network hiccup does not make the failure a network one
    root = _project(tmp_path / "p", f"FROM {base_image}\n"
                                    "RUN echo 'Temporary failure in name resolution, retried: ok'\n"
                                    f"RUN echo {MARKER}-out && false\n")
    result = _build(root)
    error = _error_last(result)
    assert error.startswith("Error: build failed at Step 3/")
    assert error.endswith("returned a non-zero code: 1")  # no network hint for this one
    assert result.stderr.count(f"{MARKER}-out\n") == 1  # shown as it ran, not again after
    # the library, with no log to show it on, keeps the tail for its caller
    with pytest.raises(BuildError) as caught:
        images.build(root, tag="t-cliux-never:built")
    assert f"{MARKER}-out" in caught.value.detail


def test_a_base_image_that_cannot_be_pulled_names_build_arg_base_image(
        tmp_path: Path, docker_client: Any) -> None:
    root = _project(tmp_path / "p", "ARG BASE_IMAGE=t-cliux-no-such-base:never\n"
                                    "FROM ${BASE_IMAGE}\nRUN true\n")
    error = _error_last(_build(root))
    assert "FROM ${BASE_IMAGE}" in error
    assert error.endswith("the base image is not in the local engine and cannot be pulled (no"
                          " network, or no access to its registry): build on an image this engine"
                          " has with `byoc build --build-arg BASE_IMAGE=<a local image>` (`docker"
                          " images` lists them), or restore the network (and `docker login` for a"
                          " private registry)"), error
    root = _project(tmp_path / "q", "FROM t-cliux-no-such-base:never\nRUN true\n")
    error = _error_last(_build(root))
    assert "t-cliux-no-such-base:never is not in the local engine and cannot be pulled" in error


def test_pip_without_a_network_says_how_to_give_it_one(tmp_path: Path, base_image: str,
                                                       docker_client: Any) -> None:
    pip = "RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --timeout 2"
    # one retry: pip says why it retries (the connection), then finds no version
    root = _project(tmp_path / "p", f"FROM {base_image}\n{pip} --retries 1 numpy==1.26.4\n")
    error = _error_last(_build(root, "--network", "none"))
    assert error.endswith("pip could not reach a package index during the build: check this"
                          " machine's network or proxy and try `byoc build --network host`, or"
                          " put the wheels in the project's wheels/ to install them offline"), error
    # no retry: pip says only that it found no version, of none it could list
    root = _project(tmp_path / "q", f"FROM {base_image}\n{pip} --retries 0 numpy==1.26.4\n")
    error = _error_last(_build(root, "--network", "none"))
    assert error.endswith("pip found no version of numpy==1.26.4 at all: the build cannot reach a"
                          " package index (check this machine's network or proxy and try `byoc"
                          " build --network host`, or put the wheels in the project's wheels/ to"
                          " install them offline), or no package has that name"), error


def test_apt_get_without_a_network_says_how_to_give_it_one(tmp_path: Path, base_image: str,
                                                           docker_client: Any) -> None:
    root = _project(tmp_path / "p", f"FROM {base_image}\nRUN apt-get update"
                                    " && apt-get install -y --no-install-recommends nginx\n")
    error = _error_last(_build(root, "--network", "none"))
    assert error.endswith("apt-get could not reach its package mirrors during the build: check"
                          " this machine's network or proxy and try `byoc build --network host`,"
                          " or build on an image that has the packages with `byoc build"
                          " --build-arg BASE_IMAGE=<a local image>` (`docker images` lists"
                          " them)"), error


def test_a_missing_image_is_built_with_the_options_of_the_last_byoc_build(
        tmp_path: Path, base_image: str, docker_client: Any) -> None:
    """What byoc local train|serve|bench and byoc push do when the project's image is missing."""
    root = _project(tmp_path / "p", "ARG BASE_IMAGE=t-cliux-no-such-base:never\n"
                                    "FROM ${BASE_IMAGE}\nRUN echo built\n")
    name = (root / "byoc.toml").read_text().split('"')[1]
    reference = f"{name}:latest"
    built = CliRunner().invoke(cli, ["build", str(root), "--build-arg", f"BASE_IMAGE={base_image}",
                                     "--network", "host"])
    try:
        assert built.exit_code == 0, built.output
        docker_client.images.remove(reference, force=True)
        said: list[str] = []
        images.ensure_current(root, reference, log=said.append)
        assert said[0] == (f"Image {reference} is missing: building it with the options of the"
                           f" project's last build: --build-arg BASE_IMAGE={base_image}"
                           " --network host")
        assert images.provenance(reference).options == {
            "args": {"BASE_IMAGE": base_image}, "network": "host", "platform": None}
    finally:
        docker_client.images.remove(reference, force=True)


def test_a_bare_byoc_build_reuses_the_options_of_the_last_one(
        tmp_path: Path, base_image: str, docker_client: Any) -> None:
    """make validate runs a bare byoc build: it builds as the last byoc build did, and says so."""
    root = tmp_path / "p"
    root.mkdir()
    name = f"t-follow-{uuid.uuid4().hex[:8]}"
    (root / "byoc.toml").write_text(f'[project]\nname = "{name}"\n')
    (root / "Dockerfile").write_text("ARG BASE_IMAGE=t-follow-no-such-base:never\n"
                                     "FROM ${BASE_IMAGE}\nRUN echo built\n")
    try:
        first = CliRunner().invoke(cli, ["build", str(root), "--build-arg",
                                         f"BASE_IMAGE={base_image}", "--network", "host"])
        assert first.exit_code == 0, first.output
        assert "note:" not in first.stderr
        again = CliRunner().invoke(cli, ["build", str(root)])
        assert again.exit_code == 0, again.output
        assert (f"note: building with the options of the project's last build: --build-arg"
                f" BASE_IMAGE={base_image} --network host (--no-recorded-options to build"
                " without them)") in again.stderr.splitlines()
        assert images.provenance(f"{name}:latest").options == {
            "args": {"BASE_IMAGE": base_image}, "network": "host", "platform": None}
        bare = CliRunner().invoke(cli, ["build", str(root), "--no-recorded-options"])
        assert "note:" not in bare.stderr
        assert "BASE_IMAGE" in _error_last(bare)  # the Dockerfile's own default, not pullable
    finally:
        docker_client.images.remove(f"{name}:latest", force=True)
