"""``byoc local tune``: SageMaker's CreateHyperParameterTuningJob request, run locally."""

from .config import TuningRequest, load, parse
from .runner import Tuner, TuningResult, prepare

__all__ = ["TuningRequest", "Tuner", "TuningResult", "load", "parse", "prepare"]
