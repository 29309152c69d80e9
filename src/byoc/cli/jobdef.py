"""The training job options, shared by every command that runs a training job.

``@job_options`` adds them to a click command (``byoc local train``, ``byoc sagemaker train`` and
``byoc sagemaker tune``); ``@sagemaker_job_options`` adds the few only SageMaker has;
:func:`definition_from_options` turns the values into a :class:`~byoc.job.JobDefinition`.
Local and SageMaker runs take the same options, so a job rehearsed locally runs on SageMaker with
the same command line. Options are spelled as SageMaker names the setting; ``--shuffle``,
``--metric``, ``--checkpoint-dir`` and ``--checkpoint-s3`` remain as hidden older spellings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import contract
from .. import job as jobdef
from ..errors import ConfigError
from ..job.metrics import definition as metric_check
from ..project import Project
from .options import ENV_FILE_HELP, pairs, read_env_file

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword arguments ``@job_options`` adds, in the order they are declared.
OPTION_NAMES = ("channel", "content_types", "hyperparameter", "hyperparameters_file", "input_mode",
                "channel_input_mode", "distribution", "record_wrapper", "compression",
                "shuffle_seed", "shuffle_alias", "attribute_names", "manifest_root",
                "metric_definition", "metric_alias", "metric_definitions_file", "instance_count",
                "env", "env_file", "max_run",
                "spot", "max_wait", "checkpoint_uri", "checkpoint_dir_alias",
                "checkpoint_s3_alias", "checkpoint_local_path", "job_name")
#: What ``@sagemaker_job_options`` adds on top.
SAGEMAKER_OPTION_NAMES = ("volume_size",)


def job_options(command: F) -> F:
    """Add the training job options to *command*: the same for a local and a SageMaker run."""
    options = [
        click.option("--channel", multiple=True, metavar="NAME=PATH|s3://URI",
                     help="Input channel: a directory or a file (uploaded for a SageMaker run), or"
                          " an s3:// URI (SageMaker only). Default: the directories of"
                          " local_test/test_dir/input/data."),
        click.option("--content-type", "content_types", multiple=True, metavar="NAME=TYPE",
                     help="ContentType of a channel."),
        click.option("--hyperparameter", multiple=True, metavar="KEY=VALUE",
                     help="A hyperparameter, sent as the string given. Repeatable."),
        click.option("--hyperparameters", "hyperparameters_file",
                     type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="JSON file of hyperparameters (default: local_test's)."),
        click.option("--input-mode", metavar="File|FastFile|Pipe",
                     help="TrainingInputMode of the job (default: byoc.toml's [train] input_mode,"
                          " else File)."),
        click.option("--channel-input-mode", multiple=True, metavar="NAME=MODE",
                     help="InputMode of one channel (File, FastFile, Pipe), over --input-mode."),
        click.option("--distribution", multiple=True, metavar="NAME=KIND",
                     help="S3DataDistributionType of a channel: FullyReplicated or ShardedByS3Key."),
        click.option("--record-wrapper", multiple=True, metavar="NAME=RecordIO",
                     help="RecordWrapperType of a Pipe channel: each file (or manifest attribute)"
                          " becomes one RecordIO record."),
        click.option("--compression", multiple=True, metavar="NAME=Gzip",
                     help="CompressionType of a Pipe channel: its files are gunzipped into the"
                          " pipe."),
        click.option("--shuffle-seed", multiple=True, metavar="NAME=SEED",
                     help="ShuffleConfig.Seed of a channel: its objects are shuffled (in Pipe mode,"
                          " again every epoch)."),
        click.option("--shuffle", "shuffle_alias", multiple=True, hidden=True),
        click.option("--attribute-names", multiple=True, metavar="NAME=A,B",
                     help="Make a channel an AugmentedManifestFile (one JSON Lines file) streaming"
                          " these attributes in order (Pipe mode)."),
        click.option("--manifest-root", multiple=True, metavar="NAME=DIR",
                     help="A local run of an augmented manifest channel streams only files under"
                          " DIR (default: the manifest's folder; byoc.toml: manifest_root)."),
        click.option("--metric-definition", multiple=True, metavar="NAME=REGEX",
                     help="A MetricDefinition over the logs (group 1 of REGEX is the value), after"
                          " byoc.toml's [[metric_definitions]] (a same-named one is replaced)."
                          " Repeatable."),
        click.option("--metric", "metric_alias", multiple=True, hidden=True),
        click.option("--metric-definitions", "metric_definitions_file",
                     type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help='JSON file: [{"Name": ..., "Regex": ...}, ...], before'
                          " --metric-definition."),
        click.option("--instance-count", default=1, show_default=True, type=int,
                     help="Hosts algo-1..algo-N (locally, each in its own container)."),
        click.option("--env", multiple=True, metavar="KEY=VALUE",
                     help="Environment variable of the training container. Repeatable."),
        click.option("--env-file", "env_file", multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False, path_type=Path), help=ENV_FILE_HELP),
        click.option("--max-run", metavar="DURATION",
                     help="StoppingCondition.MaxRuntimeInSeconds: seconds, or 90s, 5m, 2h, 1h30m"
                          f" (default {jobdef.DEFAULT_MAX_RUNTIME}, one day)."),
        click.option("--spot", is_flag=True,
                     help="EnableManagedSpotTraining (locally: simulated; needs --max-wait)."),
        click.option("--max-wait", metavar="DURATION",
                     help="StoppingCondition.MaxWaitTimeInSeconds (with --spot): waiting for"
                          " capacity plus the run, at least --max-run."),
        click.option("--checkpoint-uri", metavar="DIR|s3://URI",
                     help="CheckpointConfig.S3Uri. A local directory plays S3 in a local run and"
                          " is uploaded under the project's S3 prefix for a SageMaker run; an"
                          " s3:// URI is SageMaker only. Restored into every host at start,"
                          " synced while the job runs. Default on SageMaker with --spot: under"
                          " the project's S3 prefix."),
        click.option("--checkpoint-dir", "checkpoint_dir_alias", hidden=True),
        click.option("--checkpoint-s3", "checkpoint_s3_alias", hidden=True),
        click.option("--checkpoint-local-path", default=jobdef.DEFAULT_CHECKPOINT_PATH,
                     show_default=True, help="CheckpointConfig.LocalPath in the container."),
        click.option("--job-name", help="Training job name (default: <project>-<timestamp>)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def sagemaker_job_options(command: F) -> F:
    """The job options only a SageMaker run has."""
    return click.option("--volume-size", type=int, default=jobdef.DEFAULT_VOLUME_GB,
                        show_default=True, help="VolumeSizeInGB of each instance.")(command)


def definition_from_options(project: Project | None, values: dict[str, Any]
                            ) -> tuple[jobdef.JobDefinition, list[str]]:
    """Pop the ``@job_options`` (and ``@sagemaker_job_options``) values out of *values* and build
    the definition over the project's (see :func:`byoc.job.from_project`).

    :returns: the definition and warnings to show. The job name stays in *values*.
    """
    taken = {name: values.pop(name) for name in OPTION_NAMES if name != "job_name"}
    extra = {name: values.pop(name) for name in SAGEMAKER_OPTION_NAMES if name in values}
    hyperparameters = jobdef.hyperparameters(project, taken["hyperparameters_file"],
                                             pairs(taken["hyperparameter"], "--hyperparameter"))
    metrics: list[jobdef.MetricDefinition] = []
    if taken["metric_definitions_file"] is not None:
        metrics = _metrics_file(taken["metric_definitions_file"])
    for option, given in (("--metric-definition", taken["metric_definition"]),
                          ("--metric", taken["metric_alias"])):
        for name, regex in pairs(given, option).items():
            checked = metric_check(name, regex, option)
            metrics = [m for m in metrics if m.name != name] + [checked]
    seeds: dict[str, int] = {}
    for option, given in (("--shuffle-seed", taken["shuffle_seed"]),
                          ("--shuffle", taken["shuffle_alias"])):
        for name, seed in pairs(given, option).items():
            try:
                seeds[name] = int(seed)
            except ValueError:
                raise ConfigError(f"{option} {name}={seed}: ShuffleConfig.Seed is an integer"
                                  ) from None
    checkpoint = _one_of({"--checkpoint-uri": taken["checkpoint_uri"],
                          "--checkpoint-dir": taken["checkpoint_dir_alias"],
                          "--checkpoint-s3": taken["checkpoint_s3_alias"]})
    channels = _channels(taken["channel"])
    max_run = taken["max_run"]
    max_wait = taken["max_wait"]
    return jobdef.from_project(
        project, channels=channels, hyperparameters=hyperparameters,
        content_types=pairs(taken["content_types"], "--content-type"),
        distribution=pairs(taken["distribution"], "--distribution"),
        channel_input_modes=pairs(taken["channel_input_mode"], "--channel-input-mode"),
        record_wrappers=pairs(taken["record_wrapper"], "--record-wrapper"),
        compression=pairs(taken["compression"], "--compression"),
        shuffle_seeds=seeds,
        attribute_names={name: [a.strip() for a in text.split(",")] for name, text in
                         pairs(taken["attribute_names"], "--attribute-names").items()},
        manifest_roots={name: Path(folder) for name, folder in
                        pairs(taken["manifest_root"], "--manifest-root").items()},
        input_mode=taken["input_mode"], metric_definitions=tuple(metrics),
        instance_count=taken["instance_count"],
        environment=pairs([*(item for path in taken["env_file"] for item in read_env_file(path)),
                           *taken["env"]], "--env"),
        max_runtime=jobdef.seconds(max_run, "--max-run") if max_run is not None
        else jobdef.DEFAULT_MAX_RUNTIME,
        spot=taken["spot"],
        max_wait=jobdef.seconds(max_wait, "--max-wait") if max_wait is not None else None,
        checkpoint_uri=checkpoint, checkpoint_local_path=taken["checkpoint_local_path"],
        volume_size=extra.get("volume_size", jobdef.DEFAULT_VOLUME_GB))


def _one_of(given: dict[str, str | None]) -> str | None:
    named = {option: value for option, value in given.items() if value is not None}
    if len(named) > 1:
        raise ConfigError(f"{' and '.join(named)} name the same setting; pass one")
    return next(iter(named.values()), None)


def _channels(values: tuple[str, ...]) -> dict[str, str] | None:
    channels = pairs(values, "--channel")
    for name, path in channels.items():
        contract.check_channel_name(name)
        if not path.strip():
            raise ConfigError(f"--channel {name}= has an empty path; give the channel's directory")
    return channels or None


def _metrics_file(path: Path) -> list[jobdef.MetricDefinition]:
    data = contract.read_json(path, list, 'a JSON list of {"Name": ..., "Regex": ...}')
    found = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str) \
                or not isinstance(item.get("Regex"), str):
            raise ConfigError(f'{path}: each metric definition is {{"Name": ..., "Regex": ...}}')
        found.append(metric_check(item["Name"], item["Regex"], str(path)))
    return found
