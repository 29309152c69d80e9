"""A training job as one value: what CreateTrainingJob takes, apart from where it runs.

:class:`JobDefinition` (:mod:`.definition`) is the one representation of a training job below the
CLI; it is built in one place (:mod:`.sources`: from a project and the job options) and checked by
one validator, :meth:`JobDefinition.validate`, against one table of the service's limits
(:mod:`.limits`); its channels' settings come from the options and ``byoc.toml``
(:class:`InputOptions`, :mod:`.settings`). Its metric definitions are :class:`MetricDefinition`
(:mod:`.metrics`). A processing job (CreateProcessingJob) is one :class:`ProcessingJobDefinition`
in the same way (:mod:`.processing`), built from the command line by
:func:`processing_from_options`.
Nothing here talks to AWS or Docker.
"""

from __future__ import annotations

from .definition import (
    DEFAULT_CHECKPOINT_PATH,
    LOCAL_INSTANCE_TYPE,
    LOCAL_ROLE,
    ChannelDefinition,
    JobDefinition,
    channel_files,
    check_channels,
    check_job_name,
    default_job_name,
    is_s3,
    with_slash,
)
from .limits import DEFAULT_MAX_RUNTIME, DEFAULT_VOLUME_GB
from .metrics import MetricDefinition
from .processing import (
    ProcessingInput,
    ProcessingJobDefinition,
    ProcessingOutput,
    processing_from_options,
)
from .settings import InputOptions
from .sources import (
    from_project,
    from_tuning_request,
    hyperparameters,
    lay_options_over,
    parse_duration,
    request_channels,
    seconds,
)

__all__ = ["DEFAULT_CHECKPOINT_PATH", "DEFAULT_MAX_RUNTIME", "DEFAULT_VOLUME_GB",
           "LOCAL_INSTANCE_TYPE", "LOCAL_ROLE", "ChannelDefinition", "InputOptions", "JobDefinition",
           "MetricDefinition", "ProcessingInput", "ProcessingJobDefinition", "ProcessingOutput",
           "channel_files", "check_channels", "check_job_name", "default_job_name",
           "from_project", "from_tuning_request", "hyperparameters", "is_s3", "lay_options_over",
           "parse_duration", "processing_from_options", "request_channels", "seconds",
           "with_slash"]
