"""Runtime: you should not need to edit this. Typed hyperparameters from SageMaker's string map.

model.py declares ``HYPERPARAMETERS`` with the specs below (``Int``, ``Float``,
``Bool``, ``Choice``); ``parse`` checks what the job sent against them.

``hyperparameters.json`` holds strings only. The SageMaker Python SDK often
JSON-encodes them first, so ``"gini"`` may arrive as ``"\\"gini\\""``; both
forms are accepted. Keys starting with ``sagemaker_`` belong to the platform
and are ignored, as is ``_tuning_objective_metric``, which a hyperparameter
tuning job adds to each of its training jobs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RESERVED_PREFIX = "sagemaker_"
#: Added by SageMaker to every training job of a hyperparameter tuning job: the objective's name.
TUNING_OBJECTIVE = "_tuning_objective_metric"
#: Values are quoted in messages up to this many characters (they may hold 2500).
SHOWN_CHARS = 40


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or its value does not fit the schema."""


@dataclass(frozen=True)
class Int:
    default: int | None = None
    min: int | None = None
    max: int | None = None

    def convert(self, text: str) -> int:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {_shown(text)}") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"expected an integer, got {_shown(text)}")
        return _in_range(int(number), self.min, self.max)


@dataclass(frozen=True)
class Float:
    default: float | None = None
    min: float | None = None
    max: float | None = None

    def convert(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {_shown(text)}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {_shown(text)}")
        return _in_range(number, self.min, self.max)


@dataclass(frozen=True)
class Bool:
    default: bool | None = None

    def convert(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {_shown(text)}")


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]
    default: str | None = None

    def convert(self, text: str) -> str:
        if text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}; got {_shown(text)}")
        return text


Spec = Int | Float | Bool | Choice


def _shown(text: str) -> str:
    """*text* quoted for a message, cut short if long: the reason must stay one short line."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


def _in_range(value: Any, low: Any, high: Any) -> Any:
    if low is not None and value < low:
        raise ValueError(f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"must be at most {high}, got {value}")
    return value


def _unwrap(raw: object) -> str:
    """Undo the SDK's JSON encoding of a value, if it was applied."""
    if not isinstance(raw, str):
        # Not what CreateTrainingJob sends, but a hand-written file may hold it.
        return json.dumps(raw)
    text = raw.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


def parse(raw: Mapping[str, object], schema: Mapping[str, Spec]) -> dict[str, Any]:
    """Validate *raw* against *schema* and return typed values, defaults filled in.

    :raises HyperparameterError: naming every bad key, with the list of valid ones.
    """
    values: dict[str, Any] = {name: spec.default for name, spec in schema.items()}
    problems: list[str] = []
    for key in sorted(raw):
        if key.startswith(RESERVED_PREFIX) or key == TUNING_OBJECTIVE:
            continue
        spec = schema.get(key)
        if spec is None:
            problems.append(f"unknown hyperparameter {key!r} (valid: {', '.join(sorted(schema))})")
            continue
        text = _unwrap(raw[key])
        try:
            values[key] = spec.convert(text)
        except ValueError as exc:
            problems.append(f"hyperparameter {key!r}: {exc}")
    if problems:
        raise HyperparameterError("; ".join(problems))
    return values
