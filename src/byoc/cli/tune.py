"""``byoc local tune`` and ``byoc local describe``: options in, library calls out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import contract, local
from ..errors import ByocError, ConfigError
from ..local import experiments
from ..local import record as jobrecord
from ..project import LATEST, Project
from ..tune import config, live, report, runner, warmstart
from .experiment import EXPERIMENT, logged, tracking
from .options import BACKEND, IMAGE, PROJECT, echo_err, pairs


@click.command(name="tune")
@PROJECT
@IMAGE
@BACKEND
@click.option("--config", "config_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="JSON body of a CreateHyperParameterTuningJob request (as for the AWS CLI's"
                   " --cli-input-json).")
@click.option("--channel", multiple=True, metavar="NAME=PATH",
              help="Input channel from a directory or file (default: local_test/test_dir/input/data/*).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where tuning jobs go (default: .byoc/tuning in the project).")
@click.option("--resume", is_flag=True, help="Continue the tuning job the request names.")
@click.option("--grace", default=local.TRAIN_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when a training job is stopped.")
@EXPERIMENT
def tune_command(project: Path | None, image: str | None, backend: str, config_file: Path,
                 channel: tuple[str, ...], output_dir: Path | None, resume: bool,
                 grace: float, experiment: str | None) -> None:
    """Run a hyperparameter tuning job locally; print the best job's model archive last.

    Training jobs run MaxParallelTrainingJobs at a time, each in its own
    directory under <output-dir>/<tuning job>/jobs/; tuning.json there is
    shaped like DescribeHyperParameterTuningJob. Ctrl-C stops the running jobs
    and keeps what finished; --resume continues.
    """
    request = config.load(config_file)
    loaded = Project.find(project, required=image is None)
    where = tracking(experiment, loaded)  # before the job: MLflow missing is an Error now
    chosen = local.choose_backend(backend, loaded, image, say=echo_err)
    channels = {name: Path(path) for name, path in pairs(channel, "--channel").items()}
    for name, path in channels.items():
        if not path.exists():
            raise ConfigError(f"--channel {name}: {path} does not exist")
    # everything is checked before anything is written
    definition = runner.check(request, chosen, channels, loaded, say=echo_err)
    sources = {channel.name: Path(channel.source) for channel in definition.channels}
    root = output_dir or (loaded.state_dir / "tuning" if loaded else Path.cwd() / ".byoc" / "tuning")
    source = {"Image": image or (f"{loaded.image}:latest" if loaded else None),
              "Channels": {name: str(path.resolve()) for name, path in sorted(sources.items())}}
    parents = warmstart.load_parents(request, root, source) if request.warm_start else []
    tuning_dir = runner.prepare(request, root, resume)
    if not resume:
        warmstart.write_source(tuning_dir, source)
    table: Any = live.LiveTable(sys.stderr, request.objective_metric) if sys.stderr.isatty() \
        else live.LineTable(echo_err)
    tuner = runner.Tuner(request, chosen, tuning_dir, project=loaded, channels=channels or None,
                         definition=definition,
                         grace_seconds=grace, say=echo_err, table=table, source=source)
    if resume:
        tuner.restore()
    tuner.warm_start(parents)
    echo_err(f"tuning job {request.name}: {request.strategy}, up to {request.max_jobs} training jobs,"
             f" {request.max_parallel} at a time on {chosen.name}; results in {tuning_dir}")
    # the tuning job is logged after it ends, from tuning.json and its training jobs' records
    with logged(where, tuning_dir, experiments.log_tuning_job, new=False):
        try:
            result = tuner.run()
        finally:
            table.close()
    description = result.description
    counters = description["TrainingJobStatusCounters"]
    echo_err("training jobs: " + ", ".join(f"{k} {v}" for k, v in counters.items() if v))
    for entry in report.read_summaries(tuning_dir):
        if entry["TrainingJobStatus"] == "Failed":
            echo_err(f"  failed: {entry['TrainingJobName']}: "
                     + live.first_line(entry.get("FailureReason") or "no FailureReason"))
    best = description.get("BestTrainingJob")
    if best is None or result.best_model is None:
        raise ByocError(f"no training job of {request.name} completed with a value of"
                        f" {request.objective_metric!r}; see {tuning_dir / 'jobs'}")
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    tuned = " ".join(f"{k}={v}" for k, v in best["TunedHyperParameters"].items())
    echo_err(f"best: {best['TrainingJobName']} {metric['MetricName']}={metric['Value']:.6g} {tuned}")
    echo_err(f"tuning.json: {tuning_dir / 'tuning.json'}")
    click.echo(str(result.best_model))


@click.command(name="describe")
@click.argument("job")
@click.option("--project", "project_path", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The project whose jobs to look in (default: the one around the current directory).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A directory of jobs to look in as well (a --output-dir of train or tune).")
def describe_command(job: str, project_path: Path | None, output_dir: Path | None) -> None:
    """Show a local training job's record (job.json, as DescribeTrainingJob) and its final metrics,
    or a local processing job's (as DescribeProcessingJob).

    JOB is a training job's name or directory (``latest``: the last one that completed), or a
    local tuning job's name.
    """
    directory = find_job(job, project_path, output_dir)
    local.reap_orphans(directory.parent, say=echo_err)
    runner.reap_all(directory, say=echo_err)  # a tuning job, or one of its training jobs
    tuning_file = directory / "tuning.json"
    if tuning_file.is_file() and not (directory / jobrecord.RECORD_FILE).is_file():
        record = contract.read_json(tuning_file)
        click.echo(json.dumps(record, indent=2))
        best = record.get("BestTrainingJob")
        echo_err(f"{record['HyperParameterTuningJobName']}: {record['HyperParameterTuningJobStatus']}")
        if best:
            metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
            echo_err(f"best: {best['TrainingJobName']} {metric['MetricName']} = {metric['Value']}")
        return
    record_file = directory / jobrecord.RECORD_FILE
    if not record_file.is_file():
        raise ConfigError(f"{directory} has no {jobrecord.RECORD_FILE}")
    record = contract.read_json(record_file)
    click.echo(json.dumps(record, indent=2))
    if "ProcessingJobName" in record:  # a processing job: its status and ExitMessage
        echo_err(f"{directory.name}: {record.get('ProcessingJobStatus')}")
        for key in ("ExitMessage", "FailureReason"):
            if record.get(key):
                echo_err(f"  {key}: {str(record[key]).strip()}")
        sys.stdout.flush()
        return
    status = record.get("TrainingJobStatus") or ("Completed" if not any(
        record.get("exit_statuses", {}).values()) else "Failed")
    echo_err(f"{directory.name}: {status}")
    final = record.get("FinalMetricDataList")
    if not final:
        echo_err("no final metrics (no MetricDefinitions, or no line matched)")
    for entry in final or []:
        echo_err(f"  {entry['MetricName']} = {entry['Value']:.6g}  ({entry['Timestamp']})")
    sys.stdout.flush()


def find_job(job: str, project_path: Path | None, output_dir: Path | None) -> Path:
    """The directory of a job named *job* (or *job* itself when it is a directory)."""
    given = Path(job)
    if given.is_dir():
        return given
    roots: list[Path] = []
    if output_dir is not None:
        roots.append(output_dir)
    loaded = Project.find(project_path, required=project_path is not None)
    state = loaded.state_dir if loaded else Path.cwd() / ".byoc"
    roots += [state / "jobs", state / "tuning"]
    for root in roots:
        name = jobrecord.resolve_name(root, job) if (root / LATEST).is_file() else job
        for candidate in (root / name, *sorted(root.glob(f"*/jobs/{name}"))):
            if candidate.is_dir():
                return candidate
    raise ConfigError(f"no local job {job!r} in {', '.join(str(r) for r in roots)}")
