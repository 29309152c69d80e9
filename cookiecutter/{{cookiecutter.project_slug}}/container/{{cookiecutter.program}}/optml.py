"""Runtime: you should not need to edit this. The /opt/ml tree SageMaker mounts into the container.

Its names are those of byoc's own contract module, which writes this tree for
local runs. Every path hangs off ``SAGEMAKER_BASE_DIR`` (default ``/opt/ml``), read when the
program runs, so the same code runs in the container and as a plain process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"

#: SageMaker shows only this many characters of ``output/failure`` as FailureReason.
FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class OptMl:
    """Paths of the SageMaker container contract under one root."""

    root: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OptMl:
        environ = os.environ if environ is None else environ
        return cls(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_json(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_json(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_json(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def checkpointconfig_json(self) -> Path:
        return self.config_dir / "checkpointconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def message_file(self) -> Path:
        """A processing job's one-line summary (its ExitMessage)."""
        return self.output_dir / "message"

    @property
    def processing_dir(self) -> Path:
        """Where a processing job's inputs and outputs live by convention."""
        return self.root / "processing"


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON object from *path*.

    :raises ValueError: if the file is not valid JSON or not an object.
    :raises FileNotFoundError: if the file does not exist.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError:  # json recurses once per level: [[[[... exhausts the stack
        raise ValueError(f"{path} is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data
