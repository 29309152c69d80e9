"""The SageMaker container contract, written and read by byoc.

This module owns every SageMaker fact byoc relies on: the /opt/ml layout, the
environment names, the limits of an endpoint (port, payload size, timeouts,
platform) and the environment of a training job. The local harness writes a
job's tree with it, ``byoc local train`` reports with it, ``byoc validate``
checks against it and the tests assert with it. No other byoc module spells
these values. (The generated container has its own small copy, ``optml.py``,
because it never imports byoc; a test checks that the two agree.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Where SageMaker mounts the tree in the container.
CONTAINER_ROOT = "/opt/ml"
#: Moves the tree elsewhere (the training toolkit's name): the process backend runs with it.
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
#: Set by SageMaker when the container must listen on another port than :data:`PORT`.
BIND_TO_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
#: The port an inference container listens on for /ping and /invocations.
PORT = 8080
#: The image label SageMaker requires of every container of a multi-container model (a pipeline).
BIND_TO_PORT_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
#: The image label SageMaker requires of a multi-model (``Mode=MultiModel``) container.
MULTI_MODEL_LABEL = "com.amazonaws.sagemaker.capabilities.multi-models"
#: The only platform SageMaker runs.
PLATFORM = "linux/amd64"
#: The largest request body an endpoint accepts (6 MiB).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: The serving container's own body limit in MiB (SageMaker sets it for batch transform).
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
#: Seconds an endpoint waits for an answer from /invocations.
INVOCATION_TIMEOUT = 60.0
#: Seconds a /ping health check may take.
PING_TIMEOUT = 2.0
#: Seconds /ping may take to answer 200 after the container starts
#: (ContainerStartupHealthCheckTimeoutInSeconds, at most 3600; byoc waits 4 minutes).
STARTUP_TIMEOUT = 240.0
#: Seconds from SIGTERM to SIGKILL when a training job is stopped.
TRAIN_STOP_GRACE = 120.0
#: Seconds from SIGTERM to SIGKILL when an endpoint's container is stopped.
SERVE_STOP_GRACE = 30.0
#: The account in the ARNs of local jobs (there is no real one).
LOCAL_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
FAILURE_REASON_LIMIT = 1024
#: TrainingInputMode, RecordWrapperType and CompressionType, in the service model's order
#: (the order its enum error lists them in).
INPUT_MODES = ("Pipe", "File", "FastFile")
RECORD_WRAPPERS = ("None", "RecordIO")
COMPRESSIONS = ("None", "Gzip")
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
    def message_file(self) -> Path:
        """A processing job's one-line summary (its ExitMessage)."""
        return self.output_dir / "message"

    @property
    def processing_dir(self) -> Path:
        """Where a processing job's inputs and outputs live by convention."""
        return self.root / "processing"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def make_dirs(self) -> None:
        """Create the directories SageMaker provides before ``train`` starts."""
        for path in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                     self.checkpoints_dir):
            path.mkdir(parents=True, exist_ok=True)


#: The tree as the container sees it (for messages and mount targets: use ``.as_posix()``).
IN_CONTAINER = OptMl(Path(CONTAINER_ROOT))


#: Channel.ChannelName in the service model: ``[A-Za-z0-9\.\-_]+``, at most 64 characters.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")


def check_channel_name(name: str) -> None:
    """Refuse a channel name CreateTrainingJob refuses, and ``.`` and ``..``, which its pattern
    lets through but which name no directory of their own under ``/opt/ml/input/data``.

    :raises ConfigError:
    """
    if not CHANNEL_NAME.fullmatch(name):
        raise ConfigError(f"invalid channel name {name!r}: 1 to 64 letters, digits, '.', '-' and"
                          " '_'")
    if name in (".", ".."):
        raise ConfigError(f"invalid channel name {name!r}: a channel is a directory"
                          f" {CONTAINER_ROOT}/input/data/<name>, and {name!r} is not a name of its own")


def container_channel(name: str) -> str:
    """Where the channel *name* is mounted in the container."""
    return IN_CONTAINER.channel(name).as_posix()


