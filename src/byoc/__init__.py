"""byoc: scaffold, run locally and ship Amazon SageMaker bring-your-own-container images.

The verbs live in their modules: :func:`byoc.scaffold.new_project`,
:func:`byoc.images.build`, :func:`byoc.local.train` / :func:`~byoc.local.serve`,
:func:`byoc.invoke.predict`, :func:`byoc.validate.validate`,
:func:`byoc.bench.bench` and :func:`byoc.push.push`. This package re-exports
the types they take and return, the contract helpers and every error.
"""

from importlib.metadata import PackageNotFoundError, version

from .bench import BenchResult as BenchResult
from .contract import Channel as Channel
from .contract import OptMl as OptMl
from .contract import TrainingConfig as TrainingConfig
from .contract import read_failure as read_failure
from .contract import read_training_config as read_training_config
from .contract import write_training_config as write_training_config
from .errors import ArchiveError as ArchiveError
from .errors import AwsError as AwsError
from .errors import BenchError as BenchError
from .errors import BuildError as BuildError
from .errors import ByocError as ByocError
from .errors import CannotValidateError as CannotValidateError
from .errors import ConfigError as ConfigError
from .errors import ContainerFailedError as ContainerFailedError
from .errors import DockerUnavailableError as DockerUnavailableError
from .errors import ImageNotFoundError as ImageNotFoundError
from .errors import Interrupted as Interrupted
from .errors import PortInUseError as PortInUseError
from .errors import PredictError as PredictError
from .errors import ProjectExistsError as ProjectExistsError
from .errors import PushError as PushError
from .errors import ServeError as ServeError
from .images import build as build
from .invoke import Prediction as Prediction
from .local import RunningServer as RunningServer
from .local import TrainResult as TrainResult
from .project import LocalInputs as LocalInputs
from .project import Project as Project
from .push import PushResult as PushResult
from .say import Say as Say
from .scaffold import new_project as new_project
from .validate import Check as Check
from .validate import Report as Report

try:
    __version__ = version("byoc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
