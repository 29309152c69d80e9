"""TuningJobCompletionCriteria: when a tuning job ends before MaxNumberOfTrainingJobs.

Fed with each training job as it ends, in the order they end:

- ``TargetObjectiveMetricValue``: a job's objective reaches the value.
- ``BestObjectiveNotImproving``: ``MaxNumberOfTrainingJobsNotImproving`` jobs in a row
  did not better the best objective by at least 1% (a job without an objective does not).
- ``ConvergenceDetected`` with ``CompleteOnConvergence: Enabled``: the service stops
  once it judges that more jobs are unlikely to better the best by more than 1%; its
  rule is not published. byoc's rule (inferred): once at least :data:`CONVERGENCE_MIN_JOBS`
  jobs have an objective, the last ``max(5, 20% of them)`` jobs with an objective brought
  no improvement of 1% or more, and at least half of them came within 1% of the best:
  the search keeps returning to the best without bettering it. A search still spread
  over the space (Random, or Bayesian while it explores) does not meet the second half.

The counts are reported as DescribeHyperParameterTuningJob's ``TuningJobCompletionDetails``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..local import scanner as metrics
from .config import IMPROVEMENT, TuningRequest

#: Convergence is judged only once this many jobs have an objective.
CONVERGENCE_MIN_JOBS = 10
#: ... over a window of the latest jobs: at least this many, or this share of them.
CONVERGENCE_WINDOW = 5
CONVERGENCE_SHARE = 0.2


@dataclass
class Completion:
    request: TuningRequest
    best: float | None = None
    not_improving: int = 0
    converged: datetime | None = None
    #: Each job with an objective, in the order they ended: (value, improved the best by 1%).
    history: list[tuple[float, bool]] = field(default_factory=list)

    def improves(self, value: float, best: float | None) -> bool:
        """Better than *best* by at least 1% (the service's measure of improving)."""
        if best is None:
            return True
        margin = abs(best) * IMPROVEMENT
        return value < best - margin if self.request.minimize else value > best + margin

    def add(self, value: float | None) -> str | None:
        """A training job ended with objective *value* (None: none); why the tuning job ends now,
        or None."""
        if value is None:
            self.not_improving += 1
        else:
            improved = self.improves(value, self.best)
            self.not_improving = 0 if improved else self.not_improving + 1
            self.history.append((value, improved))
            if self.request.better(value, self.best):
                self.best = value
        if value is not None and self.request.reaches_target(value):
            return f"TargetObjectiveMetricValue {self.request.target_value} reached"
        limit = self.request.not_improving
        if limit is not None and self.not_improving >= limit:
            return f"{self.not_improving} training jobs did not improve the objective by 1%"
        if self.converged is None and self._converged():
            self.converged = datetime.now(UTC)
            if self.request.complete_on_convergence:
                return "convergence detected: the latest jobs came near the best without bettering it"
        return None

    def seed(self, value: float | None) -> str | None:
        """A job of an earlier run of this tuning job (``--resume``), counted as :meth:`add`
        counts it; why that run had already met a criterion, or None."""
        return self.add(value)

    def _converged(self) -> bool:
        if len(self.history) < CONVERGENCE_MIN_JOBS or self.best is None:
            return False
        size = max(CONVERGENCE_WINDOW, math.ceil(CONVERGENCE_SHARE * len(self.history)))
        window = self.history[-size:]
        if any(improved for _, improved in window):
            return False
        near = [value for value, _ in window if not self.improves(self.best, value)]
        return 2 * len(near) >= len(window)  # half of them within 1% of the best

    def details(self) -> dict[str, Any]:
        """DescribeHyperParameterTuningJob's TuningJobCompletionDetails."""
        result: dict[str, Any] = {"NumberOfTrainingJobsObjectiveNotImproving": self.not_improving}
        if self.converged is not None:
            result["ConvergenceDetectedTime"] = metrics.iso(self.converged)
        return result
