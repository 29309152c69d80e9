"""``byoc validate``'s Pipe-mode check: pass for an image that reads FIFOs, a bounded warning otherwise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from byoc.validate import pipe as _checks_pipe
from byoc.validate import validate
from byoc.validate.common import PASS, WARN
from helpers import FIXTURES

CHANNELS = {"training": FIXTURES / "validate" / "data" / "training"}
FAST = {"train_grace": 3.0, "train_timeout": 30.0, "serve": False}

pytestmark = pytest.mark.docker


@pytest.fixture
def no_leftovers(docker_client: Any) -> Iterator[None]:
    yield
    left = docker_client.containers.list(all=True, ignore_removed=True,
                                         filters={"label": "com.byoc.validate"})
    assert [container.name for container in left if "pipe" in container.name] == []


def test_an_image_that_reads_fifos_passes(ioprobe_image: str,
                                          no_leftovers: None) -> None:
    report = validate(ioprobe_image, channels=CHANNELS, **FAST)  # type: ignore[arg-type]
    check = report.check("train.pipe")
    assert (check.result, check.rule) == (PASS, "A4"), check
    assert "training: 1 epoch(s)" in check.saw


@pytest.mark.parametrize(("hyperparameters", "words"), [
    ({"never_open": "1"}, "exited 0 without opening a FIFO"),
    ({"pipe_fail": "1"}, "exited 1"),
    ({"pipe_hang": "1"}, "opened no FIFO in 2 s (stopped)"),
])
def test_an_image_that_does_not_read_fifos_is_file_mode_only(
        ioprobe_image: str, hyperparameters: dict[str, str], words: str,
        monkeypatch: pytest.MonkeyPatch, no_leftovers: None) -> None:
    monkeypatch.setattr(_checks_pipe, "OPEN_TIMEOUT", 2.0)
    started = time.monotonic()
    report = validate(ioprobe_image, channels=CHANNELS, hyperparameters=hyperparameters,
                      **FAST)  # type: ignore[arg-type]
    assert time.monotonic() - started < 60
    check = report.check("train.pipe")
    assert check.result == WARN, check
    assert check.saw.startswith("this image supports File mode only"), check
    assert words in check.saw, check
    assert "/opt/ml/input/data/<channel>_<epoch>" in check.fix
    assert report.check("train.succeeds").result == PASS  # File mode still works
    assert report.exit_code == 0  # Pipe mode is optional on SageMaker


def test_the_check_is_skipped_when_training_fails_in_file_mode(tmp_path: Path,
                                                               ioprobe_image: str,
                                                               ) -> None:
    report = validate(ioprobe_image, channels=CHANNELS, hyperparameters={"fail_host": "algo-1"},
                      **FAST)  # type: ignore[arg-type]
    assert "train.pipe" not in {check.name for check in report.checks}
