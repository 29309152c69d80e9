"""``byoc local process`` and ``byoc local evaluate``: options in, library calls out."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from .. import contract, job
from .. import local as harness
from ..errors import ConfigError
from ..local import experiments
from ..local import record as jobrecord
from ..project import LATEST, Project
from ..say import Say
from .experiment import EXPERIMENT, logged, tracking
from .options import BACKEND, ENV, IMAGE, PROJECT, echo_err, log_line

#: The evaluation job's contract: its inputs, output and program.
EVALUATE_PROGRAM = "evaluate"
EVALUATION_FILE = "evaluation.json"
#: The project's local test set (the ``test`` input when --test is not given).
LOCAL_TEST_SET = Path("local_test") / "test"


def _jobs_dir(loaded: Project | None, output_dir: Path | None) -> Path:
    return output_dir or (loaded.jobs_dir if loaded else Path.cwd() / ".byoc" / "jobs")


def _run(definition: job.ProcessingJobDefinition, loaded: Project | None, image: str | None,
         backend: str, job_name: str | None, output_dir: Path | None, grace: float,
         where: experiments.Tracking | None) -> harness.ProcessResult:
    """Run *definition* on the chosen backend, refusing what it cannot run before an image is
    built or an environment made; with *where*, log the job as an MLflow run once it is over,
    with any evaluation.json its local outputs hold."""
    harness.check_local_processing(definition, backend)  # before an image is built
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err)
    if where is not None and job_name is None:  # named here, so its directory is known after
        job_name = job.default_job_name(definition.base_name)
    run = harness.LocalRun(job_name=job_name, output_dir=output_dir, grace_seconds=grace,
                           image=getattr(chosen, "image", None))

    def log(tracking: experiments.Tracking, job_dir: Path, say: Say) -> str | None:
        reports = [found for out in definition.local_outputs
                   for found in sorted(Path(out.destination).rglob(experiments.EVALUATION))]
        return experiments.log_job(tracking, job_dir, say=say, artifacts=reports)

    job_dir = _jobs_dir(loaded, output_dir).resolve() / job_name if job_name else None
    with logged(where, job_dir, log):
        return harness.process(definition, backend=chosen, project=loaded, run=run,
                               log=log_line, say=echo_err)


@click.command(name="process")
@PROJECT
@IMAGE
@BACKEND
@click.option("--input", "inputs", multiple=True,
              metavar=f"NAME=PATH[:{contract.PROCESSING_DIR}/...]",
              help="A ProcessingInput: a local file or folder, seen read-only at its LocalPath"
                   f" (default {contract.PROCESSING_DIR}/input/NAME). Repeatable.")
@click.option("--output", "outputs", multiple=True,
              metavar=f"NAME=FOLDER[:{contract.PROCESSING_DIR}/...]",
              help="A ProcessingOutput: what the job leaves at its LocalPath (default"
                   f" {contract.PROCESSING_DIR}/output/NAME) is copied to FOLDER, which must be"
                   " new or empty. Repeatable.")
@click.option("--code", metavar="FILE", help="A script, delivered as the input 'code' at"
              f" {contract.PROCESSING_DIR}/input/code/ and run as ENTRYPOINT + [its path] (as"
              " the SDK's ScriptProcessor); needs --entrypoint, e.g. python3.")
@click.option("--entrypoint", multiple=True, metavar="ITEM",
              help="ContainerEntrypoint, one item per option (replaces the image's ENTRYPOINT"
                   " and drops its CMD, as docker run --entrypoint).")
@click.option("--argument", "arguments", multiple=True, metavar="ITEM",
              help="ContainerArguments, one item per option (replace the image's CMD). An item"
                   " beginning with '-': --argument=-v.")
@click.option("--instance-count", default=1, show_default=True, type=int,
              help="Hosts (algo-1 ..); more than one needs the docker backend.")
@click.option("--distribution", "distributions", multiple=True,
              metavar="NAME=FullyReplicated|ShardedByS3Key", help="An input's distribution.")
@click.option("--input-mode", "input_modes", multiple=True, metavar="NAME=File|Pipe",
              help="An input's S3InputMode (a local run takes File only).")
@click.option("--upload-mode", "upload_modes", multiple=True,
              metavar="NAME=EndOfJob|Continuous",
              help="An output's S3UploadMode: Continuous copies it while the job runs.")
@ENV
@click.option("--max-run", metavar="DURATION", help="StoppingCondition.MaxRuntimeInSeconds"
              " (e.g. 90s, 30m, 2h; default one day).")
@click.option("--job-name", help="Processing job name (default: <project>-<timestamp>).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the job's directory goes (default: .byoc/jobs in the project).")
@click.option("--grace", default=harness.TRAIN_GRACE, show_default=True, type=float,
              help="Seconds between SIGTERM and SIGKILL when stopping.")
@EXPERIMENT
def process_command(project: Path | None, image: str | None, backend: str,
                    inputs: tuple[str, ...], outputs: tuple[str, ...], code: str | None,
                    entrypoint: tuple[str, ...], arguments: tuple[str, ...],
                    instance_count: int, distributions: tuple[str, ...],
                    input_modes: tuple[str, ...], upload_modes: tuple[str, ...],
                    env: tuple[str, ...], max_run: str | None, job_name: str | None,
                    output_dir: Path | None, grace: float, experiment: str | None) -> None:
    """Run a processing job (CreateProcessingJob) on this machine: any image on Docker, or a
    project's programs as processes. Prints each output's folder.

    The job succeeds when every host exits 0; /opt/ml/output/message becomes ExitMessage.
    """
    loaded = Project.find(project, required=image is None)
    where = tracking(experiment, loaded)  # before the job: MLflow missing is an Error now
    harness.reap_orphans(loaded.jobs_dir if loaded else None, say=echo_err)
    base = loaded.name if loaded else (image or "byoc").rsplit("/", 1)[-1].split(":")[0]
    definition = job.processing_from_options(
        base_name=_job_base(base), inputs=inputs, outputs=outputs, code=code,
        entrypoint=entrypoint, arguments=arguments, instance_count=instance_count,
        distributions=distributions, input_modes=input_modes, upload_modes=upload_modes,
        env=env, max_run=max_run)
    result = _run(definition, loaded, image, backend, job_name, output_dir, grace, where)
    _report(result)
    for name, folder in result.outputs.items():
        click.echo(f"{name}\t{folder}")


def _job_base(name: str) -> str:
    """*name* as a job name's base: letters, digits and hyphens."""
    cleaned = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    return cleaned[:40].strip("-") or "byoc"