def arn(kind: str, name: str, region: str = DEFAULT_REGION) -> str:
    """The ARN the service gives a local job of *kind* (``training-job``,
    ``hyper-parameter-tuning-job``): the local account, the name in lower case."""
    return f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:{kind}/{name.lower()}"


def job_env(job_name: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """The environment SageMaker gives a training job's containers."""
    return {"TRAINING_JOB_NAME": job_name, "AWS_REGION": region,
            "TRAINING_JOB_ARN": f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:training-job/{job_name}"}


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

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any]) -> Channel:
        """The channel *name* as ``inputdataconfig.json`` describes it (see :meth:`config`)."""
        content_type = entry.get("ContentType")
        return cls(name, content_type=str(content_type) if content_type else None,
                   input_mode=str(entry.get("TrainingInputMode", "File")),
                   distribution=str(entry.get("S3DistributionType", "FullyReplicated")),
                   record_wrapper=str(entry.get("RecordWrapperType", "None")))


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


@dataclass(frozen=True)
class TrainingConfig:
    """One host's config files as :func:`read_training_config` finds them."""

    hyperparameters: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def read_training_config(root: Path) -> TrainingConfig:
    """Read what :func:`write_training_config` writes under *root*; a missing file reads as empty.

    Hyperparameter values are returned as the file holds them (a hand-written
    ``local_test`` file may hold numbers; :func:`stringify_hyperparameters` makes
    them what SageMaker sends).

    :raises ConfigError: for a file that is not a JSON object.
    """
    tree = OptMl(root)
    channels = {name: Channel.from_config(name, entry)
                for name, entry in _read_json(tree.inputdataconfig_json).items()
                if isinstance(entry, Mapping)}
    return TrainingConfig(_read_json(tree.hyperparameters_json), channels,
                          _read_json(tree.resourceconfig_json))


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """A ``hyperparameters.json`` file anywhere: a JSON object (values as the file holds them).

    :raises ConfigError: when it is missing, unreadable or not a JSON object.
    """
    if not path.is_file():
        raise ConfigError(f"cannot read {path}: not a file")
    return _read_json(path)


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


def check_enum(value: str, allowed: Sequence[str], at: str) -> None:
    """The service's own words for a value outside an enum. :raises ConfigError:"""
    if value not in allowed:
        raise ConfigError(f"1 validation error detected: Value '{value}' at '{at}' failed to satisfy"
                          f" constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")


def parse_json(text: str, where: str) -> Any:
    """The JSON value *text* holds; *where* names it in the error (a file, a file and a line).

    :raises ConfigError: for text that is not JSON, or that nests deeper than Python's
        parser can follow (``[`` repeated 100000 times would otherwise end in a RecursionError).
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where} is not JSON byoc can read: it nests arrays or objects too"
                          " deeply") from None
    except ValueError as exc:  # JSONDecodeError, and numbers past int's digit limit
        raise ConfigError(f"{where} is not JSON: {exc}") from exc


def read_json(path: Path, kind: type = dict, what: str = "a JSON object") -> Any:
    """The JSON value in *path*, which must be a *kind* (described as *what*).

    Every JSON file a user hands byoc is read here, so each failure is one line naming the file.

    :raises ConfigError: when the file cannot be read, is not JSON (see :func:`parse_json`) or
        holds something else.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    data = parse_json(text, str(path))
    if not isinstance(data, kind):
        raise ConfigError(f"{path} must hold {what}")
    return data


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}


