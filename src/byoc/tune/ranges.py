"""ParameterRanges: Integer, Continuous and Categorical, with SageMaker's ScalingType.

``Linear`` samples uniformly between the bounds; ``Logarithmic`` uniformly in
log space (bounds above 0); ``ReverseLogarithmic`` (continuous only, bounds in
[0, 1)) uniformly in log space of ``1 - x``, so that values crowd towards 1.
``Auto`` lets the tuner choose: log scale when the lower bound is above 0 and
the range spans two orders of magnitude or more, else linear.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
#: Auto picks log scale from this ratio of MaxValue to MinValue on.
AUTO_LOG_RATIO = 100.0


@dataclass(frozen=True)
class NumericRange:
    name: str
    low: float
    high: float
    scaling: str
    integer: bool

    @property
    def effective_scaling(self) -> str:
        if self.scaling != "Auto":
            return self.scaling
        if self.low > 0 and self.high / self.low >= AUTO_LOG_RATIO:
            return "Logarithmic"
        return "Linear"

    def sample(self, rng: random.Random) -> float:
        """A value drawn uniformly in the range's scale."""
        scaling = self.effective_scaling
        if scaling == "Logarithmic":
            if self.integer:
                value = math.exp(rng.uniform(math.log(self.low - 0.5 if self.low > 0.5 else self.low),
                                             math.log(self.high + 0.5)))
            else:
                value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        elif scaling == "ReverseLogarithmic":
            value = 1.0 - math.exp(rng.uniform(math.log(1.0 - self.high), math.log(1.0 - self.low)))
        elif self.integer:
            return float(rng.randint(int(self.low), int(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return self.clip(value)

    def clip(self, value: float) -> float:
        if self.integer:
            value = float(round(value))
        return min(max(value, self.low), self.high)

    def format(self, value: float) -> str:
        """The string the training job receives: ``"7"`` or ``"0.4630125855085939"``."""
        return str(int(round(value))) if self.integer else repr(float(value))

    def parse(self, text: str) -> float | None:
        """A value from an earlier job's string, or None when outside this range."""
        try:
            value = float(text)
        except ValueError:
            return None
        if self.integer and value != round(value):
            return None
        return value if self.low <= value <= self.high else None


@dataclass(frozen=True)
class CategoricalRange:
    name: str
    values: tuple[str, ...]

    def sample(self, rng: random.Random) -> str:
        return rng.choice(self.values)


Range = NumericRange | CategoricalRange


def tuned_value(item: Range, value: Any) -> str:
    return item.format(float(value)) if isinstance(item, NumericRange) else str(value)
