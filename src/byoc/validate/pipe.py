"""The Pipe-mode check of ``byoc validate``: ``train`` with every channel streamed through FIFOs.

SageMaker does not require Pipe mode, so an image that cannot read it gets a
warning that says so ("this image supports File mode only"), not a failure.
The run is bounded: a program that opens no FIFO within ``OPEN_TIMEOUT``
seconds is stopped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from .. import contract
from .._docker import explain
from ..backends.docker import training_mounts
from ..local import staging
from ..local.inputs import pipe
from .common import PASS, WARN, Check, Session, first_line, last_lines
from .train import TrainInputs

NAME = "train.pipe"
RULE = "A4"
#: How long a program may take to open its first FIFO.
OPEN_TIMEOUT = 60.0
FILE_ONLY = "this image supports File mode only"
FIX = ("Optional: to take Pipe mode, when inputdataconfig.json says \"TrainingInputMode\": \"Pipe\""
       f" for a channel, read the FIFO {contract.IN_CONTAINER.data_dir}/<channel>_<epoch>"
       " (epoch 0, 1, ...; wait for it to appear) to EOF instead of a directory.")


def run_check(session: Session, inputs: TrainInputs, network: str = "none") -> Check:
    import docker.errors

    session.say("train: in Pipe mode, every channel streamed through a FIFO")
    piped = replace(inputs.job, input_mode="Pipe")  # every channel streamed, checked again
    sources = {channel.name: Path(channel.source) for channel in piped.channels}
    job = session.tree(session.name("pipe"))
    specs, _ = staging.stage_hosts(job, ["algo-1"], piped.contract_channels(), sources,
                                   piped.hyperparameters)
    host = specs[0]
    pipes = pipe.Pipes.for_job(specs, pipe.load_channels(piped.channels, piped.input_mode),
                               job / "pipe-scratch")
    job_name = f"byoc-validate-{session.id}"
    env = contract.job_env(job_name)
    container = session.create("pipe", command=["train"], hostname=host.host, environment=env,
                               mounts=training_mounts(host), network_mode=network)
    with pipes:
        try:
            started = session.start(container, "pipe")
        except docker.errors.APIError as exc:
            return Check(NAME, RULE, WARN, f"train did not start in Pipe mode: {explain(exc)}")
        feeders = list(pipes.feeders.values())
        deadline = time.monotonic() + OPEN_TIMEOUT
        while started.poll() is None and not any(f.opened for f in feeders) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        status = started.poll()
        if status is None and not any(f.opened for f in feeders):
            started.stop(inputs.grace)
            return Check(NAME, RULE, WARN, f"{FILE_ONLY}: in Pipe mode train opened no FIFO in"
                         f" {OPEN_TIMEOUT:.0f} s (stopped)", fix=FIX, detail=started.log_tail())
        status = started.wait(inputs.timeout)
        seconds = time.monotonic() - started.started_at
        if status is None:
            started.stop(inputs.grace)
    opened = [name for (_, name), f in sorted(pipes.feeders.items()) if f.opened]
    reason = first_line(contract.read_failure(host.root))
    why = f"FailureReason {reason!r}" if reason else (last_lines(started.log_tail(), 1) or "no log")
    if status is None:
        return Check(NAME, RULE, WARN, f"in Pipe mode train was still running after"
                     f" {inputs.timeout:.0f} s (read {', '.join(opened) or 'no FIFO'})",
                     fix="Training must end by itself; validate it on small channels.",
                     detail=started.log_tail())
    if status != 0:
        return Check(NAME, RULE, WARN, f"{FILE_ONLY}: in Pipe mode train exited {status} after"
                     f" {seconds:.1f} s ({why}); it read {', '.join(opened) or 'no FIFO'}",
                     fix=FIX, detail=started.log_tail())
    if not opened:
        return Check(NAME, RULE, WARN, f"{FILE_ONLY}: in Pipe mode train exited 0 without opening a"
                     " FIFO", fix=FIX, detail=started.log_tail())
    epochs = ", ".join(f"{name}: {pipes.feeders[('algo-1', name)].epochs_done} epoch(s)"
                       for name in opened)
    return Check(NAME, RULE, PASS, f"exit 0 after {seconds:.1f} s in Pipe mode, reading the FIFOs"
                 f" ({epochs})")