# ---- processing jobs (CreateProcessingJob) ------------------------------------------------------
#: Where the SDK's script processors and byoc's processing options put inputs and outputs.
PROCESSING_DIR = f"{CONTAINER_ROOT}/processing"
#: ``/opt/ml/output/message``: its first 1 KB (per host, concatenated) becomes ExitMessage.
EXIT_MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class ProcessingTree:
    """The paths of one processing host's /opt/ml tree under *root*: ``config/`` (the job's
    request and the hosts), ``output/message``, and every LocalPath (all under /opt/ml)."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def processing_config_json(self) -> Path:
        return self.config_dir / "processingjobconfig.json"

    @property
    def resourceconfig_json(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def message_file(self) -> Path:
        return self.output_dir / "message"

    def local_path(self, container_path: str) -> Path:
        """Where the container path *container_path* (under /opt/ml) lies in this tree.

        :raises ConfigError: for a path outside /opt/ml.
        """
        relative = under_container_root(container_path)
        if relative is None:
            raise ConfigError(f"{container_path} is not under {CONTAINER_ROOT}")
        return self.root / relative


#: The processing tree as the container sees it (mount targets: ``.as_posix()``).
IN_PROCESSING = ProcessingTree(Path(CONTAINER_ROOT))


def under_container_root(path: str) -> str | None:
    """*path* relative to /opt/ml (``processing/input/x`` for ``/opt/ml/processing/input/x``),
    or None when it is not strictly below /opt/ml or climbs out with ``..``."""
    parts = Path(path).parts
    root = Path(CONTAINER_ROOT).parts
    if len(parts) <= len(root) or parts[:len(root)] != root or ".." in parts:
        return None
    return "/".join(parts[len(root):])


def write_processing_config(tree: ProcessingTree, request: Mapping[str, Any], host: str,
                            hosts: Sequence[str]) -> None:
    """Write ``processingjobconfig.json`` (the job's request) and ``resourceconfig.json``."""
    _write_json(tree.processing_config_json, dict(request))
    _write_json(tree.resourceconfig_json, resource_config(host, hosts))


def read_exit_message(tree: ProcessingTree) -> str | None:
    """The first :data:`EXIT_MESSAGE_LIMIT` bytes of ``output/message`` (UTF-8), if written."""
    try:
        with tree.message_file.open("rb") as handle:
            data = handle.read(EXIT_MESSAGE_LIMIT)
    except OSError:
        return None
    return data.decode("utf-8", errors="ignore") or None


# --- Hosting modes (multi-model, inference pipelines, asynchronous, serverless) ---------------
#: The range ("XXXX-YYYY") a container of a multi-container model may take extra ports from.
SAFE_PORT_RANGE_ENV = "SAGEMAKER_SAFE_PORT_RANGE"
#: Set to ``true`` when the container serves a multi-model endpoint.
MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
#: The model server's own request timeout in seconds (the inference toolkit's name).
MODEL_SERVER_TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
#: Where the platform extracts each model of a multi-model endpoint (``<root>/<name>/model``).
MULTI_MODEL_ROOT = "/opt/ml/models"
#: InvokeEndpoint's TargetModel, TargetContainerHostname and InvokeEndpointAsync's fields.
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
TARGET_CONTAINER_HEADER = "X-Amzn-SageMaker-Target-Container-Hostname"
INPUT_LOCATION_HEADER = "X-Amzn-SageMaker-InputLocation"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
INVOCATION_TIMEOUT_HEADER = "X-Amzn-SageMaker-InvocationTimeoutSeconds"
#: A model holds 2 to 15 containers (CreateModel Containers); ContainerHostname is at most 63 chars.
PIPELINE_CONTAINERS = (2, 15)
CONTAINER_HOSTNAME_MAX = 63


def container_hostnames(images: Sequence[str]) -> list[str]:
    """A ``ContainerHostname`` per image of a multi-container model, as byoc names them locally
    and on SageMaker: the repository's last path part (``preprocess`` for ``.../preprocess:1``),
    made valid, with ``-2``, ``-3``, ... when two would be the same."""
    names: list[str] = []
    for image in images:
        base = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")[:CONTAINER_HOSTNAME_MAX - 4]
        base = base or "container"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}-{count}"
        names.append(name)
    return names
#: ServerlessConfig.MemorySizeInMB: 1024 to 6144 in 1024 MB steps.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
#: A serverless endpoint's largest request body (4 MB) and its startup window (3 minutes).
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
SERVERLESS_STARTUP_TIMEOUT = 180.0
#: InvokeEndpointAsync: the input at InputLocation is at most 1 GB.
ASYNC_MAX_INPUT_BYTES = 1024 * 1024 * 1024
#: InvocationTimeoutSeconds: default 900, at most 3600.
ASYNC_INVOCATION_TIMEOUT = 900
ASYNC_INVOCATION_TIMEOUT_MAX = 3600
#: The only directory a serverless endpoint's container may write.
SERVERLESS_WRITABLE = "/tmp"
