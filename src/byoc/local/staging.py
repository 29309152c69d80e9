"""A local training job's directory: staging hosts' trees and collecting artifacts."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import archive, contract
from ..backends.base import HostSpec
from ..errors import ConfigError
from ..job import channel_files
from .inputs.pipe import shuffled


def check_channel_sources(channels: Mapping[str, Path], protected: Mapping[str, Path],
                          what: str = "channel") -> None:
    """Refuse a channel (or *what*: a processing job's input) that is, or contains, one of the
    *protected* directories (by what they are, e.g. ``{"the project's .byoc/": path}``): a job
    would read its own output as input.

    :raises ConfigError:
    """
    kind = what
    for name, path in channels.items():
        source = path.resolve()
        for what, directory in protected.items():
            target = directory.resolve()
            if target == source or source in target.parents:
                raise ConfigError(f"{kind} {name!r}: {path} contains {what} ({target}); pass a"
                                  " directory of input data only")


def shard(files: Sequence[Path], hosts: Sequence[str]) -> dict[str, list[Path]]:
    """ShardedByS3Key: deal the files (sorted by key) to the hosts in turn, each file to one host."""
    dealt: dict[str, list[Path]] = {host: [] for host in hosts}
    for index, path in enumerate(files):
        dealt[hosts[index % len(hosts)]].append(path)
    return dealt


def stage_hosts(job_dir: Path, hosts: Sequence[str], channels: Sequence[contract.Channel],
                sources: Mapping[str, Path], hyperparameters: Mapping[str, str],
                shuffle_seeds: Mapping[str, int] | None = None,
                checkpoint_local_path: str | None = None) -> tuple[list[HostSpec], list[str]]:
    """Write every host's /opt/ml tree and choose what each host's channels hold.

    A channel with a ShuffleConfig seed is shuffled before ShardedByS3Key deals it. With
    *checkpoint_local_path* (CheckpointConfig.LocalPath), each host gets an empty checkpoint
    directory and ``checkpointconfig.json``.
    """
    specs: list[HostSpec] = []
    notes: list[str] = []
    mounts: dict[str, dict[str, Path]] = {host: {} for host in hosts}
    for channel in channels:
        if channel.input_mode == "Pipe":
            continue  # streamed into FIFOs instead (byoc.local.inputs.pipe)
        source = sources[channel.name].resolve()
        if channel.distribution == "ShardedByS3Key" or source.is_file():
            base = source.parent if source.is_file() else source
            files = channel_files(source)
            seed = (shuffle_seeds or {}).get(channel.name)
            dealt = shard(files if seed is None else shuffled(files, seed, 0), hosts) \
                if channel.distribution == "ShardedByS3Key" else {host: files for host in hosts}
            for host, files in dealt.items():
                if not files:
                    notes.append(f"{host}: channel {channel.name!r} gets no files"
                                 f" ({len(channel_files(source))} file(s) for {len(hosts)} hosts)")
                mounts[host][channel.name] = link_files(
                    files, base, job_dir / "shards" / host / channel.name)
        else:
            for host in hosts:
                mounts[host][channel.name] = source
    for host in hosts:
        root = job_dir / "hosts" / host
        contract.write_training_config(root, hyperparameters, channels, host=host, hosts=hosts)
        for channel in channels:
            if channel.input_mode != "Pipe":  # Pipe mode has FIFOs and no directory
                contract.OptMl(root).channel(channel.name).mkdir(parents=True, exist_ok=True)
        checkpoint_dir = None
        if checkpoint_local_path is not None:
            contract.write_checkpoint_config(root, checkpoint_local_path)
            checkpoint_dir = root / _under_opt_ml(checkpoint_local_path)
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        specs.append(HostSpec(host=host, root=root, channels=mounts[host],
                              checkpoints=checkpoint_dir))
    return specs, notes


def _under_opt_ml(path: str) -> str:
    """The part of a container path under the /opt/ml root (``checkpoints`` for any other)."""
    pure = PurePosixPath(path)
    root = PurePosixPath(contract.CONTAINER_ROOT)
    return pure.relative_to(root).as_posix() if pure.is_relative_to(root) and pure != root \
        else "checkpoints"


def check_checkpoint_config(store: Path, local_path: str, channels: Mapping[str, Path],
                            backend: str) -> None:
    """Refuse a CheckpointConfig the service (or this backend) cannot honour. :raises ConfigError:"""
    pure = PurePosixPath(local_path)
    if not pure.is_absolute() or ".." in pure.parts or len(local_path) > 4096:
        raise ConfigError(f"--checkpoint-local-path {local_path!r}: an absolute container path"
                          " without '..' (at most 4096 characters)")
    reserved = [f"{contract.CONTAINER_ROOT}/{part}" for part in ("input", "model", "output")]
    if any(pure == PurePosixPath(r) or pure.is_relative_to(r) for r in reserved) \
            or pure == PurePosixPath(contract.CONTAINER_ROOT):
        root = contract.CONTAINER_ROOT
        raise ConfigError(f"--checkpoint-local-path {local_path}: must not be {root} or lie under"
                          f" {root}/input, {root}/model or {root}/output")
    if backend == "process" and not pure.is_relative_to(contract.CONTAINER_ROOT):
        raise ConfigError(f"--checkpoint-local-path {local_path}: the process backend maps only"
                          f" paths under {contract.CONTAINER_ROOT}; use the default or --backend docker")
    if store.exists() and not store.is_dir():
        raise ConfigError(f"--checkpoint-uri {store} is a file, not a directory")
    check_writable(store, "--checkpoint-uri")
    resolved = store.resolve()
    for name, source in channels.items():
        source = source.resolve()
        if resolved == source or resolved.is_relative_to(source) or source.is_relative_to(resolved):
            raise ConfigError(f"--checkpoint-uri {store} overlaps channel {name!r} ({source});"
                              " keep checkpoints apart from the input data")


def check_writable(folder: Path, what: str) -> None:
    """Refuse *folder* (or, while it does not exist, the folder it would be made in) when no
    file can be written there: a read-only folder fails before the job, not in its middle.

    :raises ConfigError: naming *what* (an option) and the folder.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".byoc-write-check-", dir=existing)
    except OSError as exc:
        where = "" if existing == folder.absolute() else f" (it would be made in {existing})"
        raise ConfigError(f"{what} {folder}: cannot write there{where}: {exc.strerror or exc}"
                          ) from None
    os.close(descriptor)
    os.unlink(probe)


