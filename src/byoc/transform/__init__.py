"""``byoc local transform``: batch transform as CreateTransformJob runs it."""

from .params import TransformParams as TransformParams
from .runner import FileFailure as FileFailure
from .runner import TransformResult as TransformResult
from .runner import transform as transform
