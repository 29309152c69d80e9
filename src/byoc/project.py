"""A byoc project on disk and its ``byoc.toml``.

``byoc.toml`` is parsed here, once per project (:class:`ProjectConfig`); every other module takes
its section from :attr:`Project.config`: ``[project]`` and ``[aws]`` here, ``[train]``
(:meth:`byoc.job.InputOptions.from_config`), ``[[metric_definitions]]``
(:func:`byoc.job.metrics.from_config`), ``[sagemaker]`` (``SageMakerConfig.of``), ``[build]`` and
``[experiment]`` (:meth:`ProjectConfig.experiment`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from . import contract
from .errors import ConfigError

CONFIG_FILE = "byoc.toml"
#: In ``.byoc/jobs``: the name of the last local training job that succeeded.
LATEST = "latest"
#: Sample request bodies in ``local_test``; the first by name is the project's payload.
PAYLOAD_GLOB = "payload.*"
#: The keys of ``[experiment]``.
EXPERIMENT_KEYS = ("name", "tracking_uri")


@dataclass(frozen=True)
class LocalInputs:
    """What a project's ``local_test/test_dir`` offers a training job."""

    channels: dict[str, Path]
    hyperparameters: dict[str, Any]
    content_types: dict[str, str]


@dataclass(frozen=True)
class ProjectConfig:
    """``byoc.toml`` parsed once; one property per section (an absent section is empty)."""

    path: Path
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ProjectConfig:
        """:raises ConfigError: for a file that cannot be read or is not TOML."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"cannot read {path}: it nests arrays or tables too deeply") from None
        return cls(path, data)

    def table(self, name: str) -> dict[str, Any]:
        """The ``[name]`` table (empty when absent). :raises ConfigError: when it is not a table."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return value

    @property
    def project(self) -> dict[str, Any]:
        return self.table("project")

    @property
    def aws(self) -> dict[str, Any]:
        return self.table("aws")

    @property
    def train(self) -> dict[str, Any]:
        """``[train]``: the job's input settings (read by ``InputOptions.from_config``)."""
        return self.table("train")

    @property
    def sagemaker(self) -> dict[str, Any]:
        return self.table("sagemaker")

    @property
    def build(self) -> dict[str, Any]:
        return self.table("build")

    @property
    def experiment(self) -> dict[str, str]:
        """``[experiment]``: the MLflow experiment local jobs are logged to (``name``) and,
        optionally, the tracking store (``tracking_uri``; ``MLFLOW_TRACKING_URI`` wins over it).

        :raises ConfigError: for another key, or a value that is not a non-empty string.
        """
        table = self.table("experiment")
        for key, value in table.items():
            if key not in EXPERIMENT_KEYS:
                raise ConfigError(f"{self.path}: [experiment] has no key {key!r}"
                                  f" (it takes {', '.join(EXPERIMENT_KEYS)})")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{self.path}: [experiment] {key} must be a non-empty string,"
                                  f" got {value!r}")
        return {key: value.strip() for key, value in table.items()}

    @property
    def metric_definitions(self) -> list[Any]:
        """``[[metric_definitions]]``: the raw tables (checked by ``byoc.job.metrics.from_config``)."""
        items = self.data.get("metric_definitions", [])
        if not isinstance(items, list):
            raise ConfigError(f"{self.path}: metric_definitions must be an array of tables")
        return items


@dataclass(frozen=True)
class Project:
    """What byoc knows of a project: its root and the settings of ``byoc.toml``."""

    root: Path
    name: str
    program: str
    image: str
    region: str | None = None
    repository: str | None = None
    #: Its ``byoc.toml``, parsed once.
    config: ProjectConfig = field(default_factory=lambda: ProjectConfig(Path(CONFIG_FILE)),
                                  compare=False, repr=False)

    @property
    def program_dir(self) -> Path:
        """``container/<program>``: where ``train`` and ``serve`` live."""
        return self.root / "container" / self.program

    @property
    def test_dir(self) -> Path:
        """``local_test/test_dir``: the fake /opt/ml inputs for local runs."""
        return self.root / "local_test" / "test_dir"

    @property
    def state_dir(self) -> Path:
        """``.byoc/``: local jobs and their artifacts."""
        return self.root / ".byoc"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    def local_inputs(self) -> LocalInputs:
        """Channels (the directories of ``input/data``), hyperparameters and content types.

        :raises ConfigError: for a config file that is not a JSON object.
        """
        tree = contract.OptMl(self.test_dir)
        channels = {p.name: p for p in sorted(tree.data_dir.glob("*")) if p.is_dir()} \
            if tree.data_dir.is_dir() else {}
        config = contract.read_training_config(self.test_dir)
        types = {name: channel.content_type for name, channel in config.channels.items()
                 if channel.content_type}
        return LocalInputs(channels, config.hyperparameters, types)

    @property
    def payload(self) -> Path | None:
        """``local_test/payload.*`` (the first by name): the sample request body."""
        found = sorted((self.root / "local_test").glob(PAYLOAD_GLOB))
        return found[0] if found else None

    @property
    def latest_model(self) -> Path | None:
        """The ``model.tar.gz`` of the last local training job that succeeded, if any."""
        pointer = self.jobs_dir / LATEST
        if not pointer.is_file():
            return None
        archive_path = self.jobs_dir / pointer.read_text(encoding="utf-8").strip() / "model.tar.gz"
        return archive_path if archive_path.is_file() else None

    @overload
    @classmethod
    def find(cls, path: Path | None = None, *, required: Literal[True] = True) -> Project: ...

    @overload
    @classmethod
    def find(cls, path: Path | None = None, *, required: bool) -> Project | None: ...

    @classmethod
    def find(cls, path: Path | None = None, *, required: bool = True) -> Project | None:
        """The project whose ``byoc.toml`` is in *path* (default: the current directory) or a parent.

        This is byoc's one rule for "which project". A *path* given must lead to a
        project; without one, ``required=False`` makes being outside a project fine
        (None). A ``byoc.toml`` that is found but cannot be read is always an error.

        :raises ConfigError: when a required project is missing or its ``byoc.toml`` is bad.
        """
        start = (path or Path.cwd()).resolve()
        if path is not None and not start.is_dir():
            raise ConfigError(f"{path} is not a directory")
        for directory in (start, *start.parents):
            if (directory / CONFIG_FILE).is_file():
                return cls.from_file(directory / CONFIG_FILE)
        if not required and path is None:
            return None
        raise ConfigError(f"no {CONFIG_FILE} in {start} or its parents: not a byoc project"
                          " (create one with `byoc new NAME`)")

    @classmethod
    def load(cls, path: Path | None = None) -> Project:
        """:meth:`find` with the project required."""
        return cls.find(path)

    @classmethod
    def from_file(cls, path: Path) -> Project:
        config = ProjectConfig.read(path)
        section = config.project
        aws = config.aws
        name = section.get("name") or path.parent.name
        fields = {"name": name, "program": section.get("program") or name.replace("-", "_"),
                  "image": section.get("image") or name,
                  "region": aws.get("region") or None, "repository": aws.get("repository") or None}
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{path}: {key} must be a string, got {value!r}")
        return cls(root=path.parent, name=str(fields["name"]), program=str(fields["program"]),
                   image=str(fields["image"]), region=fields["region"],
                   repository=fields["repository"], config=config)


def record_latest(jobs_dir: Path, job_dir: Path) -> None:
    """Point ``.byoc/jobs/latest`` at *job_dir*: the last training job that succeeded."""
    (jobs_dir / LATEST).write_text(job_dir.name + "\n", encoding="utf-8")
