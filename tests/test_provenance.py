"""What an image was built from: its labels, stale images rebuilt, tags after the real source."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from byoc import images
from byoc.cli import cli
from byoc.project import Project
from byoc.push import registry
from helpers import FIXTURES, build_project


def _project(root: Path, image: str) -> Project:
    shutil.copytree(FIXTURES / "probe", root)
    config = root / "byoc.toml"
    config.write_text(config.read_text().replace('image = "byoc-test-probe"', f'image = "{image}"'))
    return Project.load(root)


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_context_hash_follows_what_docker_receives(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "byoc-test-unused")
    (project.root / ".dockerignore").write_text("# data stays out\nlocal_test\n")
    first = images.context_hash(project.root)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first)
    assert "local_test" not in " ".join(images.context_files(project.root))
    (project.root / "local_test" / "new.csv").write_text("1\n")
    assert images.context_hash(project.root) == first  # ignored: not in the context
    (project.root / ".byoc" / "jobs").mkdir(parents=True)
    (project.root / ".byoc" / "jobs" / "latest").write_text("job\n")
    assert images.context_hash(project.root) == first  # byoc's own state never counts
    train = project.program_dir / "train"
    train.write_text(train.read_text() + "# changed\n")
    second = images.context_hash(project.root)
    assert second != first
    train.chmod(0o644)
    assert images.context_hash(project.root) not in (first, second)  # the mode counts too
    train.chmod(0o755)
    assert images.context_hash(project.root) == second
    dockerfile = project.root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    assert images.context_hash(project.root) != second


@pytest.fixture
def unique_image(docker_client: Any) -> Iterator[str]:
    """A fresh image name; every image it named during the test is removed afterwards."""
    name = f"byoc-test-stale-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def remember() -> None:
        import docker.errors

        for reference in (f"{name}:latest", f"{name}-plain:latest"):
            try:
                made.append(docker_client.images.get(reference).id)
            except docker.errors.ImageNotFound:
                pass

    yield name
    remember()
    for image_id in made:
        try:
            docker_client.images.remove(image_id, force=True)
        except Exception:
            pass


@pytest.mark.docker
def test_local_train_rebuilds_an_image_the_project_changed_since(
        tmp_path: Path, unique_image: str, base_image: str, docker_client: Any) -> None:
    project = _project(tmp_path / "p", unique_image)
    reference = f"{unique_image}:latest"
    build_project(project.root, reference, base_image)
    labels = docker_client.images.get(reference).labels
    assert labels[images.CONTEXT_LABEL] == images.context_hash(project.root)
    assert json.loads(labels[images.OPTIONS_LABEL]) == {
        "args": {"BASE_IMAGE": base_image}, "network": "host", "platform": None}
    first_id = docker_client.images.get(reference).id

    same = CliRunner().invoke(cli, ["local", "train", str(project.root), "--backend", "docker"])
    assert same.exit_code == 0, same.output
    assert "rebuilding" not in same.stderr

    train = project.program_dir / "train"
    train.write_text(train.read_text() + "# changed after the build\n")
    changed = CliRunner().invoke(cli, ["local", "train", str(project.root), "--backend", "docker"])
    assert changed.exit_code == 0, changed.output
    assert (f"The project changed since {reference} was built: rebuilding it (the build cache keeps"
            " this quick)") in changed.stderr
    rebuilt = docker_client.images.get(reference)
    assert rebuilt.id != first_id
    assert rebuilt.labels[images.CONTEXT_LABEL] == images.context_hash(project.root)
    docker_client.images.remove(first_id, force=True)


@pytest.mark.docker
def test_push_tags_name_what_the_image_was_built_from(
        tmp_path: Path, unique_image: str, base_image: str, docker_client: Any) -> None:
    project = _project(tmp_path / "p", unique_image)
    _git(project.root, "init", "-q")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-qm", "first")
    commit = _git(project.root, "rev-parse", "--short=12", "HEAD")
    reference = f"{unique_image}:latest"
    build_project(project.root, reference, base_image)
    built_clean = docker_client.images.get(reference).id
    assert docker_client.images.get(reference).labels[images.SOURCE_LABEL] == commit

    train = project.program_dir / "train"
    train.write_text(train.read_text() + "# uncommitted\n")
    said: list[str] = []
    env = dict(__import__("os").environ)
    # an --image is pushed as it is, and named after the clean commit it was built from
    kept = registry._prepare_image(project, reference, explicit=True, build_args=None,
                                   log=said.append, environ=env)
    assert registry.source_tag(kept, log=said.append) == commit
    assert said[-1] == (f"Image {reference} is not the project as it is now: tagging it {commit},"
                        " after what it was built from")
    # the project's own image is rebuilt first, and then the dirty tree is what it is
    said.clear()
    current = registry._prepare_image(project, reference, explicit=False, build_args=None,
                                      log=said.append, environ=env)
    assert any(line.startswith("The project changed since") for line in said)
    assert re.fullmatch(rf"{commit}-dirty-\d{{8}}T\d{{6}}Z", registry.source_tag(current))
    assert docker_client.images.get(reference).id != built_clean
    docker_client.images.remove(built_clean, force=True)

    # an image built without byoc says nothing of its source: the time only, and a warning
    plain = f"{unique_image}-plain:latest"
    docker_client.images.build(path=str(project.root), tag=plain, network_mode="host",
                               buildargs={"BASE_IMAGE": base_image}, rm=True)
    said.clear()
    tag = registry.source_tag(registry._prepare_image(None, plain, explicit=True, build_args=None,
                                                      log=said.append, environ=env),
                              log=said.append)
    assert re.fullmatch(r"\d{8}T\d{6}Z", tag)
    assert said[-1].startswith(f"warning: image {plain} does not say what it was built from")


@pytest.mark.docker
def test_build_for_another_platform_is_honoured_or_refused(tmp_path: Path, unique_image: str,
                                                          base_image: str, docker_client: Any
                                                          ) -> None:
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0:
        pytest.skip("docker buildx is installed: the platform is built, not refused")
    project = _project(tmp_path / "p", unique_image)
    result = CliRunner().invoke(cli, ["build", str(project.root), "--platform", "linux/arm64",
                                      "--build-arg", f"BASE_IMAGE={base_image}", "--network", "host"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: --platform linux/arm64 needs docker buildx (BuildKit), which"
                             " this machine lacks; this engine builds linux/amd64 only\n")
    assert not any(image.tags for image in docker_client.images.list(name=unique_image))
