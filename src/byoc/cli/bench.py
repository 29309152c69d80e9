"""``byoc local bench``: options in, :func:`byoc.bench.bench` out, a table printed."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import bench as bench_api
from .. import invoke, local
from ..bench.load import GENERATORS, pick_generator
from ..errors import ConfigError
from ..project import Project
from .options import BACKEND, ENV, IMAGE, PROJECT, echo_err, pairs


@click.command(name="bench")
@PROJECT
@IMAGE
@BACKEND
@click.option("--payload", type=click.Path(dir_okay=False, path_type=Path),
              help="Body of every invocation (default: the project's local_test/payload.*).")
@click.option("--content-type", help="Content-Type of the payload (default: from its suffix).")
@click.option("--concurrency", default="1,8,32", show_default=True,
              help="Open connections of each run, comma-separated: one table row each.")
@click.option("--duration", default="30s", show_default=True,
              help="Length of each run: 30s, 2m or plain seconds.")
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="model.tar.gz or a directory (default: the last local training job's).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure to this JSON file.")
@click.option("--generator", type=click.Choice(GENERATORS), default="auto", show_default=True,
              help="Load generator: wrk, builtin (asyncio) or auto (wrk when installed).")
@click.option("--cold-starts", default=1, show_default=True, type=click.IntRange(1, 50),
              help="Time this many server starts (this run's and restarts); report the median.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0, 600),
              help="Seconds of unrecorded load before the first run.")
@click.option("--port", default=0, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (default: a free one).")
@ENV
@click.option("--startup-timeout", default=local.DEFAULT_STARTUP_TIMEOUT, show_default=True,
              type=float, help="Seconds to wait for /ping to answer 200.")
def bench_command(project: Path | None, image: str | None, backend: str, payload: Path | None,
                  content_type: str | None, concurrency: str, duration: str, model: Path | None,
                  json_file: Path | None, generator: str, cold_starts: int, warmup: int, port: int,
                  env: tuple[str, ...], startup_timeout: float) -> None:
    """Serve a model, load it, and print throughput, latency, CPU and memory per concurrency,
    next to two ceilings measured in the same run: GET /ping through the same stack, and
    parse + predict + serialise of the payload with no HTTP. Takes minutes: progress goes
    to stderr, the table to stdout."""
    levels = bench_api.parse_concurrency(concurrency)
    seconds = bench_api.parse_duration(duration)
    pick_generator(generator)
    if json_file is not None and not json_file.resolve().parent.is_dir():
        raise ConfigError(f"cannot write {json_file}: {json_file.parent} is not a directory")
    loaded = Project.find(project, required=image is None)
    if payload is None:
        payload = loaded.payload if loaded else None
        if payload is None:
            raise ConfigError("pass --payload: there is no project with a local_test/payload.* to"
                              " take it from")
    if not payload.is_file():
        raise ConfigError(f"the payload {payload} is not a file")
    kind = content_type or invoke.guess_content_type(payload)
    chosen = local.choose_backend(backend, loaded, image, say=echo_err)
    model_path = local.resolve_model(model, loaded)
    echo_err(f"model: {model_path}")
    result = bench_api.bench(
        backend=chosen, model=model_path, payload=payload, content_type=kind, concurrency=levels,
        duration=seconds, generator=generator, port=port or None, env=pairs(env, "--env"),
        cold_starts=cold_starts, warmup=warmup, startup_timeout=startup_timeout, say=echo_err)
    click.echo(bench_api.render(result))
    if json_file is not None:
        try:
            json_file.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {json_file}: {exc.strerror or exc}") from exc
        echo_err(f"wrote {json_file}")
