"""byoc: scaffold, run locally and ship Amazon SageMaker bring-your-own-container images."""

from importlib.metadata import PackageNotFoundError, version

from .contract import Channel as Channel
from .contract import OptMl as OptMl
from .contract import read_failure as read_failure
from .contract import write_training_config as write_training_config
from .errors import ByocError as ByocError
from .images import build as build
from .project import Project as Project
from .scaffold import new_project as new_project

try:
    __version__ = version("byoc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
