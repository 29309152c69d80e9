"""The plots' note when matplotlib is missing: once per Python environment, not every run."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byoc.local import plots
from byoc.local import scanner as metrics


def _samples() -> list[metrics.Sample]:
    return [metrics.Sample("loss", 0.5, datetime(2026, 1, 1, tzinfo=UTC), "algo-1")]


def test_without_matplotlib_the_note_is_said_once_per_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path / "cache"))
    said: list[str] = []
    for run in range(3):
        assert not plots.metrics_over_time(_samples(), tmp_path / f"{run}.png", "job",
                                           say=said.append)
    assert plots.tuning_results([0.5], [{"lr": "0.1"}], "loss", tmp_path / "t.png", "tune",
                                say=said.append) is False
    assert said == [f"note: {plots.MISSING}"]
    assert not list(tmp_path.glob("*.png"))
    # another environment (another sys.prefix) is told again
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "other-venv"))
    plots.metrics_over_time(_samples(), tmp_path / "x.png", "job", say=said.append)
    assert said == [f"note: {plots.MISSING}"] * 2


def test_where_no_marker_can_be_written_the_note_is_said(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("BYOC_CACHE_DIR", str(tmp_path / "file"))
    said: list[str] = []
    plots.metrics_over_time(_samples(), tmp_path / "x.png", "job", say=said.append)
    plots.metrics_over_time(_samples(), tmp_path / "x.png", "job", say=said.append)
    assert said == [f"note: {plots.MISSING}"] * 2
