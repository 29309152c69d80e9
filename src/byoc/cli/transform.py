"""``byoc local transform``: options in, :func:`byoc.transform.transform` out, a summary printed."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from .. import local
from ..errors import TransformError
from ..project import Project
from ..transform import TransformParams, TransformResult, transform
from ..transform import params as tp
from .options import BACKEND, ENV, IMAGE, PROJECT, echo_err, pairs


class RichProgress:
    """Files, records and bytes done, with rates, on stderr (drawn only on a terminal)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[records]:,} records, {task.fields[rate]:,.0f}/s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=self.console, transient=False, disable=not self.console.is_terminal)
        self.task: TaskID | None = None
        self.lock = threading.Lock()
        self.files = self.records = self.failed = 0
        self.began = 0.0

    def start(self, files: int, total_bytes: int | None) -> None:
        self.progress.start()
        self.task = self.progress.add_task("transform", total=total_bytes, files=0, total_files=files,
                                           records=0, rate=0.0, failed=0)
        self.began = self.progress.get_time()

    def advance(self, records: int, nbytes: int) -> None:
        with self.lock:
            self.records += records
            elapsed = max(self.progress.get_time() - self.began, 1e-9)
            if self.task is not None:
                self.progress.update(self.task, advance=nbytes, records=self.records,
                                     rate=self.records / elapsed)

    def file_done(self, key: str, ok: bool) -> None:
        with self.lock:
            self.files += 1
            self.failed += 0 if ok else 1
            if self.task is not None:
                self.progress.update(self.task, files=self.files, failed=self.failed)

    def stop(self) -> None:
        self.progress.stop()


def _summary(result: TransformResult) -> str:
    return (f"{result.records:,} records ({result.bytes_in:,} bytes) from {result.files} file(s) in"
            f" {result.seconds:.2f} s: {result.records_per_s:,.0f} records/s, {result.requests:,}"
            f" requests on {result.instances} instance(s) (start-up {result.startup_seconds:.1f} s);"
            f" {len(result.outputs)} output(s), {len(result.failures)} failure(s)")


@click.command(name="transform")
@PROJECT
@IMAGE
@BACKEND
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="model.tar.gz or a directory (default: the last local training job's).")
@click.option("--input", "source", required=True, type=click.Path(exists=True, path_type=Path),
              help="A file, or a directory: every file under it, in key order.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where <name>.out files go, sub-paths kept (default: .byoc/transforms/<time>).")
@click.option("--content-type", help="ContentType: the Content-Type of every request.")
@click.option("--accept", help="Accept: the answer type asked for.")
@click.option("--split-type", type=click.Choice(tp.SPLIT_TYPES), default="None", show_default=True,
              help="SplitType: how files are cut into records.")
@click.option("--strategy", type=click.Choice(tp.STRATEGIES),
              help="BatchStrategy (default: the container's /execution-parameters, else MultiRecord).")
@click.option("--max-payload", type=click.IntRange(0, tp.MAX_PAYLOAD_MB), metavar="MB",
              help="MaxPayloadInMB; 0 sends bodies chunked with no limit (default: the container's"
                   " /execution-parameters, else 6).")
@click.option("--max-concurrent", type=click.IntRange(1), metavar="N",
              help="MaxConcurrentTransforms: requests in flight per instance (default: the"
                   " container's /execution-parameters, else 1).")
@click.option("--assemble-with", type=click.Choice(tp.ASSEMBLY_TYPES), default="None",
              show_default=True, help="AssembleWith: Line adds a newline after each answer.")
@click.option("--input-filter", default="$", show_default=True, metavar="JSONPATH",
              help="DataProcessing InputFilter: the part of each record sent.")
@click.option("--output-filter", default="$", show_default=True, metavar="JSONPATH",
              help="DataProcessing OutputFilter: the part of each result written.")
@click.option("--join-source", type=click.Choice(("None", "Input")), default="None", show_default=True,
              help="DataProcessing JoinSource: Input joins each input record to its result.")
@click.option("--compression", type=click.Choice(tp.COMPRESSION_TYPES), default="None",
              show_default=True, help="CompressionType: Gzip decompresses each input file.")
@click.option("--instance-count", default=1, show_default=True, type=click.IntRange(1, tp.MAX_INSTANCES),
              help="Servers sharing the files (dealt in key order).")
@ENV
@click.option("--invocations-timeout", default=tp.DEFAULT_INVOCATION_TIMEOUT, show_default=True,
              type=click.IntRange(1, 3600), help="ModelClientConfig InvocationsTimeoutInSeconds.")
@click.option("--max-retries", default=tp.DEFAULT_MAX_RETRIES, show_default=True,
              type=click.IntRange(0, 3), help="ModelClientConfig InvocationsMaxRetries (5xx, timeouts).")
@click.option("--startup-timeout", default=local.DEFAULT_STARTUP_TIMEOUT, show_default=True,
              type=float, help="Seconds to wait for /ping to answer 200.")
def transform_command(project: Path | None, image: str | None, backend: str, model: Path | None,
                      source: Path, output_dir: Path | None, content_type: str | None,
                      accept: str | None, split_type: str, strategy: str | None,
                      max_payload: int | None, max_concurrent: int | None, assemble_with: str,
                      input_filter: str, output_filter: str, join_source: str, compression: str,
                      instance_count: int, env: tuple[str, ...], invocations_timeout: int,
                      max_retries: int, startup_timeout: float) -> None:
    """Run a batch transform job on local files as CreateTransformJob would: every file under
    --input becomes <name>.out under --output. Prints the output directory; a file that fails
    gets no .out and the job exits 1, naming the file and the record."""
    params = TransformParams(
        content_type=content_type, accept=accept, split_type=split_type, strategy=strategy,
        max_payload_mb=max_payload, max_concurrent=max_concurrent, assemble_with=assemble_with,
        input_filter=input_filter, output_filter=output_filter, join_source=join_source,
        compression=compression, instance_count=instance_count, env=pairs(env, "--env"),
        invocation_timeout=invocations_timeout, max_retries=max_retries)
    params.check()
    loaded = Project.find(project, required=image is None)
    chosen = local.choose_backend(backend, loaded, image, say=echo_err)
    model_path = local.resolve_model(model, loaded)
    if output_dir is None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        output_dir = (loaded.root if loaded else Path.cwd()) / ".byoc" / "transforms" / stamp
    echo_err(f"model: {model_path}")
    result = transform(backend=chosen, model=model_path, source=source, output_dir=output_dir,
                       params=params, startup_timeout=startup_timeout, progress=RichProgress(),
                       say=echo_err)
    echo_err(_summary(result))
    if result.failures:
        first = result.failures[0]
        raise TransformError(
            f"transform job failed: {len(result.failures)} of {result.files} file(s) failed;"
            f" {first.key}: {first.message}",
            detail="\n".join(f"  {failure.key}: {failure.message}" for failure in result.failures)
            if len(result.failures) > 1 else "")
    click.echo(str(output_dir))

