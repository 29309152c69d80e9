"""The SageMaker container contract, written and read by byoc.

One module owns the /opt/ml layout: the local harness writes a job's tree
with it, ``byoc local train`` reports with it and the tests assert with it.
(The generated container has its own small copy, ``optml.py``, because it
never imports byoc; a test checks that the two agree.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
CONTAINER_ROOT = "/opt/ml"
FAILURE_REASON_LIMIT = 1024
INPUT_MODES = ("File", "FastFile", "Pipe")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
DEFAULT_INSTANCE_TYPE = "local"
DEFAULT_GROUP = "homogeneousCluster"
NETWORK_INTERFACE = "eth0"
#: CheckpointConfig.LocalPath's default.
CHECKPOINT_PATH = "/opt/ml/checkpoints"
#: The ContentType the SDK gives the ``model`` channel of incremental training.
MODEL_CHANNEL_CONTENT_TYPE = "application/x-sagemaker-model"


@dataclass(frozen=True)
class OptMl:
    """The paths of one host's /opt/ml tree under *root*."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_json(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_json(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_json(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def checkpointconfig_json(self) -> Path:
        return self.config_dir / "checkpointconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def make_dirs(self) -> None:
        """Create the directories SageMaker provides before ``train`` starts."""
        for path in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                     self.checkpoints_dir):
            path.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Channel:
    """One input channel as CreateTrainingJob describes it."""

    name: str
    content_type: str | None = None
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"

    def config(self) -> dict[str, str]:
        entry = {"TrainingInputMode": self.input_mode, "S3DistributionType": self.distribution,
                 "RecordWrapperType": self.record_wrapper}
        if self.content_type:
            entry = {"ContentType": self.content_type, **entry}
        return entry


def host_names(count: int) -> list[str]:
    """``algo-1`` .. ``algo-N``, sorted as SageMaker sorts them."""
    return sorted(f"algo-{i}" for i in range(1, count + 1))


def stringify_hyperparameters(values: Mapping[str, object]) -> tuple[dict[str, str], list[str]]:
    """The map CreateTrainingJob sends, every value a string, and a warning per value changed.

    A value that is not a string is JSON-encoded (numbers and booleans as
    JSON text), because SageMaker itself only accepts strings.
    """
    result: dict[str, str] = {}
    notes: list[str] = []
    for key, value in values.items():
        if isinstance(value, str):
            result[str(key)] = value
        else:
            text = json.dumps(value)
            notes.append(f"hyperparameter {key!r} is not a string; sending {text!r} as SageMaker would")
            result[str(key)] = text
    return result, notes


def resource_config(host: str, hosts: Sequence[str], instance_type: str = DEFAULT_INSTANCE_TYPE
                    ) -> dict[str, object]:
    hosts = sorted(hosts)
    return {
        "current_host": host,
        "hosts": hosts,
        "network_interface_name": NETWORK_INTERFACE,
        "current_group_name": DEFAULT_GROUP,
        "current_instance_type": instance_type,
        "instance_groups": [{"instance_group_name": DEFAULT_GROUP, "instance_type": instance_type,
                             "hosts": hosts}],
    }


def write_training_config(root: Path, hyperparameters: Mapping[str, str],
                          channels: Sequence[Channel], host: str = "algo-1",
                          hosts: Sequence[str] = ("algo-1",),
                          instance_type: str = DEFAULT_INSTANCE_TYPE) -> OptMl:
    """Write the three config files of one host's tree and create its dirs."""
    tree = OptMl(root)
    tree.make_dirs()
    _write_json(tree.hyperparameters_json, dict(hyperparameters))
    _write_json(tree.inputdataconfig_json, {c.name: c.config() for c in channels})
    _write_json(tree.resourceconfig_json, resource_config(host, hosts, instance_type))
    return tree


def write_checkpoint_config(root: Path, local_path: str = CHECKPOINT_PATH) -> None:
    """``checkpointconfig.json``, as the service writes it when CheckpointConfig is set.

    It holds ``LocalPath``; whether the service also writes ``S3Uri`` is not
    documented, so byoc leaves it out rather than give a program a key it
    would not find on SageMaker.
    """
    _write_json(OptMl(root).checkpointconfig_json, {"LocalPath": local_path})


def read_failure(root: Path) -> str | None:
    """The FailureReason SageMaker would show: the first 1024 characters of ``output/failure``."""
    path = OptMl(root).failure_file
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")[:FAILURE_REASON_LIMIT]


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
