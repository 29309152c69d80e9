"""One training job definition, run locally or on SageMaker.

A :class:`JobDefinition` holds everything a training job is, apart from where it runs: the
hyperparameters, the channels (with their input modes, record wrapping, shuffling, compression and
augmented-manifest attributes), the metric definitions, checkpoints, managed spot, time limits,
instance count and environment. :meth:`JobDefinition.training_request` turns it into the
``CreateTrainingJob`` request, given only what must differ between runs: the image, the role, the
instance type, the output path and the S3 URIs of local channels and checkpoints.
:meth:`JobDefinition.local_request` is the same request for a local run (``file://`` URIs,
instance type ``local``), so the two can be compared field by field; :func:`byoc.local.train`
runs it on this machine. :meth:`JobDefinition.validate` is the one check of CreateTrainingJob's
rules, against the one table of limits (:mod:`byoc.job.limits`).

A channel's source and the checkpoint URI are each a local path or an ``s3://`` URI: a SageMaker
run uploads a local one first, a local run refuses an ``s3://`` one.

Nothing here talks to AWS or Docker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError, JobFieldError
from . import metrics
from .limits import (
    COMPRESSIONS,
    DEFAULT_MAX_RUNTIME,
    DEFAULT_VOLUME_GB,
    DISTRIBUTIONS,
    ENV_NAME,
    INPUT_MODES,
    JOB_NAME,
    MAX_ATTRIBUTE_NAME,
    MAX_ATTRIBUTES,
    MAX_CHANNELS,
    MAX_ENV_TEXT,
    MAX_ENVIRONMENT,
    MAX_HYPERPARAMETER_KEY,
    MAX_HYPERPARAMETER_VALUE,
    MAX_HYPERPARAMETERS,
    MAX_RUNTIME_LIMIT,
    MAX_TAGS,
    MAX_VOLUME_GB,
    MIN_INSTANCE_COUNT,
    RECORD_WRAPPERS,
    S3_DATA_TYPES,
    SEED_RANGE,
)
from .metrics import MetricDefinition

DEFAULT_CHECKPOINT_PATH = contract.CHECKPOINT_PATH
#: The role a local run names in its request: no IAM role is involved.
LOCAL_ROLE = f"arn:aws:iam::{contract.LOCAL_ACCOUNT}:role/byoc-local"
LOCAL_INSTANCE_TYPE = contract.DEFAULT_INSTANCE_TYPE


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


@dataclass(frozen=True)
class ChannelDefinition:
    """One input channel: where its data is and how SageMaker delivers it.

    :attr:`source` is a local file or directory (uploaded before a SageMaker run) or an ``s3://``
    URI (used as given). :attr:`input_mode` None means the job's ``TrainingInputMode``.
    """

    name: str
    source: str
    content_type: str | None = None
    input_mode: str | None = None
    distribution: str = "FullyReplicated"
    record_wrapper: str | None = None
    compression: str | None = None
    shuffle_seed: int | None = None
    #: AugmentedManifestFile: the attributes streamed per line, in order (Pipe mode only).
    attribute_names: tuple[str, ...] | None = None
    s3_data_type: str = "S3Prefix"
    #: A local run: the folder an augmented manifest's ``-ref`` files must lie under (None: the
    #: manifest's own). Not part of the request: on SageMaker the references are S3 URIs.
    manifest_root: Path | None = None

    @property
    def remote(self) -> bool:
        return is_s3(self.source)

    @property
    def data_type(self) -> str:
        return "AugmentedManifestFile" if self.attribute_names is not None else self.s3_data_type

    def effective_input_mode(self, job_mode: str) -> str:
        return self.input_mode or job_mode

    def contract_channel(self, job_mode: str) -> contract.Channel:
        """The channel's ``inputdataconfig.json`` entry, as the container sees it."""
        return contract.Channel(self.name, content_type=self.content_type,
                                input_mode=self.effective_input_mode(job_mode),
                                distribution=self.distribution,
                                record_wrapper=self.record_wrapper or "None")

    def request(self, uri: str) -> dict[str, Any]:
        """The ``InputDataConfig`` entry with *uri* as ``S3Uri``."""
        source: dict[str, Any] = {"S3DataType": self.data_type, "S3Uri": uri,
                                  "S3DataDistributionType": self.distribution}
        if self.attribute_names is not None:
            source["AttributeNames"] = list(self.attribute_names)
        entry: dict[str, Any] = {"ChannelName": self.name, "DataSource": {"S3DataSource": source}}
        if self.content_type:
            entry["ContentType"] = self.content_type
        if self.compression:
            entry["CompressionType"] = self.compression
        if self.record_wrapper:
            entry["RecordWrapperType"] = self.record_wrapper
        if self.input_mode:
            entry["InputMode"] = self.input_mode
        if self.shuffle_seed is not None:
            entry["ShuffleConfig"] = {"Seed": self.shuffle_seed}
        return entry

    def local_uri(self) -> str:
        """``file://`` URI of a local source; an ``s3://`` source as given."""
        if self.remote:
            return self.source
        path = Path(self.source).resolve()
        return path.as_uri() + ("/" if path.is_dir() else "")


