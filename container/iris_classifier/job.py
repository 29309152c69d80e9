"""Runtime: you should not need to edit this. What ``model.fit`` is given besides the data.

A :class:`Job` carries the typed hyperparameters, this host's place in the
cluster, every configured channel (for a model that reads its own data, such
as several Pipe-mode epochs), where to keep checkpoints, the previous model
to start from (incremental training), and :meth:`Job.report` to print metrics
as training goes.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels import Channel, DataError
from optml import read_json_object

#: The channel SageMaker's incremental training uses for the previous model.
MODEL_CHANNEL = "model"
#: Where SageMaker mounts the job's files.
OPT_ML = Path("/opt/ml")


@dataclass(frozen=True)
class Job:
    params: dict[str, Any]
    host: str = "algo-1"
    hosts: list[str] = field(default_factory=lambda: ["algo-1"])
    channels: Mapping[str, Channel] = field(default_factory=dict)
    #: Files saved here are kept (synced to S3) and restored when the job is run again:
    #: resume from what is there. None without checkpointconfig.json or /opt/ml/checkpoints.
    checkpoint_dir: Path | None = None
    #: The previous model's files (the ``model`` channel, unpacked), or None.
    previous_model_dir: Path | None = None

    @property
    def is_first_host(self) -> bool:
        """Whether this host writes the model (and should write checkpoints)."""
        return self.host == sorted(self.hosts)[0]

    def report(self, metrics: Mapping[str, float], channel: str, epoch: int | None = None) -> None:
        """Print *metrics* as ``<channel>:<name>=<value>;``, one line, with the epoch if given.

        A MetricDefinition regex such as ``validation:rmse=([-+0-9.eE]+);`` reads them.
        """
        prefix = f"epoch={epoch} " if epoch is not None else ""
        print(prefix + " ".join(f"{channel}:{name}={value:.6g};" for name, value in metrics.items()),
              flush=True)


def checkpoint_dir(config_file: Path, default: Path) -> Path | None:
    """``LocalPath`` of checkpointconfig.json, *default* if it names none, None without the file.

    *default* is ``<root>/checkpoints``; a ``LocalPath`` under /opt/ml is taken under
    that root, so a tree moved elsewhere (``SAGEMAKER_BASE_DIR``) keeps its checkpoints in it.
    """
    if not config_file.exists():
        return default if default.is_dir() else None
    try:
        local = read_json_object(config_file).get("LocalPath")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    path = Path(local) if local else default
    if path.is_relative_to(OPT_ML):
        path = default.parent / path.relative_to(OPT_ML)
    path.mkdir(parents=True, exist_ok=True)
    return path


def previous_model_dir(channel: Channel | None) -> Path | None:
    """The ``model`` channel's files, a ``*.tar.gz`` in it unpacked first; None without one.

    :raises DataError: for an archive member that would land outside the directory.
    """
    if channel is None:
        return None
    files = channel.files()
    archives = [path for path in files if path.name.endswith(".tar.gz")]
    if not archives:
        return channel.directory
    target = Path(tempfile.mkdtemp(prefix="previous-model-"))
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            inside = (target / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not inside.is_relative_to(target.resolve()):
                raise DataError(f"{archives[0]}: refusing member {member.name!r}:"
                                " only plain files and directories inside the archive")
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            archive.extractall(target, filter="data")
        else:
            archive.extractall(target)  # every member was checked above
    print(f"previous model unpacked from {archives[0]}", file=sys.stderr, flush=True)
    return target
