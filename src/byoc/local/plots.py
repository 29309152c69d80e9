"""PNG plots of metrics and tuning results; matplotlib is the optional extra ``byoc[plots]``."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class Sample(Protocol):
    """One metric value (:class:`byoc.local.scanner.Sample` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def host(self) -> str: ...

MISSING = "no plot: matplotlib is not installed (pip install 'byoc[plots]')"


def _pyplot(say: Callable[[str], None] | None) -> Any:
    try:
        import matplotlib
    except ImportError:
        if say is not None and _first_time_here():
            say(f"note: {MISSING}")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _first_time_here() -> bool:
    """Whether the missing matplotlib was not yet told for this Python environment (a marker in
    byoc's cache directory, one per ``sys.prefix``); True when the marker cannot be written."""
    from ..backends.envs import cache_dir

    key = hashlib.sha256(sys.prefix.encode()).hexdigest()[:16]
    marker = cache_dir() / "notes" / f"matplotlib-missing-{key}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        with marker.open("x", encoding="utf-8") as handle:
            handle.write(sys.prefix + "\n")
    except FileExistsError:
        return False
    except OSError:
        pass
    return True


def metrics_over_time(samples: Sequence[Sample], target: Path, title: str,
                      say: Callable[[str], None] | None = None) -> bool:
    """One panel per metric, one line per host, seconds since the first sample on x."""
    plt = _pyplot(say)
    if plt is None:
        return False
    names = list(dict.fromkeys(sample.name for sample in samples))
    start = min(sample.timestamp for sample in samples)
    figure, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=True):
        hosts = sorted({sample.host for sample in samples if sample.name == name})
        for host in hosts:
            points = [s for s in samples if s.name == name and s.host == host]
            axis.plot([(s.timestamp - start).total_seconds() for s in points],
                      [s.value for s in points], marker=".", label=host)
        axis.set_title(name)
        axis.set_xlabel("seconds")
        if len(hosts) > 1:
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
    return True


def tuning_results(objectives: Sequence[float | None], tuned: Sequence[Mapping[str, str]],
                   metric: str, target: Path, title: str,
                   say: Callable[[str], None] | None = None) -> bool:
    """The objective per job in order, then each tuned hyperparameter against the objective."""
    plt = _pyplot(say)
    if plt is None:
        return False
    names = list(dict.fromkeys(name for params in tuned for name in params))
    figure, axes = plt.subplots(1 + len(names), 1, figsize=(7, 2.8 * (1 + len(names))), squeeze=False)
    order = [i + 1 for i, value in enumerate(objectives) if value is not None]
    values = [value for value in objectives if value is not None]
    axes[0, 0].plot(order, values, marker="o", linestyle="")
    axes[0, 0].set_xlabel("training job")
    axes[0, 0].set_ylabel(metric)
    axes[0, 0].set_title("objective per training job")
    for axis, name in zip(axes[1:, 0], names, strict=True):
        pairs = [(params[name], value) for params, value in zip(tuned, objectives, strict=True)
                 if value is not None and name in params]
        try:
            xs: list[Any] = [float(x) for x, _ in pairs]
        except ValueError:
            xs = [str(x) for x, _ in pairs]
        axis.scatter(xs, [y for _, y in pairs])
        axis.set_xlabel(name)
        axis.set_ylabel(metric)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
    return True