def describe_fields(*, job_name: str, arn: str, image: str | None, input_mode: str,
                    hyperparameters: Mapping[str, str], channels: Sequence[contract.Channel],
                    sources: Mapping[str, Path], instance_count: int, env: Mapping[str, str],
                    spot: bool, max_runtime: float | None, max_wait: float | None,
                    checkpoint_dir: Path | None, checkpoint_local_path: str, backend: str
                    ) -> dict[str, object]:
    """The request half of a DescribeTrainingJob record, local paths standing for S3 URIs."""
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": round(max_runtime or 86_400)}
    if spot and max_wait is not None:
        stopping["MaxWaitTimeInSeconds"] = round(max_wait)
    fields: dict[str, object] = {
        "TrainingJobName": job_name,
        "TrainingJobArn": arn,
        "AlgorithmSpecification": {"TrainingImage": image or "(process backend)",
                                   "TrainingInputMode": input_mode},
        "HyperParameters": dict(hyperparameters),
        "InputDataConfig": [
            {"ChannelName": c.name, "InputMode": c.input_mode,
             "DataSource": {"S3DataSource": {
                 "S3DataType": "S3Prefix", "S3Uri": sources[c.name].resolve().as_uri(),
                 "S3DataDistributionType": c.distribution}},
             **({"ContentType": c.content_type} if c.content_type else {}),
             "RecordWrapperType": c.record_wrapper}
            for c in channels],
        "ResourceConfig": {"InstanceType": contract.DEFAULT_INSTANCE_TYPE,
                           "InstanceCount": instance_count, "VolumeSizeInGB": 0},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spot,
        "Environment": dict(env),
        "Local": {"Backend": backend, "Pid": os.getpid(), "ProcessStart": process_start(os.getpid())},
    }
    if checkpoint_dir is not None:
        fields["CheckpointConfig"] = {"S3Uri": checkpoint_dir.resolve().as_uri() + "/",
                                      "LocalPath": checkpoint_local_path}
    return fields


