"""``byoc push``: ship an image to Amazon ECR (:mod:`.ecr`: repository and login token) or to
any OCI registry; :mod:`.registry` builds, tags and pushes it through the Docker engine."""

from .registry import PushResult as PushResult
from .registry import push as push
