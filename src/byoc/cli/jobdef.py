"""The training job options, shared by every command that runs a training job.

``@job_options`` adds them to a click command; :func:`definition_from_options` turns the values
into a :class:`~byoc.jobdef.JobDefinition`. Local and SageMaker runs take the same options, so a
job rehearsed locally runs on SageMaker with the same command line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import jobdef
from ..errors import ConfigError
from .options import pairs

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword arguments ``@job_options`` adds, in the order they are declared.
OPTION_NAMES = ("channel", "content_types", "hyperparameter", "hyperparameters_file", "input_mode",
                "channel_input_mode", "distribution", "record_wrapper", "compression",
                "shuffle_seed", "attribute_names", "metric_definition", "metric_definitions_file",
                "instance_count", "env", "max_run", "spot", "max_wait", "checkpoint_s3",
                "checkpoint_local_path", "volume_size", "job_name")


def job_options(command: F) -> F:
    """Add the training job options to *command*."""
    options = [
        click.option("--channel", multiple=True, metavar="NAME=PATH|s3://URI",
                     help="Input channel: a directory, a file or an s3:// URI (default: the"
                          " directories of local_test/test_dir/input/data)."),
        click.option("--content-type", "content_types", multiple=True, metavar="NAME=TYPE",
                     help="ContentType of a channel."),
        click.option("--hyperparameter", multiple=True, metavar="KEY=VALUE",
                     help="A hyperparameter, sent as the string given. Repeatable."),
        click.option("--hyperparameters", "hyperparameters_file",
                     type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="JSON file of hyperparameters (default: local_test's)."),
        click.option("--input-mode", type=click.Choice(jobdef.INPUT_MODES), default="File",
                     show_default=True, help="TrainingInputMode of the job."),
        click.option("--channel-input-mode", multiple=True, metavar="NAME=MODE",
                     help="InputMode of one channel (File, FastFile, Pipe)."),
        click.option("--distribution", multiple=True, metavar="NAME=KIND",
                     help="S3DataDistributionType of a channel: FullyReplicated or ShardedByS3Key."),
        click.option("--record-wrapper", multiple=True, metavar="NAME=RecordIO",
                     help="RecordWrapperType of a channel (None or RecordIO)."),
        click.option("--compression", multiple=True, metavar="NAME=Gzip",
                     help="CompressionType of a channel (None or Gzip; Gzip needs Pipe mode)."),
        click.option("--shuffle-seed", multiple=True, metavar="NAME=SEED",
                     help="ShuffleConfig of a channel: shuffle its objects with this seed."),
        click.option("--attribute-names", multiple=True, metavar="NAME=A,B",
                     help="Make a channel an AugmentedManifestFile (one JSON Lines file) streaming"
                          " these attributes in order (Pipe mode)."),
        click.option("--metric-definition", multiple=True, metavar="NAME=REGEX",
                     help="A metric SageMaker reads from the logs: group 1 of REGEX. Repeatable."),
        click.option("--metric-definitions", "metric_definitions_file",
                     type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help='JSON file: [{"Name": ..., "Regex": ...}, ...].'),
        click.option("--instance-count", default=1, show_default=True, type=int,
                     help="Hosts algo-1..algo-N."),
        click.option("--env", multiple=True, metavar="KEY=VALUE",
                     help="Environment variable of the training container. Repeatable."),
        click.option("--max-run", type=int, default=jobdef.DEFAULT_MAX_RUNTIME, show_default=True,
                     help="MaxRuntimeInSeconds: the job is stopped after this long."),
        click.option("--spot", is_flag=True, help="Managed spot training (needs --max-wait)."),
        click.option("--max-wait", type=int,
                     help="MaxWaitTimeInSeconds: spot capacity wait plus run (longer than --max-run)."),
        click.option("--checkpoint-s3", metavar="URI",
                     help="CheckpointConfig.S3Uri (default with --spot on SageMaker: under the"
                          " project's S3 prefix)."),
        click.option("--checkpoint-local-path", default=jobdef.DEFAULT_CHECKPOINT_PATH,
                     show_default=True, help="CheckpointConfig.LocalPath in the container."),
        click.option("--volume-size", type=int, default=jobdef.DEFAULT_VOLUME_GB, show_default=True,
                     help="VolumeSizeInGB of each instance."),
        click.option("--job-name", help="Training job name (default: <project>-<timestamp>)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def definition_from_options(project: Any | None, values: dict[str, Any]
                            ) -> tuple[jobdef.JobDefinition, list[str]]:
    """Pop the ``@job_options`` values out of *values* and build the definition.

    :returns: the definition and warnings to show. The job name stays in *values*.
    """
    taken = {name: values.pop(name) for name in OPTION_NAMES if name != "job_name"}
    hyperparameters = _hyperparameters(project, taken["hyperparameters_file"],
                                       taken["hyperparameter"])
    metrics = [jobdef.MetricDefinition(name, regex)
               for name, regex in pairs(taken["metric_definition"], "--metric-definition").items()]
    if taken["metric_definitions_file"] is not None:
        metrics = _metrics_file(taken["metric_definitions_file"]) + metrics
    seeds: dict[str, int] = {}
    for name, seed in pairs(taken["shuffle_seed"], "--shuffle-seed").items():
        try:
            seeds[name] = int(seed)
        except ValueError:
            raise ConfigError(f"--shuffle-seed {name}={seed}: the seed is an integer") from None
    channels = pairs(taken["channel"], "--channel") or None
    return jobdef.from_project(
        project, channels=channels, hyperparameters=hyperparameters,
        content_types=pairs(taken["content_types"], "--content-type"),
        distribution=pairs(taken["distribution"], "--distribution"),
        channel_input_modes=pairs(taken["channel_input_mode"], "--channel-input-mode"),
        record_wrappers=pairs(taken["record_wrapper"], "--record-wrapper"),
        compression=pairs(taken["compression"], "--compression"),
        shuffle_seeds=seeds,
        attribute_names={name: [a for a in text.split(",") if a] for name, text in
                         pairs(taken["attribute_names"], "--attribute-names").items()},
        input_mode=taken["input_mode"], metric_definitions=tuple(metrics),
        instance_count=taken["instance_count"], environment=pairs(taken["env"], "--env"),
        max_runtime=taken["max_run"], spot=taken["spot"], max_wait=taken["max_wait"],
        checkpoint_s3=taken["checkpoint_s3"], checkpoint_local_path=taken["checkpoint_local_path"],
        volume_size=taken["volume_size"])


def _hyperparameters(project: Any | None, path: Path | None, items: tuple[str, ...]
                     ) -> dict[str, object] | None:
    values: dict[str, object] | None = None
    if path is not None:
        values = _json_file(path, dict, "a JSON object")
    if items:
        if values is None:
            values = dict(project.local_inputs().hyperparameters) if project is not None else {}
        values = {**values, **pairs(items, "--hyperparameter")}
    return values


def _metrics_file(path: Path) -> list[jobdef.MetricDefinition]:
    data = _json_file(path, list, 'a JSON list of {"Name": ..., "Regex": ...}')
    found = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str) \
                or not isinstance(item.get("Regex"), str):
            raise ConfigError(f'{path}: each metric definition is {{"Name": ..., "Regex": ...}}')
        found.append(jobdef.MetricDefinition(item["Name"], item["Regex"]))
    return found


def _json_file(path: Path, kind: type, what: str) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, kind):
        raise ConfigError(f"{path} must hold {what}")
    return data