def process_start(pid: int) -> str | None:
    """When *pid* started (from /proc), to tell a live byoc from a reused pid; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def owner_alive(owner: Mapping[str, object]) -> bool:
    """Whether the byoc a record names (its ``Local`` ``Pid`` and ``ProcessStart``) still runs."""
    pid, started = owner.get("Pid"), owner.get("ProcessStart")
    if not isinstance(pid, int):
        return False
    if started is not None:
        return bool(process_start(pid) == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def link_files(files: Sequence[Path], base: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        destination = target / path.relative_to(base)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)
    return target


@dataclass(frozen=True)
class Collected:
    model_archive: Path
    output_archive: Path
    failure_reason: str | None
    failed_host: str | None
    notes: list[str]
    #: How many files the model archive holds (0: the job saved no model).
    model_files: int = 0


def collect(job_dir: Path, hosts: Sequence[HostSpec], statuses: Mapping[str, int]) -> Collected:
    """Pack every host's model and output/data into two flat archives, failed job or not."""
    trees = [contract.OptMl(host.root) for host in hosts]
    model_archive = job_dir / "model.tar.gz"
    output_archive = job_dir / "output.tar.gz"
    notes, model_files = archive.pack([tree.model_dir for tree in trees], model_archive)
    notes += archive.pack([tree.output_data_dir for tree in trees], output_archive)[0]
    failed = [host for host in hosts if statuses.get(host.host, -1) != 0]
    reason = None
    for host in failed:
        reason = contract.read_failure(host.root)
        if reason is not None:
            shutil.copy2(contract.OptMl(host.root).failure_file, job_dir / "failure")
            break
    return Collected(model_archive, output_archive, reason, failed[0].host if failed else None, notes,
                     model_files)


def claim_job_dir(jobs_dir: Path, job_name: str) -> Path:
    """Create the job's directory, which claims the name: of two runs started with one name,
    the second is refused here, however close together they start.

    :raises ConfigError: when a job of that name exists, or the directory cannot be created
        (a read-only folder).
    """
    job_dir = jobs_dir / job_name
    try:
        jobs_dir.mkdir(parents=True, exist_ok=True)
        job_dir.mkdir()
    except FileExistsError:
        raise job_exists(job_name, jobs_dir) from None
    except OSError as exc:
        raise ConfigError(f"cannot create the job directory {job_dir}:"
                          f" {exc.strerror or exc}; pick a writable --output-dir") from None
    return job_dir


def job_exists(job_name: str, jobs_dir: Path) -> ConfigError:
    return ConfigError(f"a job named {job_name} exists in {jobs_dir}; pick another --job-name")


def remove_tree(path: Path) -> None:
    """Remove *path*, also where read-only directories are in the way."""
    def make_writable(function: object, name: str, error: object) -> None:
        parent = os.path.dirname(name)
        os.chmod(parent, stat.S_IMODE(os.stat(parent).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
        if os.path.isdir(name) and not os.path.islink(name):
            _rmtree(Path(name), make_writable)
        else:
            os.unlink(name)

    if path.exists():
        _rmtree(path, make_writable)


def _rmtree(path: Path, handler: Callable[[object, str, object], None]) -> None:
    if sys.version_info >= (3, 12):  # onerror is deprecated there
        shutil.rmtree(path, onexc=handler)
    else:
        shutil.rmtree(path, onerror=handler)
