"""Where a :class:`~byoc.job.JobDefinition` comes from: the one place its defaults are laid.

:func:`from_project` builds it from a project's ``local_test/test_dir`` and ``byoc.toml``
(``[train]``, ``[[metric_definitions]]``) with the job options on top; durations are read by
:func:`parse_duration`. :func:`from_tuning_request` builds it from a tuning request file's
``TrainingJobDefinition``, and :func:`lay_options_over` lays command-line options over that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import contract
from ..errors import ConfigError, JobFieldError
from ..project import CONFIG_FILE, Project
from . import metrics as metric_files
from .definition import DEFAULT_CHECKPOINT_PATH, OPTION_NAMES, ChannelDefinition, JobDefinition
from .limits import DEFAULT_MAX_RUNTIME, DEFAULT_VOLUME_GB
from .metrics import MetricDefinition
from .settings import InputOptions

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str, option: str) -> float:
    """``90``, ``90s``, ``1m30s``, ``2h`` -> seconds. :raises ConfigError:"""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ConfigError(f"{option}: {text!r} is not a duration (e.g. 90, 90s, 5m, 1h30m)")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    value = hours * 3600 + minutes * 60 + seconds
    if value <= 0:
        raise ConfigError(f"{option}: {text!r} must be more than 0 seconds")
    return value


def seconds(value: float | int | str, option: str) -> int:
    """A duration (``3600``, ``90s``, ``5m``, ``1h30m``) in whole seconds, rounded up, as
    ``StoppingCondition`` takes it. :raises ConfigError:"""
    return math.ceil(parse_duration(value, option) if isinstance(value, str) else value)



def hyperparameters(project: Project | None, file: Path | None = None,
                    overrides: Mapping[str, str] | None = None) -> dict[str, object] | None:
    """The hyperparameters a job gets: *file*'s, else the project's ``local_test`` ones, with
    *overrides* on top; None (the project's, as :func:`from_project` takes them) when neither is
    given.

    :raises ConfigError: when *file* is unreadable or not a JSON object.
    """
    base: dict[str, object] | None = contract.read_json(file) if file is not None else None
    if overrides:
        if base is None:
            base = dict(project.local_inputs().hyperparameters) if project is not None else {}
        return {**base, **overrides}
    return base


def from_project(project: Project | None, *, channels: Mapping[str, str] | None = None,
                 hyperparameters: Mapping[str, object] | None = None,
                 content_types: Mapping[str, str] | None = None,
                 distribution: Mapping[str, str] | None = None,
                 channel_input_modes: Mapping[str, str] | None = None,
                 record_wrappers: Mapping[str, str] | None = None,
                 compression: Mapping[str, str] | None = None,
                 shuffle_seeds: Mapping[str, int] | None = None,
                 attribute_names: Mapping[str, Sequence[str]] | None = None,
                 s3_data_types: Mapping[str, str] | None = None,
                 manifest_roots: Mapping[str, Path] | None = None,
                 input_mode: str | None = None,
                 metric_definitions: Sequence[MetricDefinition] = (),
                 base_name: str | None = None, instance_count: int = 1,
                 environment: Mapping[str, str] | None = None,
                 max_runtime: int = DEFAULT_MAX_RUNTIME, spot: bool = False,
                 max_wait: int | None = None, checkpoint_uri: str | None = None,
                 checkpoint_local_path: str = DEFAULT_CHECKPOINT_PATH,
                 volume_size: int = DEFAULT_VOLUME_GB) -> tuple[JobDefinition, list[str]]:
    """A definition from a project, overridden by the job options (``byoc local train`` and
    ``byoc sagemaker train`` take the same); the last keywords are :class:`JobDefinition`'s fields.

    The project gives, under the options: the channels, hyperparameters and content types of
    ``local_test/test_dir``; the input settings of ``byoc.toml``'s ``[train]`` table (an unset
    *input_mode* is its ``input_mode``, else File); and its ``[[metric_definitions]]``, which
    *metric_definitions* of the same name replace and the others follow.

    :returns: it and the warnings to show (hyperparameters that were not strings).
    :raises ConfigError: for a per-channel option naming no channel, an unreadable ``byoc.toml``,
        or anything :meth:`JobDefinition.validate` refuses.
    """
    found = project.local_inputs() if project is not None else None
    default_channels = found.channels if found else {}
    default_hps = found.hyperparameters if found else {}
    default_types = found.content_types if found else {}
    toml = InputOptions.from_config(project.config) if project is not None else InputOptions()
    sources = ({name: str(path) for name, path in default_channels.items()} if channels is None
               else dict(channels))
    hps, notes = contract.stringify_hyperparameters(
        default_hps if hyperparameters is None else hyperparameters)
    types = {**default_types, **(content_types or {})}
    per_channel: dict[str, Mapping[str, Any]] = {
        "--distribution": distribution or {}, "--channel-input-mode": channel_input_modes or {},
        "--record-wrapper": record_wrappers or {}, "--compression": compression or {},
        "--shuffle-seed": shuffle_seeds or {}, "--attribute-names": attribute_names or {},
        "--s3-data-type": s3_data_types or {}, "--manifest-root": manifest_roots or {}}
    for option, values in per_channel.items():
        for name in values:
            if name not in sources:
                raise ConfigError(f"{option} names channel {name!r}, which is not a channel")
    for values in (toml.channel_modes, toml.record_wrappers, toml.compressions,
                   toml.shuffle_seeds, toml.attribute_names, toml.manifest_roots):
        for name in values:
            if name not in sources:
                raise ConfigError(f"{CONFIG_FILE} [train.channels.{name}] names channel {name!r},"
                                  " which is not a channel of this job")
    modes = {**toml.channel_modes, **(channel_input_modes or {})}
    wrappers = {**toml.record_wrappers, **(record_wrappers or {})}
    compressions = {**toml.compressions, **(compression or {})}
    seeds = {**toml.shuffle_seeds, **(shuffle_seeds or {})}
    attributes: dict[str, Sequence[str]] = {**toml.attribute_names, **(attribute_names or {})}
    roots = {**toml.manifest_roots, **(manifest_roots or {})}
    built = tuple(ChannelDefinition(
        name, sources[name], content_type=types.get(name), input_mode=modes.get(name),
        distribution=(distribution or {}).get(name, "FullyReplicated"),
        record_wrapper=wrappers.get(name), compression=compressions.get(name),
        shuffle_seed=seeds.get(name),
        attribute_names=tuple(attributes[name]) if name in attributes else None,
        s3_data_type=(s3_data_types or {}).get(name, "S3Prefix"),
        manifest_root=roots.get(name)) for name in sorted(sources))
    metrics = list(metric_definitions)
    if project is not None:
        names = {metric.name for metric in metrics}
        metrics = [item for item in metric_files.from_config(project.config)
                   if item.name not in names] + metrics
    base = base_name or (project.name if project is not None else "byoc-job")
    return JobDefinition(base_name=base, channels=built, hyperparameters=hps,
                         input_mode=input_mode or toml.input_mode or "File",
                         metric_definitions=tuple(metrics), instance_count=instance_count,
                         environment=dict(environment or {}), max_runtime=max_runtime, spot=spot,
                         max_wait=max_wait, checkpoint_uri=checkpoint_uri,
                         checkpoint_local_path=checkpoint_local_path,
                         volume_size=volume_size), notes


#: TrainingJobDefinition fields a run on this machine has no meaning for: kept in the request,
#: named once in a note.
NOT_LOCAL = ("VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
             "RetryStrategy", "HyperParameterTuningResourceConfig")


def request_channels(training: Mapping[str, Any], overrides: Mapping[str, str]
                     ) -> tuple[ChannelDefinition, ...]:
    """The channels of a request's ``InputDataConfig``, every setting as given; *overrides*
    (``--channel NAME=PATH``) replace a channel's ``S3Uri`` by name.

    :raises ConfigError: for an override that names no channel of the request.
    """
    entries = list(training.get("InputDataConfig") or [])
    names = [str(entry.get("ChannelName")) for entry in entries]
    for name in overrides:
        if name not in names:
            raise ConfigError(f"--channel {name}: the request has no channel {name!r} (its"
                              f" InputDataConfig has {', '.join(names) or 'none'})")
    built = []
    for entry in entries:
        name = str(entry["ChannelName"])
        source = (entry.get("DataSource") or {}).get("S3DataSource") or {}
        attributes = source.get("AttributeNames")
        built.append(ChannelDefinition(
            name, overrides.get(name, str(source.get("S3Uri", ""))),
            content_type=entry.get("ContentType"), input_mode=entry.get("InputMode"),
            distribution=source.get("S3DataDistributionType", "FullyReplicated"),
            record_wrapper=entry.get("RecordWrapperType"),
            compression=entry.get("CompressionType"),
            shuffle_seed=(entry.get("ShuffleConfig") or {}).get("Seed"),
            attribute_names=tuple(attributes) if attributes is not None else None,
            s3_data_type=source.get("S3DataType", "S3Prefix")))
    return tuple(built)


def from_tuning_request(training: Mapping[str, Any], *, project: Project | None = None,
                        channels: Mapping[str, str] | None = None,
                        base_name: str | None = None) -> tuple[JobDefinition, list[str]]:
    """The training job a tuning request's ``TrainingJobDefinition`` is, whole: input mode, every
    channel with its settings, checkpoints, spot and its wait, the stopping condition, resources
    and environment; each trial is it with the trial's hyperparameters
    (:meth:`JobDefinition.with_hyperparameters`).

    *channels* (``--channel NAME=PATH``) replace a channel's ``S3Uri`` by name. A request without
    ``InputDataConfig`` takes *channels*, else the project's ``local_test`` channels, as
    :func:`from_project` does.

    :returns: it and notes (fields a local run keeps but does not apply).
    :raises ConfigError: for what CreateTrainingJob would refuse.
    """
    overrides = dict(channels or {})
    if training.get("InputDataConfig"):
        built = request_channels(training, overrides)
    else:
        built = from_project(project, channels=overrides or None)[0].channels
    hps, notes = contract.stringify_hyperparameters(training.get("StaticHyperParameters") or {})
    kept = [name for name in NOT_LOCAL if training.get(name) not in (None, False)]
    if kept:
        notes.append(f"{', '.join(kept)}: kept in the request, not applied by a local run")
    try:
        definition = _request_definition(training, project, built, base_name, hps)
    except JobFieldError as exc:  # worded as the file the user wrote, not as options
        raise exc.worded(REQUEST_NAMES) from None
    return definition, notes


#: How a tuning request file names the fields a :class:`JobFieldError` names.
REQUEST_NAMES: Mapping[str, str] = {
    "InstanceCount": "TrainingJobDefinition.ResourceConfig.InstanceCount",
    "VolumeSizeInGB": "TrainingJobDefinition.ResourceConfig.VolumeSizeInGB",
    "MaxRuntimeInSeconds": "TrainingJobDefinition.StoppingCondition.MaxRuntimeInSeconds",
    "MaxWaitTimeInSeconds": "TrainingJobDefinition.StoppingCondition.MaxWaitTimeInSeconds",
    "EnableManagedSpotTraining": "TrainingJobDefinition.EnableManagedSpotTraining"}


def _request_definition(training: Mapping[str, Any], project: Project | None,
                        built: Sequence[ChannelDefinition], base_name: str | None,
                        hps: Mapping[str, str]) -> JobDefinition:
    algorithm = training.get("AlgorithmSpecification") or {}
    stopping = training.get("StoppingCondition") or {}
    checkpoint = training.get("CheckpointConfig") or {}
    resources = training.get("ResourceConfig") or {}
    return JobDefinition(
        base_name=base_name or (project.name if project is not None else "byoc-job"),
        channels=tuple(built), hyperparameters=hps,
        input_mode=algorithm.get("TrainingInputMode") or "File",
        metric_definitions=tuple(metric_files.definitions(
            algorithm.get("MetricDefinitions") or [], "TrainingJobDefinition.AlgorithmSpecification")),
        instance_count=int(resources.get("InstanceCount", 1)),
        environment=dict(training.get("Environment") or {}),
        max_runtime=int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)),
        spot=bool(training.get("EnableManagedSpotTraining")),
        max_wait=stopping.get("MaxWaitTimeInSeconds"),
        checkpoint_uri=checkpoint.get("S3Uri"),
        checkpoint_local_path=checkpoint.get("LocalPath") or DEFAULT_CHECKPOINT_PATH,
        volume_size=int(resources.get("VolumeSizeInGB", DEFAULT_VOLUME_GB)))


#: Each job option of ``byoc sagemaker tune`` (by its parameter name): the JobDefinition fields
#: it sets, and the TrainingJobDefinition field that sets them in a request file.
TUNE_JOB_OPTIONS: Mapping[str, tuple[tuple[str, ...], str]] = {
    "input_mode": (("input_mode",), "AlgorithmSpecification.TrainingInputMode"),
    "hyperparameter": (("hyperparameters",), "StaticHyperParameters"),
    "hyperparameters_file": (("hyperparameters",), "StaticHyperParameters"),
    "metric_definition": (("metric_definitions",), "AlgorithmSpecification.MetricDefinitions"),
    "metric_definitions_file": (("metric_definitions",),
                                "AlgorithmSpecification.MetricDefinitions"),
    "instance_count": (("instance_count",), "ResourceConfig"),
    "volume_size": (("volume_size",), "ResourceConfig"),
    "env": (("environment",), "Environment"),
    "env_file": (("environment",), "Environment"),
    "max_run": (("max_runtime",), "StoppingCondition"),
    "max_wait": (("max_wait",), "StoppingCondition"),
    "spot": (("spot",), "EnableManagedSpotTraining"),
    "checkpoint_uri": (("checkpoint_uri",), "CheckpointConfig"),
    "checkpoint_local_path": (("checkpoint_local_path",), "CheckpointConfig"),
}
#: The options that shape channels: with the file's InputDataConfig, set them there.
CHANNEL_OPTIONS = ("content_types", "channel_input_mode", "distribution", "record_wrapper",
                   "compression", "shuffle_seed", "attribute_names", "manifest_root")


def lay_options_over(from_file: JobDefinition, from_options: JobDefinition,
                     training: Mapping[str, Any], given: Collection[str]) -> JobDefinition:
    """The training job of a request file (*from_file*, read from its ``TrainingJobDefinition``
    *training*), with the job options *given* on the command line (by parameter name, their
    values in *from_options*) for the fields the file leaves out: one request file is one job,
    locally and on SageMaker. An option for a field the file sets is refused, not silently
    dropped or silently winning; without the file's ``InputDataConfig`` the channels are the
    options'. An error of the whole names each field as the user gave it: the option, or the
    file's field.

    :raises ConfigError:
    """
    def in_file(path: str) -> bool:
        value: Any = training
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value not in (None, {}, [])

    conflicts = [f"--{name.replace('_', '-')} (the file's {field})"
                 for name, (_, field) in TUNE_JOB_OPTIONS.items()
                 if name in given and in_file(field)]
    conflicts += [f"--{name.replace('_', '-')} (the file's InputDataConfig)"
                  for name in CHANNEL_OPTIONS if name in given and in_file("InputDataConfig")]
    if conflicts:
        raise ConfigError(f"{', '.join(conflicts)}: the request file sets that; change it there"
                          " (byoc local tune reads the same file)")
    changes: dict[str, Any] = {attribute: getattr(from_options, attribute)
                               for name, (attributes, _) in TUNE_JOB_OPTIONS.items() if name in given
                               for attribute in attributes}
    if not in_file("InputDataConfig"):
        changes["channels"] = from_options.channels
    names = {field: option if option[2:].replace("-", "_") in given else REQUEST_NAMES[field]
             for field, option in OPTION_NAMES.items()}
    try:
        return replace(from_file, **changes)
    except JobFieldError as exc:
        raise exc.worded(names) from None
