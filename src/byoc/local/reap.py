"""Stop a local job, and clean up after jobs whose byoc process died (orphans)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from .._docker import docker_available
from ..errors import (
    ConfigError,
)
from ..say import Say, quiet
from . import record as jobrecord
from . import staging, stopping


def stop_job(record: jobrecord.JobRecord) -> None:
    """Ask the byoc running *record*'s job to stop it, as StopTrainingJob (or
    StopProcessingJob) does.

    :raises ConfigError: when the job is not running.
    """
    if record.status not in (jobrecord.IN_PROGRESS, jobrecord.STOPPING):
        raise ConfigError(f"{record.kind} job {record.name} is not running (status {record.status})")
    if not staging.owner_alive(record.data.get("Local") or {}):
        raise ConfigError(f"the byoc that ran {record.name} is gone; `byoc local jobs` marks the"
                          " job failed and removes what it left")
    stopping.request_stop(record.job_dir)


def reap_orphans(jobs_dir: Path | None, say: Say = quiet,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """Mark failed the jobs whose byoc died (SIGKILL) and remove what they left running.

    Containers and networks are found by their ``com.byoc.job`` label,
    processes of the process backend by the job's ARN in their environment.
    Returns the names of the jobs reaped.
    """
    reaped: list[str] = []
    if jobs_dir is None:
        return reaped
    for record in jobrecord.records(jobs_dir):
        if (record.status not in (jobrecord.IN_PROGRESS, jobrecord.STOPPING)
                or staging.owner_alive(record.data.get("Local") or {})):
            continue
        remove_labelled(record.name, environ)
        _kill_job_processes(str(record.data.get("TrainingJobArn", "")))
        _kill_recorded(record.data.get("Local") or {})
        staging.remove_tree(record.job_dir / "hosts")
        staging.remove_tree(record.job_dir / "shards")
        record.fail("byoc stopped while the job ran (killed?); its hosts were removed")
        say(f"note: {record.kind} job {record.name} lost the byoc running it; marked Failed and"
            " cleaned up")
        reaped.append(record.name)
    return reaped


#: Passes over a job's containers: a host's network placeholder cannot go while a host that
#: shares its namespace is still being removed, so what one pass leaves the next one takes.
REMOVAL_PASSES = 3


def remove_labelled(job_name: str, environ: Mapping[str, str] | None) -> None:
    """Remove the containers and networks Docker holds for *job_name* (by byoc's label)."""
    if not docker_available(environ):
        return
    import docker.errors

    from .._docker import docker_client
    from ..backends.docker import LABEL

    client = docker_client(environ)
    labelled = {"label": f"{LABEL}={job_name}"}
    try:
        for _ in range(REMOVAL_PASSES):
            containers = client.containers.list(all=True, ignore_removed=True, filters=labelled)
            if not containers:
                break
            for container in containers:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
        for network in client.networks.list(filters=labelled):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
    finally:
        client.close()


def _kill_job_processes(arn: str) -> None:
    if not arn:
        return
    needle = f"TRAINING_JOB_ARN={arn}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environment:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(entry.name), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _kill_recorded(local: Mapping[str, object]) -> None:
    """Kill the process groups a record names under ``Local.Processes`` (host -> [pid, start]),
    each only while its pid still belongs to the process that was started."""
    found = local.get("Processes")
    if not isinstance(found, Mapping):
        return
    for entry in found.values():
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], int):
            continue
        pid, started = entry
        if staging.process_start(pid) is None or staging.process_start(pid) != started:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
