"""What several test modules share besides fixtures: paths, the Docker switch, a build helper."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from byoc import contract, images, job, local
from byoc.inputs.config import InputOptions
from byoc.local import free_port as free_port
from byoc.project import Project

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The base image for test builds: python:3.11-slim-bookworm when it can be had,
#: else the Debian image .ci/run imports (see ENVIRONMENT in the README).
BASE_IMAGE_ENV = "BYOC_TEST_BASE_IMAGE"
REQUIRE_DOCKER_ENV = "BYOC_REQUIRE_DOCKER"
#: The probe project's image in this test session: a name of its own, so that test sessions
#: sharing one engine never remove each other's image.
PROBE_REPOSITORY = f"byoc-test-probe-{uuid.uuid4().hex[:8]}"


def build_project(root: Path, tag: str, base: str) -> str:
    """Build the project at *root* as *tag* on the base image *base*, quietly."""
    return images.build(root, tag=tag, build_args={"BASE_IMAGE": base}, network="host")


@contextmanager
def built_image(docker_client: Any, root: Path, tag: str, base: str) -> Iterator[str]:
    """The project at *root* built as *tag* for as long as the block runs, then removed."""
    build_project(root, tag, base)
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


def copy_probe(dest: Path) -> Path:
    """A private copy of tests/fixtures/probe whose byoc.toml names this session's probe image."""
    root = Path(shutil.copytree(FIXTURES / "probe", dest))
    config = root / "byoc.toml"
    config.write_text(config.read_text().replace('image = "byoc-test-probe"',
                                                 f'image = "{PROBE_REPOSITORY}"'))
    return root


def load_fixture(relative: str) -> ModuleType:
    """A Python file under tests/fixtures, loaded once by path (``fixtures`` is no package)."""
    name = "byoc_test_" + relative.removesuffix(".py").replace("/", "_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / relative)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def train_job(*, backend: Any, project: Project | None = None,
              channels: Mapping[str, Path] | None = None,
              hyperparameters: Mapping[str, Any] | None = None,
              content_types: Mapping[str, str] | None = None,
              distribution: Mapping[str, str] | None = None, instance_count: int = 1,
              env: Mapping[str, str] | None = None, inputs: InputOptions | None = None,
              checkpoint_dir: Path | None = None,
              checkpoint_local_path: str = contract.CHECKPOINT_PATH, spot: bool = False,
              max_runtime: float | None = None, max_wait: float | None = None,
              metrics: Any = None, output_dir: Path | None = None, job_name: str | None = None,
              region: str | None = None, grace_seconds: float = local.TRAIN_GRACE,
              interrupt_after: Sequence[float] = (), incremental_from: Path | None = None,
              image: str | None = None, say: Any = None, log: Any = None,
              stop: Any = None) -> local.TrainResult:
    """A training job built from these settings as ``byoc local train`` builds it
    (:func:`byoc.job.from_project`), run by :func:`byoc.local.train`; its notes begin with what
    the CLI warns of while building it. A spot job without *max_wait* waits as long as it may
    run."""
    given = inputs or InputOptions()
    runtime = job.seconds(max_runtime, "--max-run") if max_runtime is not None \
        else job.DEFAULT_MAX_RUNTIME
    definition, notes = job.from_project(
        project, channels={name: str(path) for name, path in channels.items()}
        if channels is not None else None,
        hyperparameters=hyperparameters, content_types=content_types, distribution=distribution,
        channel_input_modes=given.channel_modes, record_wrappers=given.record_wrappers,
        compression=given.compressions, shuffle_seeds=given.shuffle_seeds,
        attribute_names=given.attribute_names, manifest_roots=given.manifest_roots,
        input_mode=given.input_mode, instance_count=instance_count,
        environment=dict(env or {}), max_runtime=runtime, spot=spot,
        max_wait=job.seconds(max_wait, "--max-wait") if max_wait is not None
        else (runtime if spot else None),
        checkpoint_uri=str(checkpoint_dir) if checkpoint_dir is not None else None,
        checkpoint_local_path=checkpoint_local_path)
    run = local.LocalRun(job_name=job_name, output_dir=output_dir, grace_seconds=grace_seconds,
                         interrupt_after=tuple(interrupt_after), incremental_from=incremental_from,
                         image=image, region=region)
    result = local.train(definition, backend=backend, project=project, run=run,
                         say=say or (lambda message: None), log=log, scanner=metrics, stop=stop)
    # what building the definition noted (hyperparameters that were not strings) is the job's
    return dataclasses.replace(result, notes=[*notes, *result.notes])
