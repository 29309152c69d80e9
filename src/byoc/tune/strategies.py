"""The tuning strategies: which hyperparameters the next training job gets.

``Random`` and ``Grid`` are a few lines and run without optuna. ``Bayesian``
asks optuna's TPE sampler (a Bayesian optimizer over completed results, as
the service describes its own); ``Hyperband`` uses the same sampler with
optuna's HyperbandPruner, fed with each job's intermediate objective values
(one per epoch) and stopping the jobs it prunes. Early stopping ``Auto`` is
the service's documented median rule (:class:`MedianRule`).
"""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError
from .config import TuningRequest
from .ranges import CategoricalRange, NumericRange, Range, tuned_value

COMPLETE, FAILED, STOPPED = "complete", "failed", "stopped"


@dataclass
class Trial:
    number: int
    tuned: dict[str, str]
    handle: Any = None


class Strategy(Protocol):
    def ask(self, number: int) -> Trial | None:
        """Hyperparameters for job *number* (1-based), or None when there are no more."""

    def report(self, trial: Trial, step: int, value: float) -> bool:
        """An intermediate objective value; True when the job should stop now."""

    def tell(self, trial: Trial, value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        """The job's final objective (None without one) and how it ended."""

    def seed(self, tuned: Mapping[str, str], value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        """A result from an earlier run (``--resume``) or a warm-start parent."""


def check_available(request: TuningRequest) -> None:
    """:raises ConfigError: when the request's strategy needs a package that is not installed."""
    if request.strategy in ("Bayesian", "Hyperband"):
        _optuna()


def make(request: TuningRequest) -> Strategy:
    if request.strategy == "Random":
        return RandomStrategy(request.ranges, request.seed)
    if request.strategy == "Grid":
        return GridStrategy(request.grid())
    return OptunaStrategy(request)


class _Blind:
    """A strategy that learns nothing from results (Random and Grid)."""

    def report(self, trial: Trial, step: int, value: float) -> bool:
        return False

    def tell(self, trial: Trial, value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        pass

    def seed(self, tuned: Mapping[str, str], value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        pass


class RandomStrategy(_Blind):
    """Each job draws every parameter independently, uniformly in the range's scale."""

    def __init__(self, ranges: Sequence[Range], seed: int | None) -> None:
        self.ranges = list(ranges)
        self.seed_value = seed
        self._fallback = random.Random()

    def ask(self, number: int) -> Trial | None:
        rng = random.Random(f"{self.seed_value}-{number}") if self.seed_value is not None \
            else self._fallback
        tuned = {item.name: tuned_value(item, item.sample(rng)) for item in self.ranges}
        return Trial(number, tuned)


class GridStrategy(_Blind):
    """Every combination of the categorical values once, in order."""

    def __init__(self, combinations: Sequence[Mapping[str, str]]) -> None:
        self.pending = [dict(c) for c in combinations]
        self._lock = threading.Lock()

    def ask(self, number: int) -> Trial | None:
        with self._lock:
            return Trial(number, self.pending.pop(0)) if self.pending else None

    def seed(self, tuned: Mapping[str, str], value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        """A combination an earlier run (``--resume``) has run is not run again."""
        with self._lock:
            if dict(tuned) in self.pending:
                self.pending.remove(dict(tuned))


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("the Bayesian and Hyperband strategies need optuna:"
                          " pip install 'byoc[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaStrategy:
    """Bayesian (TPE) and Hyperband (TPE + HyperbandPruner) through optuna's ask/tell API."""

    def __init__(self, request: TuningRequest) -> None:
        optuna = _optuna()
        self.optuna = optuna
        self.ranges = {item.name: item for item in request.ranges}
        self.distributions = {item.name: self._distribution(item) for item in request.ranges}
        startup = max(3, min(10, request.max_jobs // 6))  # random jobs before TPE takes over
        sampler = optuna.samplers.TPESampler(seed=request.seed, n_startup_trials=startup)
        pruner: Any = optuna.pruners.NopPruner()
        if request.strategy == "Hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=request.hyperband_min,
                                                    max_resource=request.hyperband_max)
        self.study = optuna.create_study(
            direction="minimize" if request.minimize else "maximize", sampler=sampler, pruner=pruner)
        self._lock = threading.Lock()

    def _distribution(self, item: Range) -> Any:
        dist = self.optuna.distributions
        if isinstance(item, CategoricalRange):
            return dist.CategoricalDistribution(list(item.values))
        scaling = item.effective_scaling
        if scaling == "ReverseLogarithmic":  # sampled as 1 - x on a log scale
            return dist.FloatDistribution(1.0 - item.high, 1.0 - item.low, log=True)
        log = scaling == "Logarithmic"
        if item.integer:
            return dist.IntDistribution(int(item.low), int(item.high), log=log)
        return dist.FloatDistribution(item.low, item.high, log=log)

    def _to_string(self, name: str, value: Any) -> str:
        item = self.ranges[name]
        if isinstance(item, NumericRange) and item.effective_scaling == "ReverseLogarithmic":
            return item.format(item.clip(1.0 - float(value)))
        return tuned_value(item, value)

    def _from_string(self, name: str, text: str) -> Any:
        item = self.ranges[name]
        if isinstance(item, CategoricalRange):
            return text if text in item.values else None
        value = item.parse(text)
        if value is None:
            return None
        if item.effective_scaling == "ReverseLogarithmic":
            return 1.0 - value
        return int(value) if item.integer else value

    def ask(self, number: int) -> Trial | None:
        with self._lock:
            trial = self.study.ask(self.distributions)
            tuned = {name: self._to_string(name, value) for name, value in trial.params.items()}
        return Trial(number, tuned, trial)

    def report(self, trial: Trial, step: int, value: float) -> bool:
        with self._lock:
            trial.handle.report(value, step)
            return bool(trial.handle.should_prune())

    def tell(self, trial: Trial, value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        state = self.optuna.trial.TrialState
        with self._lock:
            if outcome == COMPLETE and value is not None:
                self.study.tell(trial.handle, value)
            elif outcome == STOPPED:
                self.study.tell(trial.handle, state=state.PRUNED)
            else:
                self.study.tell(trial.handle, state=state.FAIL)

    def seed(self, tuned: Mapping[str, str], value: float | None, outcome: str,
             curve: Sequence[float] = ()) -> None:
        params = {name: self._from_string(name, tuned.get(name, "")) for name in self.ranges}
        if any(v is None for v in params.values()):
            return  # outside this job's ranges: nothing the sampler can use
        state = self.optuna.trial.TrialState
        kwargs: dict[str, Any] = {"params": params, "distributions": self.distributions}
        if outcome == COMPLETE and value is not None:
            kwargs.update(state=state.COMPLETE, value=value)
        elif outcome == STOPPED and curve:
            kwargs.update(state=state.PRUNED,
                          intermediate_values={i + 1: v for i, v in enumerate(curve)})
        else:
            return
        with self._lock:
            self.study.add_trial(self.optuna.trial.create_trial(**kwargs))


@dataclass
class MedianRule:
    """Early stopping ``Auto``: after each epoch, stop a job whose objective is worse than the
    median of the earlier jobs' running averages up to that epoch."""

    minimize: bool
    curves: dict[int, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, number: int, value: float) -> bool:
        """Record job *number*'s value for its next epoch; True when it should stop."""
        with self._lock:
            curve = self.curves.setdefault(number, [])
            curve.append(value)
            step = len(curve)
            averages = [statistics.fmean(other[:step]) for n, other in self.curves.items()
                        if n < number and len(other) >= step]
        if not averages:
            return False
        median = statistics.median(averages)
        return value > median if self.minimize else value < median

    def seed(self, number: int, curve: Sequence[float]) -> None:
        with self._lock:
            self.curves[number] = list(curve)
