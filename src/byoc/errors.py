"""Every error byoc reports to a user: one line, with its own exit code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class ByocError(Exception):
    """Base of byoc's errors. The CLI shows ``Error: <message>`` and exits with :attr:`exit_code`."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: More lines shown under the message (a log tail, a hint).
        self.detail = detail


class ConfigError(ByocError):
    """Bad input from the user: an option, a name, a config file."""

    exit_code = 2


class JobFieldError(ConfigError):
    """A training job setting refused, worded by the names of the fields it concerns.

    *template* names each field as a ``{Field}`` placeholder (CreateTrainingJob's name, such as
    ``{MaxWaitTimeInSeconds}``), filled from *names*: how the user gave that field. The job's
    validator words it for the command line; a layer that read the setting elsewhere (a request
    file) words it again with its own names (:meth:`worded`).
    """

    def __init__(self, template: str, names: Mapping[str, str], *, detail: str = "") -> None:
        super().__init__(template.format_map(names), detail=detail)
        self.template = template

    def worded(self, names: Mapping[str, str]) -> JobFieldError:
        """This error with the fields named by *names*."""
        return JobFieldError(self.template, names, detail=self.detail)


class ProjectExistsError(ByocError):
    """The target directory of ``byoc new`` exists already."""


class DockerUnavailableError(ByocError):
    """No Docker engine answers."""


class ImageNotFoundError(ByocError):
    """The image to run is not in the local engine."""


class BuildError(ByocError):
    """``docker build`` failed; :attr:`detail` holds the tail of its log."""


class PushError(ByocError):
    """The registry refused the image or could not be reached."""


class BenchError(ByocError):
    """``byoc local bench`` could not measure: the load generator or the server failed."""


class AwsError(ByocError):
    """An AWS call failed (credentials, permissions, region)."""


class ContainerFailedError(ByocError):
    """A training job exited non-zero."""

    def __init__(self, message: str, *, exit_status: int, failure_reason: str | None,
                 detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.exit_status = exit_status
        self.failure_reason = failure_reason


class JobStoppedError(ByocError):
    """A training job was stopped by a time limit (MaxRuntimeInSeconds, MaxWaitTimeInSeconds)."""


class ServeError(ByocError):
    """A server did not become ready or stopped on its own."""


class PortInUseError(ByocError):
    """The port to publish is taken."""


class ArchiveError(ByocError):
    """A model archive is unsafe or unreadable."""


class PredictError(ByocError):
    """An invocation was refused or answered with an error."""


class Interrupted(ByocError):
    """The user stopped byoc (Ctrl-C or SIGTERM); everything was cleaned up."""

    exit_code = 130


class Terminated(Interrupted):
    """byoc got SIGTERM; everything was cleaned up. Exits 143 (128 + SIGTERM), as is customary."""

    exit_code = 143


class CannotValidateError(ByocError):
    """``byoc validate`` could not put the image through its checks (no engine, no image)."""

    exit_code = 2


# -- SageMaker -------------------------------------------------------------------------------------


class TrainingJobFailed(ByocError):
    """A SageMaker training job ended Failed."""


class TrainingJobStopped(ByocError):
    """A SageMaker training job ended Stopped (by a user, or a time limit)."""

    exit_code = 3


class ProcessingJobFailed(ByocError):
    """A SageMaker processing job ended Failed (exit code as :class:`TrainingJobFailed`'s)."""


class ProcessingJobStopped(ByocError):
    """A SageMaker processing job ended Stopped (exit code as :class:`TrainingJobStopped`'s)."""

    exit_code = 3


# -- batch transform -------------------------------------------------------------------------------


class ParameterError(ConfigError):
    """A setting CreateTransformJob (or the container's execution parameters) would refuse."""


class InputError(ConfigError):
    """The input or output location of a transform job cannot be used."""


class TransformError(ByocError):
    """The transform job failed: a file's record could not be transformed."""


class OutputLinkError(TransformError):
    """A folder on an output's way is a symbolic link: writing there could land anywhere."""


class SplitError(TransformError):
    """The file does not hold records of the split type; the message says where."""


class RecordTooLargeError(TransformError):
    """A record alone exceeds MaxPayloadInMB."""

    def __init__(self, index: int, offset: int, size: int, limit: int) -> None:
        super().__init__(f"record {index} (byte {offset}) is {size} bytes, more than MaxPayloadInMB"
                         f" allows ({limit} bytes); raise --max-payload or split the input finer")
        self.index = index


class JsonPathError(TransformError):
    """A JSONPath expression outside the subset, or a record it cannot be applied to."""


class DataProcessingError(TransformError):
    """A record or an answer that the filters or the join cannot take."""


class InvocationFailed(PredictError):
    """The container did not answer a batch request with 2xx; the message says what it answered."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EnvironmentBuildError(ByocError):
    """The project's environment could not be built (a bad pin, no package index, no uv)."""


class UpstreamError(ByocError):
    """A container behind byoc's hosting front did not answer (refused, reset or timed out)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class PlatformRefusal(ByocError):
    """byoc's hosting front refuses an invocation as the platform would: *status* is the HTTP
    status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
