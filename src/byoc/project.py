"""A byoc project on disk and its ``byoc.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

CONFIG_FILE = "byoc.toml"


@dataclass(frozen=True)
class Project:
    """What byoc knows of a project: its root and the settings of ``byoc.toml``."""

    root: Path
    name: str
    program: str
    image: str
    region: str | None = None
    repository: str | None = None

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

    @classmethod
    def load(cls, path: Path | None = None) -> Project:
        """Find ``byoc.toml`` in *path* (default: the current directory) or its parents.

        :raises ConfigError: when there is none or it cannot be read.
        """
        start = (path or Path.cwd()).resolve()
        if path is not None and not start.is_dir():
            raise ConfigError(f"{path} is not a directory")
        for directory in (start, *start.parents):
            if (directory / CONFIG_FILE).is_file():
                return cls.from_file(directory / CONFIG_FILE)
        raise ConfigError(f"no {CONFIG_FILE} in {start} or its parents: not a byoc project"
                          " (create one with `byoc new NAME`)")

    @classmethod
    def from_file(cls, path: Path) -> Project:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        section = data.get("project", {})
        aws = data.get("aws", {})
        name = section.get("name") or path.parent.name
        fields = {"name": name, "program": section.get("program") or name.replace("-", "_"),
                  "image": section.get("image") or name,
                  "region": aws.get("region") or None, "repository": aws.get("repository") or None}
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{path}: {key} must be a string, got {value!r}")
        return cls(root=path.parent, name=str(fields["name"]), program=str(fields["program"]),
                   image=str(fields["image"]), region=fields["region"],
                   repository=fields["repository"])
