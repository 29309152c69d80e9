"""The service's limits on a training job (CreateTrainingJob), in one table.

:meth:`byoc.job.JobDefinition.validate` checks a job against these and nothing else does; the
tuning request checks its ``TrainingJobDefinition`` by building a definition.
"""

from __future__ import annotations

import re

from .. import contract

#: TrainingJobName: 1-63 letters, digits and hyphens, starting and ending with a letter or digit.
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
CHANNEL_NAME = contract.CHANNEL_NAME
#: Environment: names as a shell takes them, at most :data:`MAX_ENV_TEXT` characters each.
ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_ENV_TEXT = 512
MAX_ENVIRONMENT = 100
MAX_CHANNELS = 20
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
#: ResourceConfig.InstanceCount: at least 1 (the service has no upper bound but the account's quota).
MIN_INSTANCE_COUNT = 1
#: Hosts one local run starts on this machine (an engine limit, not the service's).
MAX_LOCAL_INSTANCES = 20
#: StoppingCondition.MaxRuntimeInSeconds: SageMaker's default (1 day) and maximum (28 days).
DEFAULT_MAX_RUNTIME = 86_400
MAX_RUNTIME_LIMIT = 28 * 86_400
DEFAULT_VOLUME_GB = 30
MAX_VOLUME_GB = 16_384
MAX_TAGS = 50
#: AlgorithmSpecification.MetricDefinitions: how many, and the lengths of Name and Regex.
MAX_METRIC_DEFINITIONS = 40
METRIC_NAME_LIMIT = 255
METRIC_REGEX_LIMIT = 500
#: ShuffleConfig.Seed is a Long.
SEED_RANGE = (-(1 << 63), (1 << 63) - 1)
#: AugmentedManifestFile AttributeNames: how many, and how long each.
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_NAME = 256
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")
INPUT_MODES = contract.INPUT_MODES
DISTRIBUTIONS = contract.DISTRIBUTIONS
RECORD_WRAPPERS = contract.RECORD_WRAPPERS
COMPRESSIONS = contract.COMPRESSIONS

# ---- CreateProcessingJob -----------------------------------------------------------------------
#: Where every input and output of a processing job lives in the container (LocalPath begins
#: with it).
PROCESSING_ROOT = contract.PROCESSING_DIR
#: ProcessingInputs and ProcessingOutputConfig.Outputs: at most 10 each.
MAX_PROCESSING_INPUTS = 10
MAX_PROCESSING_OUTPUTS = 10
#: ClusterConfig.InstanceCount: 1 to 100.
MAX_PROCESSING_INSTANCES = 100
#: StoppingCondition.MaxRuntimeInSeconds of a processing job: at most 9 days (777,600 s).
MAX_PROCESSING_RUNTIME = 777_600
#: S3Input.LocalPath / S3Output.LocalPath: at most 256 characters; S3Uri: at most 1024.
MAX_PROCESSING_LOCAL_PATH = 256
MAX_S3_URI = 1024
#: AppSpecification.ContainerEntrypoint / ContainerArguments: 1-100 items of at most 256 characters.
MAX_APP_ITEMS = 100
MAX_APP_ITEM = 256
#: Environment of a processing job: at most 100 variables, names and values of at most 256.
MAX_PROCESSING_ENV_TEXT = 256
#: InputName / OutputName: byoc's rule (the service sets none), because a name is also a folder
#: (the default LocalPath ``/opt/ml/processing/input/<name>``) and a key under the bucket.
PROCESSING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PROCESSING_INPUT_MODES = ("File", "Pipe")
PROCESSING_DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
PROCESSING_COMPRESSIONS = ("None", "Gzip")
PROCESSING_S3_DATA_TYPES = ("S3Prefix", "ManifestFile")
UPLOAD_MODES = ("EndOfJob", "Continuous")