@dataclass(frozen=True)
class JobDefinition:
    """A training job apart from where it runs (see the module docstring)."""

    base_name: str
    channels: tuple[ChannelDefinition, ...]
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    input_mode: str = "File"
    metric_definitions: tuple[MetricDefinition, ...] = ()
    instance_count: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    max_runtime: int = DEFAULT_MAX_RUNTIME
    spot: bool = False
    max_wait: int | None = None
    #: CheckpointConfig.S3Uri: an ``s3://`` URI, or a local directory (a local run's stand-in for
    #: S3, uploaded under the project's S3 prefix before a SageMaker run).
    checkpoint_uri: str | None = None
    checkpoint_local_path: str = DEFAULT_CHECKPOINT_PATH
    volume_size: int = DEFAULT_VOLUME_GB
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def channel(self, name: str) -> ChannelDefinition:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    @property
    def local_channels(self) -> tuple[ChannelDefinition, ...]:
        return tuple(channel for channel in self.channels if not channel.remote)

    @property
    def local_checkpoint(self) -> Path | None:
        """The checkpoint directory when :attr:`checkpoint_uri` is a local path."""
        if self.checkpoint_uri is None or is_s3(self.checkpoint_uri):
            return None
        return Path(self.checkpoint_uri)

    def contract_channels(self) -> list[contract.Channel]:
        return [channel.contract_channel(self.input_mode) for channel in self.channels]

    def validate(self) -> None:
        """Refuse what CreateTrainingJob would refuse. :raises ConfigError:"""
        check_channels(self.channels, self.input_mode)
        if self.instance_count < MIN_INSTANCE_COUNT:
            raise _refused(f"{{InstanceCount}} must be at least {MIN_INSTANCE_COUNT}, got"
                           f" {self.instance_count}")
        if len(self.hyperparameters) > MAX_HYPERPARAMETERS:
            raise ConfigError(f"{len(self.hyperparameters)} hyperparameters; SageMaker allows at"
                              f" most {MAX_HYPERPARAMETERS}")
        for key, value in self.hyperparameters.items():
            if not isinstance(value, str):
                raise ConfigError(f"hyperparameter {key!r} must be a string (CreateTrainingJob"
                                  " sends strings only)")
            if not 1 <= len(key) <= MAX_HYPERPARAMETER_KEY or len(value) > MAX_HYPERPARAMETER_VALUE:
                raise ConfigError(f"hyperparameter {key[:40]!r}: keys take 1-{MAX_HYPERPARAMETER_KEY}"
                                  f" characters and values at most {MAX_HYPERPARAMETER_VALUE}")
        if len(self.environment) > MAX_ENVIRONMENT:
            raise ConfigError(f"{len(self.environment)} environment variables; SageMaker allows at"
                              f" most {MAX_ENVIRONMENT}")
        for key, value in self.environment.items():
            if not ENV_NAME.fullmatch(key) or len(key) > MAX_ENV_TEXT or len(value) > MAX_ENV_TEXT:
                raise ConfigError(f"environment variable {key!r}: names are [a-zA-Z_][a-zA-Z0-9_]*"
                                  f" and values at most {MAX_ENV_TEXT} characters")
        metrics.checked(self.metric_definitions)
        if not 1 <= self.max_runtime <= MAX_RUNTIME_LIMIT:
            raise _refused(f"{{MaxRuntimeInSeconds}} {self.max_runtime}: MaxRuntimeInSeconds takes"
                           f" 1 to {MAX_RUNTIME_LIMIT} (28 days)")
        if self.spot:
            if self.max_wait is None:
                raise _refused("{EnableManagedSpotTraining} needs {MaxWaitTimeInSeconds}"
                               " (MaxWaitTimeInSeconds, at least {MaxRuntimeInSeconds}: it covers"
                               " waiting for capacity plus training)")
            if self.max_wait < self.max_runtime:
                raise _refused(f"{{MaxWaitTimeInSeconds}} {self.max_wait} must be at least"
                               f" {{MaxRuntimeInSeconds}} {self.max_runtime}: MaxWaitTimeInSeconds"
                               " covers waiting for spot capacity plus the run")
        elif self.max_wait is not None:
            raise _refused("{MaxWaitTimeInSeconds} applies to managed spot training only: add"
                           " {EnableManagedSpotTraining}")
        if self.checkpoint_uri is not None:
            if not self.checkpoint_uri.strip():
                raise ConfigError("--checkpoint-uri is empty: give a directory or an s3:// URI")
            if self.checkpoint_uri.startswith(("s3:", "file:")) and not is_s3(self.checkpoint_uri):
                raise ConfigError(f"--checkpoint-uri {self.checkpoint_uri}: use an s3:// URI or a"
                                  " local directory")
            local = self.local_checkpoint
            if local is not None and local.exists() and not local.is_dir():
                raise ConfigError(f"--checkpoint-uri {local} is a file, not a directory")
        if not self.checkpoint_local_path.startswith("/"):
            raise ConfigError(f"the checkpoint local path must be absolute ({contract.CHECKPOINT_PATH})")
        if not 1 <= self.volume_size <= MAX_VOLUME_GB:
            raise _refused(f"{{VolumeSizeInGB}} {self.volume_size}: VolumeSizeInGB takes 1 to"
                           f" {MAX_VOLUME_GB}")
        if len(self.tags) > MAX_TAGS:
            raise ConfigError(f"SageMaker takes at most {MAX_TAGS} tags")

    def training_request(self, *, job_name: str, image: str, role_arn: str, instance_type: str,
                         channel_uris: Mapping[str, str], output_path: str,
                         checkpoint_uri: str | None = None) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request.

        :param channel_uris: the ``S3Uri`` of each local channel (an ``s3://`` source needs none).
        :param checkpoint_uri: the ``S3Uri`` of checkpoints when :attr:`checkpoint_uri` is a local
            directory (where it was uploaded), or when it is unset (a default for spot jobs);
            ignored when :attr:`checkpoint_uri` is an ``s3://`` URI.
        :raises ConfigError: for an invalid job name, or a local checkpoint directory without
            *checkpoint_uri*.
        """
        check_job_name(job_name)
        algorithm: dict[str, Any] = {"TrainingImage": image, "TrainingInputMode": self.input_mode}
        if self.metric_definitions:
            algorithm["MetricDefinitions"] = [m.request() for m in self.metric_definitions]
            algorithm["EnableSageMakerMetricsTimeSeries"] = True
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": self.max_runtime}
        if self.spot and self.max_wait is not None:
            stopping["MaxWaitTimeInSeconds"] = self.max_wait
        request: dict[str, Any] = {
            "TrainingJobName": job_name,
            "RoleArn": role_arn,
            "AlgorithmSpecification": algorithm,
            "HyperParameters": dict(self.hyperparameters),
            # InputDataConfig is optional: a job may read no channel at all
            **({"InputDataConfig": [
                channel.request(channel.source if channel.remote else channel_uris[channel.name])
                for channel in self.channels]} if self.channels else {}),
            "OutputDataConfig": {"S3OutputPath": output_path},
            "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": self.instance_count,
                               "VolumeSizeInGB": self.volume_size},
            "StoppingCondition": stopping,
        }
        if self.spot:
            request["EnableManagedSpotTraining"] = True
        if self.checkpoint_uri is not None and is_s3(self.checkpoint_uri):
            checkpoint: str | None = self.checkpoint_uri
        elif self.checkpoint_uri is not None and checkpoint_uri is None:
            raise ConfigError(f"checkpoint directory {self.checkpoint_uri} has no S3 URI yet")
        else:
            checkpoint = checkpoint_uri
        if checkpoint:
            request["CheckpointConfig"] = {"S3Uri": with_slash(checkpoint),
                                           "LocalPath": self.checkpoint_local_path}
        if self.environment:
            request["Environment"] = dict(self.environment)
        if self.tags:
            request["Tags"] = [{"Key": key, "Value": value} for key, value in self.tags.items()]
        return request

    def local_request(self, *, job_name: str, image: str, output_dir: Path) -> dict[str, Any]:
        """The same request for a local run: ``file://`` channels, checkpoints and output, instance
        type ``local``, no role (:data:`LOCAL_ROLE`)."""
        local = self.local_checkpoint
        return self.training_request(
            job_name=job_name, image=image, role_arn=LOCAL_ROLE, instance_type=LOCAL_INSTANCE_TYPE,
            channel_uris={c.name: c.local_uri() for c in self.local_channels},
            output_path=output_dir.resolve().as_uri() + "/",
            checkpoint_uri=local.resolve().as_uri() + "/" if local is not None else None)

    def with_hyperparameters(self, hyperparameters: Mapping[str, str]) -> JobDefinition:
        """This job with *hyperparameters* laid over its own (a tuning trial's values)."""
        return replace(self, hyperparameters={**self.hyperparameters, **hyperparameters})

    def local_gaps(self) -> list[str]:
        """The settings of this definition a local run cannot honour (it runs without them)."""
        return [f"S3DataType {c.s3_data_type} (channel {c.name!r})" for c in self.channels
                if c.s3_data_type == "ManifestFile"]


#: How the command line names the fields a :class:`JobFieldError` of the validator names; a
#: source that read them elsewhere words the error again (:meth:`JobFieldError.worded`).
OPTION_NAMES: Mapping[str, str] = {
    "InstanceCount": "--instance-count", "VolumeSizeInGB": "--volume-size",
    "MaxRuntimeInSeconds": "--max-run", "MaxWaitTimeInSeconds": "--max-wait",
    "EnableManagedSpotTraining": "--spot"}


def _refused(template: str) -> JobFieldError:
    return JobFieldError(template, OPTION_NAMES)


def default_job_name(base: str, now: datetime | None = None) -> str:
    """``<base>-YYYY-MM-DD-HH-MM-SS-mmm``, as the SageMaker SDK names jobs."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d-%H-%M-%S-") + f"{now.microsecond // 1000:03d}"
    return f"{base[: 63 - len(stamp) - 1].rstrip('-')}-{stamp}"


def channel_files(source: Path) -> list[Path]:
    """The files of a channel, sorted by key; a file channel is that one file."""
    if source.is_file():
        return [source]
    return sorted(p for p in source.rglob("*") if p.is_file())


def check_job_name(name: str) -> None:
    """:raises ConfigError: for a name CreateTrainingJob refuses."""
    if not JOB_NAME.fullmatch(name):
        raise ConfigError(f"invalid job name {name!r}: 1-63 letters, digits and hyphens,"
                          " starting and ending with a letter or digit")


def with_slash(uri: str) -> str:
    """A checkpoint S3Uri is a raw key prefix: without the slash, ``ckpt/a`` restores ``ckpt/ab``."""
    return uri if uri.endswith("/") else uri + "/"


def check_channels(channels: Sequence[ChannelDefinition], job_mode: str) -> None:
    """The one check of a job's input settings: its ``TrainingInputMode`` and every channel's
    settings, as CreateTrainingJob checks them (entries named ``inputDataConfig.N.member`` as the
    service names them). :raises ConfigError:"""
    contract.check_enum(job_mode, INPUT_MODES, "algorithmSpecification.trainingInputMode")
    if len(channels) > MAX_CHANNELS:
        raise ConfigError(f"{len(channels)} channels; SageMaker allows at most {MAX_CHANNELS}")
    names = [channel.name for channel in channels]
    if len(set(names)) != len(names):
        raise ConfigError("a channel is named twice")
    for index, channel in enumerate(channels, start=1):
        _check_channel(channel, job_mode, f"inputDataConfig.{index}.member")
    _check_fifo_names(channels, job_mode)


def check_attribute_names(channel: str, names: Sequence[str]) -> None:
    """AugmentedManifestFile ``AttributeNames``. :raises ConfigError: for a list CreateTrainingJob
    refuses."""
    if not 1 <= len(names) <= MAX_ATTRIBUTES:
        raise ConfigError(f"channel {channel!r}: AttributeNames takes 1 to {MAX_ATTRIBUTES} names,"
                          f" got {len(names)}")
    for name in names:
        if not name or len(name) > MAX_ATTRIBUTE_NAME:
            raise ConfigError(f"channel {channel!r}: an attribute name takes 1 to"
                              f" {MAX_ATTRIBUTE_NAME} characters")


def _check_fifo_names(channels: Sequence[ChannelDefinition], job_mode: str) -> None:
    """Refuse a channel directory that has the name of another channel's Pipe FIFO
    (``<channel>_<epoch>``): both would be the same path under ``/opt/ml/input/data``."""
    for channel in channels:
        if channel.effective_input_mode(job_mode) != "Pipe":
            continue
        for other in channels:
            epoch = other.name[len(channel.name) + 1:] if other.name.startswith(channel.name + "_") else ""
            if (other.effective_input_mode(job_mode) != "Pipe" and epoch.isdigit()
                    and epoch.isascii()):
                raise ConfigError(f"channel {other.name!r} is a directory with the name of Pipe"
                                  f" channel {channel.name!r}'s FIFO for epoch {int(epoch)}; rename"
                                  " one of them")


def _check_channel(channel: ChannelDefinition, job_mode: str, member: str) -> None:
    name = channel.name
    contract.check_channel_name(name)
    if channel.input_mode is not None:
        contract.check_enum(channel.input_mode, INPUT_MODES, f"{member}.inputMode")
    if channel.record_wrapper is not None:
        contract.check_enum(channel.record_wrapper, RECORD_WRAPPERS, f"{member}.recordWrapperType")
    if channel.compression is not None:
        contract.check_enum(channel.compression, COMPRESSIONS, f"{member}.compressionType")
    if not channel.remote and not Path(channel.source).exists():
        raise ConfigError(f"channel {name!r}: {channel.source} does not exist")
    mode = channel.effective_input_mode(job_mode)
    if channel.distribution not in DISTRIBUTIONS:
        raise ConfigError(f"channel {name!r}: distribution {channel.distribution!r}; use"
                          " FullyReplicated or ShardedByS3Key")
    where = f"channel {name!r} ({mode} mode)"
    if channel.record_wrapper not in (None, "None") and mode != "Pipe":
        raise ConfigError(f"{where}: RecordWrapperType RecordIO is used only in Pipe input"
                          f" mode. In {mode} mode, leave this field unset or set it to None.")
    if channel.compression not in (None, "None") and mode != "Pipe":
        raise ConfigError(f"{where}: CompressionType is used only in Pipe input mode. In"
                          f" {mode} mode, leave this field unset or set it to None.")
    if channel.shuffle_seed is not None and not SEED_RANGE[0] <= channel.shuffle_seed <= SEED_RANGE[1]:
        raise ConfigError(f"channel {name!r}: ShuffleConfig.Seed must fit in 64 bits")
    if channel.s3_data_type not in S3_DATA_TYPES:
        raise ConfigError(f"channel {name!r}: S3DataType {channel.s3_data_type!r}; use"
                          f" {', '.join(S3_DATA_TYPES)}")
    if channel.attribute_names is not None:
        check_attribute_names(name, channel.attribute_names)
        if mode != "Pipe":
            raise ConfigError(f"{where}: AugmentedManifestFile can only be used if the Channel's"
                              f" input mode is Pipe; add --channel-input-mode {name}=Pipe")
        if not channel.remote and not Path(channel.source).is_file():
            raise ConfigError(f"{where}: an AugmentedManifestFile channel is one JSON-lines"
                              f" manifest file, and {channel.source} is not a file")
        if channel.manifest_root is not None and not channel.manifest_root.is_dir():
            raise ConfigError(f"channel {name!r}: manifest root (manifest_root)"
                              f" {channel.manifest_root} is not a directory")
    elif channel.manifest_root is not None:
        raise ConfigError(f"channel {name!r}: a manifest root applies to an augmented manifest"
                          " channel only (with --attribute-names)")