def _report(result: harness.ProcessResult) -> None:
    if result.exit_message:
        echo_err(f"ExitMessage: {result.exit_message.strip()}")
    if result.status == jobrecord.STOPPED:
        echo_err(f"processing job {result.job_name} stopped on request")
    else:
        echo_err(f"processing job {result.job_name} completed; record: {result.job_dir}")


@click.command(name="evaluate")
@click.argument("places", nargs=-1, metavar="[PROJECT] [JOB]")
@IMAGE
@BACKEND
@click.option("--test", "test_set", type=click.Path(path_type=Path),
              help=f"The test set, in the training channel's format (default: the project's"
                   f" {LOCAL_TEST_SET}).")
@click.option("--job-name", help="The evaluation job's name (default: <project>-eval-<timestamp>).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The jobs directory (default: .byoc/jobs in the project).")
@EXPERIMENT
def evaluate_command(places: tuple[str, ...], image: str | None, backend: str,
                     test_set: Path | None, job_name: str | None, output_dir: Path | None,
                     experiment: str | None) -> None:
    """Evaluate a local training job's model on a test set: the image's ``evaluate`` program
    runs as a processing job; prints the headline figures of its evaluation.json.

    JOB is a local training job's name or directory (default: the latest that completed).
    """
    project, training = _places(places)
    loaded = Project.find(project)
    where = tracking(experiment, loaded)  # before the job: MLflow missing is an Error now
    jobs_dir = _jobs_dir(loaded, output_dir)
    harness.reap_orphans(jobs_dir, say=echo_err)
    record = jobrecord.find(jobs_dir, training or LATEST)
    if record.kind != jobrecord.TRAINING:
        raise ConfigError(f"{record.name} is a {record.kind} job; name a training job")
    model = record.job_dir / "model.tar.gz"
    if record.status != jobrecord.COMPLETED or not model.is_file():
        raise ConfigError(f"training job {record.name} left no model to evaluate (status"
                          f" {record.status or 'unknown'})")
    test = test_set if test_set is not None else loaded.root / LOCAL_TEST_SET
    if not test.exists():
        raise ConfigError(f"no test set at {test}: pass --test PATH (a folder in the training"
                          " channel's format)")
    name = job_name or job.default_job_name(_job_base(f"{loaded.name}-eval"))
    destination = jobs_dir.resolve() / name / "evaluation"
    definition = job.ProcessingJobDefinition(
        base_name=_job_base(f"{loaded.name}-eval"),
        inputs=(job.ProcessingInput("model", str(model), f"{contract.PROCESSING_DIR}/model"),
                job.ProcessingInput("test", str(test), f"{contract.PROCESSING_DIR}/test")),
        outputs=(job.ProcessingOutput("evaluation", str(destination),
                                      f"{contract.PROCESSING_DIR}/evaluation"),),
        entrypoint=(EVALUATE_PROGRAM,))
    harness.check_local_processing(definition, backend)  # before an image is built
    chosen = harness.choose_backend(backend, loaded, image, say=echo_err)
    if not harness.has_program(chosen, EVALUATE_PROGRAM):
        runs = getattr(chosen, "image", None) or loaded.program_dir
        raise ConfigError(f"{runs} has no {EVALUATE_PROGRAM} program (an executable"
                          f" {EVALUATE_PROGRAM} next to train and serve); add one, or use an image"
                          " that has it")
    echo_err(f"evaluating {record.name}'s model on {test}")
    run = harness.LocalRun(job_name=name, output_dir=output_dir,
                           image=getattr(chosen, "image", None))
    with logged(where, jobs_dir.resolve() / name):  # its evaluation.json is in the job's directory
        result = harness.process(definition, backend=chosen, project=loaded, run=run,
                                 log=log_line, say=echo_err)
    _report(result)
    report = destination / EVALUATION_FILE
    if not report.is_file():
        raise ConfigError(f"the evaluate program wrote no {EVALUATION_FILE} in"
                          f" {contract.PROCESSING_DIR}/evaluation")
    figures = headline(contract.read_json(report))
    _print_table(record.name, figures)
    echo_err(f"{EVALUATION_FILE}: {report}")


