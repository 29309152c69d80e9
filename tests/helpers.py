"""What several test modules share besides fixtures: paths, the Docker switch, a build helper."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
import tarfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from byoc import contract, images, job, local
from byoc.job import InputOptions
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


#: What every evaluation.json holds at its top level: one of SageMaker's model quality kinds.
EVALUATION_KINDS = ("multiclass_classification_metrics", "binary_classification_metrics",
                    "regression_metrics")


def evaluate_in_image(docker_client: Any, image: str, project: Path, root: Path) -> dict[str, Any]:
    """Train in *image* on *project*'s local_test (``docker run IMAGE train``), then run its
    ``evaluate`` as a model evaluation processing job does: ContainerEntrypoint ``["evaluate"]``,
    the model archive and the project's test set mounted read-only at their LocalPaths under
    /opt/ml/processing. Checks the plots and the message; returns evaluation.json.
    """
    opt_ml = root / "opt_ml"
    shutil.copytree(project / "local_test" / "test_dir", opt_ml)
    (opt_ml / "model").mkdir()
    (opt_ml / "output" / "data").mkdir(parents=True)
    name = f"t-evl-{uuid.uuid4().hex[:8]}"
    docker_client.containers.run(image, ["train"], name=f"{name}-train", network_mode="none",
                                 volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}}, remove=True)
    model, evaluation, output = root / "model", root / "evaluation", root / "output"
    for folder in (model, evaluation, output):
        folder.mkdir()
    with tarfile.open(model / "model.tar.gz", "w:gz") as tar:
        for path in sorted((opt_ml / "model").iterdir()):
            tar.add(path, arcname=path.name)
    docker_client.containers.run(
        image, entrypoint=["evaluate"], name=f"{name}-evaluate", network_mode="none", remove=True,
        volumes={str(model): {"bind": "/opt/ml/processing/model", "mode": "ro"},
                 str(project / "local_test" / "test"): {"bind": "/opt/ml/processing/test", "mode": "ro"},
                 str(evaluation): {"bind": "/opt/ml/processing/evaluation", "mode": "rw"},
                 str(output): {"bind": "/opt/ml/output", "mode": "rw"}})
    report: dict[str, Any] = json.loads((evaluation / "evaluation.json").read_text())
    assert list(report) in ([kind] for kind in EVALUATION_KINDS), report
    for plot in ("confusion_matrix.png", "roc_curve.png"):
        assert (evaluation / plot).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), plot
    assert (output / "message").read_text().startswith("Evaluated 30 rows (")
    assert not (output / "failure").exists()
    return report


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
