"""Running a byoc project on Amazon SageMaker itself: training (with spot, checkpoints and many
instances), tuning, batch transform and endpoints, from the same job definition as a local run.

Modules: :mod:`._aws` (region, account, role, bucket, every call), :mod:`.storage` (channels up,
artifacts down), :mod:`.image` (the image URI), :mod:`.training`, :mod:`.watch`, :mod:`.tuning`,
:mod:`.batch` and :mod:`.hosting`; :class:`Aws` and :class:`SageMakerConfig` are imported from
the package itself. Nothing here is imported by ``import byoc``; boto3 is imported
when a command runs.
"""

from ._aws import Aws as Aws
from ._aws import SageMakerConfig as SageMakerConfig