def _places(places: tuple[str, ...]) -> tuple[Path | None, str | None]:
    """``[PROJECT] [JOB]``: a first argument that is a folder holding byoc.toml is the project."""
    if len(places) > 2:
        raise click.UsageError("at most two arguments: [PROJECT] [JOB]")
    if not places:
        return None, None
    first = Path(places[0])
    if len(places) == 2:
        return first, places[1]
    if first.is_dir() and (first / "byoc.toml").is_file():
        return first, None
    return None, places[0]


def headline(document: dict[str, Any]) -> list[tuple[str, str, float, float | None]]:
    """The figures of a model-quality document: (problem type, metric, value, standard
    deviation) for every metric with a number as its ``value``."""
    rows = []
    for kind, metrics in document.items():
        if not isinstance(metrics, dict):
            continue
        for name, entry in metrics.items():
            value = entry.get("value") if isinstance(entry, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                deviation = entry.get("standard_deviation")
                rows.append((kind.removesuffix("_metrics"), name, float(value),
                             float(deviation) if isinstance(deviation, int | float)
                             and not isinstance(deviation, bool) else None))
    if not rows:
        raise ConfigError(f"{EVALUATION_FILE} holds no metric with a numeric value (expected"
                          " e.g. {\"regression_metrics\": {\"mse\": {\"value\": ...}}})")
    return rows


def _print_table(job_name: str, rows: list[tuple[str, str, float, float | None]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"evaluation of {job_name}")
    for column in ("problem", "metric", "value", "standard deviation"):
        table.add_column(column, justify="right" if column in ("value", "standard deviation")
                         else "left")
    for kind, name, value, deviation in rows:
        table.add_row(kind, name, _number(value), "-" if deviation is None else _number(deviation))
    Console(file=sys.stdout, width=100).print(table)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"

