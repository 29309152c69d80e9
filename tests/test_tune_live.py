"""The live table and summary of ``byoc local tune``: a failed job shows why, with its name whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from byoc.tune import live
from byoc.tune.runner import JobState
from byoc.tune.strategies import Trial

REASON = ("ValueError: learning rate 12.5 is out of range for the optimizer; expected a value between"
          " 0 and 1, from the hyperparameter lr, which the tuning job drew from its range\n"
          "Traceback (most recent call last):\n  File \"train\", line 3")


def jobs() -> list[JobState]:
    made = []
    for number, status in ((1, "Completed"), (2, "Failed"), (3, "InProgress")):
        job = JobState(number, f"probe-a-long-tuning-name-{number:03d}-0123abcd",
                       {"lr": "0.1", "n": "7"}, Trial(number, {}), Path("unused"))
        job.status = status
        job.objective = 1.25 if status == "Completed" else None
        job.failure_reason = REASON if status == "Failed" else None
        made.append(job)
    return made


def test_first_line_is_the_reason_s_first_line_cut_with_an_ellipsis() -> None:
    assert live.first_line("\n  kind=boom: always fails  \nmore") == "kind=boom: always fails"
    cut = live.first_line(REASON)
    assert len(cut) == live.REASON_LIMIT and cut.endswith("\u2026")
    assert cut.startswith("ValueError: learning rate 12.5 is out of range")
    assert live.first_line("x" * live.REASON_LIMIT) == "x" * live.REASON_LIMIT


@pytest.mark.parametrize("width", [160, 100, 80])
def test_the_live_table_shows_why_a_job_failed_and_every_name_whole(width: int) -> None:
    out = io.StringIO()
    table = live.LiveTable(out, "validation:loss")
    table.live.console.width = width
    table(jobs(), "InProgress")
    table.close()
    text = out.getvalue()
    for job in jobs():
        assert job.name in text
    row = next(line for line in text.splitlines() if "-002-" in line)
    assert "Failed: ValueError" in row
    assert all(len(line) <= width for line in text.splitlines())


def test_the_line_per_job_output_shows_the_reason_after_the_name() -> None:
    said: list[str] = []
    live.LineTable(said.append)(jobs(), "InProgress")
    assert said[1] == (f"probe-a-long-tuning-name-002-0123abcd Failed: {live.first_line(REASON)}"
                       " lr=0.1 n=7")
