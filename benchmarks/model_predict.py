"""Per-call cost of the XGBoost and PyTorch templates' ``predict`` (and ``probabilities``), in one process.

For each framework whose library imports, loads ``cookiecutter/templates/<framework>/model.py``
by path (the generic runtime's modules on ``sys.path``), trains it with its own ``fit`` on the
bundled iris sample, saves the model, loads it back and times ``predict`` for 1, 8 and 1000
rows of C-contiguous float64, as payloads.py hands them over: best of ``--repeat`` timeit
runs, microseconds per call. With ``--against REV`` (default ``main``) the model.py of that
git revision runs side by side in the same process: it trains and saves the model, both
versions load that file (a model saved before must load after), and the script checks that
both give the same answers (values and dtypes) for every objective before timing them.
``--against ''`` times the working tree alone.

    python benchmarks/model_predict.py [--framework xgboost|pytorch] [--against main] [--repeat 7]

Needs numpy and the framework (xgboost-cpu, or torch's CPU build) in the running interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # what serve gives each worker

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "cookiecutter" / "templates"
PROJECT = ROOT / "cookiecutter" / "{{cookiecutter.project_slug}}"
RUNTIME = PROJECT / "container" / "{{cookiecutter.program}}"
IRIS = PROJECT / "local_test" / "test_dir" / "input" / "data" / "training" / "iris.csv"
LIBRARY = {"xgboost": "xgboost", "pytorch": "torch"}
ROWS = (1, 8, 1000)
#: A template call: (model module, loaded model, rows) -> answers.
Call = Callable[[ModuleType, Any, np.ndarray], np.ndarray]
#: Objectives whose answers are compared (the first is the one timed); hyperparameters per run.
CASES: dict[str, list[dict[str, Any]]] = {
    "xgboost": [{"objective": "multi:softprob"}, {"objective": "binary:logistic"},
                {"objective": "multi:softmax"}, {"objective": "reg:squarederror"}],
    "pytorch": [{}],
}


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def iris() -> tuple[np.ndarray, np.ndarray]:
    lines = [line.split(",") for line in IRIS.read_text().split()]
    return (np.array([[float(cell) for cell in line[1:]] for line in lines]),
            np.array([line[0] for line in lines]))


def train(module: ModuleType, case: dict[str, Any], directory: Path) -> None:
    """Fit on iris (two classes for binary:logistic, a feature as target for a regressor), save."""
    dataset, hyperparameters, job = (sys.modules[name] for name in ("dataset", "hyperparameters", "job"))
    features, labels = iris()
    objective = case.get("objective", "")
    if objective == "binary:logistic":
        keep = labels != labels[0]
        features, labels = features[keep], labels[keep]
    elif objective.startswith("reg:"):
        features, labels = features[:, 1:], np.array([str(value) for value in features[:, 0]])
    params = hyperparameters.parse({name: str(value) for name, value in case.items()},
                                   module.HYPERPARAMETERS)
    table = dataset.Table(features=np.ascontiguousarray(features), labels=labels)
    with contextlib.redirect_stdout(sys.stderr):  # fit's metrics lines, off the table
        fitted = module.fit(table, None, job.Job(params=params))
    module.save(fitted, directory)


def requests(width: int) -> dict[int, np.ndarray]:
    features, _ = iris()
    rng = np.random.default_rng(0)
    found = {}
    for count in ROWS:
        rows = features[rng.integers(0, len(features), count), :width]
        found[count] = np.ascontiguousarray(rows + rng.normal(0, 0.1, rows.shape))
    return found


def same(left: np.ndarray, right: np.ndarray) -> bool:
    return left.dtype == right.dtype and left.shape == right.shape and bool(np.array_equal(left, right))


def best_us(calls: dict[str, Any], repeat: int) -> dict[str, float]:
    """Best time per call of each, in µs: the versions take turns, so drifting load hits both."""
    timers = {name: timeit.Timer(call) for name, call in calls.items()}
    numbers = {name: timer.autorange()[0] for name, timer in timers.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name] * 1e6)
    return best


def measure(framework: str, against: str, repeat: int) -> list[str]:
    """Check the answers of every case, then time the first; returns Markdown table lines."""
    with tempfile.TemporaryDirectory() as temporary:
        reader = TEMPLATES / framework / "dataset.py"
        if not reader.exists():  # the generic reader, without the Jinja lines that pick a template's own
            Path(temporary, "dataset.py").write_text("".join(
                line for line in (RUNTIME / "dataset.py").read_text().splitlines(keepends=True)
                if not line.startswith("{")))
            reader = Path(temporary, "dataset.py")
        sys.path[:0] = [str(reader.parent), str(RUNTIME)]
        try:
            versions = {"now": load_module(f"model_{framework}_now", TEMPLATES / framework / "model.py")}
            if against:
                relative = f"cookiecutter/templates/{framework}/model.py"
                source = subprocess.run(["git", "-C", str(ROOT), "show", f"{against}:{relative}"],
                                        capture_output=True, text=True, check=True).stdout
                path = Path(temporary, "model_before.py")
                path.write_text(source)
                versions = {against: load_module(f"model_{framework}_before", path), **versions}
            trainer = next(iter(versions.values()))
            lines = []
            for number, case in enumerate(CASES[framework]):
                directory = Path(temporary, f"case{number}")
                directory.mkdir()
                train(trainer, case, directory)
                loaded = {name: module.load(directory) for name, module in versions.items()}
                width = int(versions["now"].n_features(loaded["now"]))
                data = requests(width)
                calls: dict[str, Call] = {"predict": lambda module, model, rows: module.predict(model, rows)}
                if loaded["now"].classes is not None and hasattr(versions["now"], "probabilities"):
                    calls["probabilities"] = lambda module, model, rows: module.probabilities(model, rows)
                label = case.get("objective", framework)
                for call_name, call in calls.items():
                    answers = {name: [call(versions[name], model, rows) for rows in data.values()]
                               for name, model in loaded.items()}
                    first = next(iter(answers.values()))
                    for name, found in answers.items():
                        if not all(same(a, b) for a, b in zip(first, found, strict=True)):
                            raise SystemExit(f"{framework} {label} {call_name}: {name} answers differently")
                    if number:
                        continue  # answers checked; only the first case is timed
                    for count, rows in data.items():
                        if call_name == "probabilities" and count != 1:
                            continue
                        figures = best_us({name: partial(call, versions[name], model, rows)
                                           for name, model in loaded.items()}, repeat)
                        cells = " | ".join(f"{value:,.1f}" for value in figures.values())
                        ratio = (f" | {figures['now'] / figures[against]:.2f}" if against else "")
                        lines.append(f"| {framework} | {label} | {call_name} | {count} | {cells}{ratio} |")
                print(f"{framework} {label}: answers identical ({', '.join(calls)})", file=sys.stderr)
            return lines
        finally:
            del sys.path[:2]
            for name in ("channels", "dataset", "hyperparameters", "job", "optml"):
                sys.modules.pop(name, None)  # the next framework has its own dataset.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=sorted(LIBRARY), action="append",
                        help="repeatable; default: every one whose library imports")
    parser.add_argument("--against", default="main", help="git revision to compare with ('' for none)")
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    frameworks = options.framework or [name for name, library in LIBRARY.items()
                                       if importlib.util.find_spec(library) is not None]
    if not frameworks:
        raise SystemExit("neither xgboost nor torch imports here")
    columns = ([options.against, "now", "now/before"] if options.against else ["now"])
    print("| framework | model | call | rows | " + " | ".join(f"{name} µs" if name != "now/before" else name
                                                           for name in columns) + " |")
    print("|---|---|---|---:|" + "---:|" * len(columns))
    for framework in frameworks:
        for line in measure(framework, options.against, options.repeat):
            print(line, flush=True)


if __name__ == "__main__":
    main()
