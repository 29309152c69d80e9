"""MetricDefinitions over training logs: parsing, the service's limits, job records, describe."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from byoc.errors import ConfigError
from byoc.job import metrics as job_metrics
from byoc.local import record as jobrecord
from byoc.local import scanner as metrics
from byoc.project import ProjectConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TUNEPROBE = FIXTURES / "tuneprobe"
SAFE = "val_loss=" + job_metrics.VALUE_PATTERN


#: One font cache for the module's plots, not one per test (each test has its own HOME).
pytestmark = pytest.mark.usefixtures("shared_matplotlib_cache")


def scanner(*items: tuple[str, str]) -> metrics.MetricScanner:
    return metrics.MetricScanner([job_metrics.definition(name, regex) for name, regex in items])


@pytest.mark.parametrize(("text", "expected"), [
    ("1e-05", 1e-05), ("-0.3", -0.3), ("+2.5E+03", 2500.0), (".5", 0.5), ("7", 7.0), ("7.", 7.0),
])
def test_a_number_reads_as_itself(text: str, expected: float) -> None:
    found = scanner(("loss", SAFE)).scan("algo-1", f"epoch=2 val_loss={text} lr=0.1")
    assert [sample.value for sample in found] == [expected]


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "cat", "1,5", "0x10", "1_000", ""])
def test_a_capture_that_is_no_finite_number_is_dropped(text: str) -> None:
    scan = scanner(("loss", r"loss=(\S*)"))
    assert scan.scan("algo-1", f"loss={text}") == []
    assert scan.samples == []
    assert scan.dropped == {"loss": 1}


def test_the_first_group_is_the_value_and_every_definition_sees_every_line() -> None:
    scan = scanner(("train:loss", r"train_loss=([0-9.]+) \(best ([0-9.]+)\)"), ("epoch", r"epoch=(\d+)"))
    scan.scan("algo-1", "epoch=3 train_loss=0.25 (best 0.2)")
    assert [(s.name, s.value) for s in scan.samples] == [("train:loss", 0.25), ("epoch", 3.0)]


def test_final_is_the_last_value_of_each_metric_over_every_host() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter(start + timedelta(seconds=i) for i in range(10))
    scan = metrics.MetricScanner([job_metrics.definition("loss", SAFE),
                                  job_metrics.definition("acc", r"acc=(\S+)")],
                                 clock=lambda: next(ticks))
    scan.scan("algo-1", "val_loss=0.9")
    scan.scan("algo-2", "val_loss=0.7")
    scan.scan("algo-1", "acc=0.5")
    scan.scan("algo-1", "val_loss=nan")
    final = scan.final()
    assert [(s.name, s.value, s.host) for s in final] == [("loss", 0.7, "algo-2"), ("acc", 0.5, "algo-1")]
    assert final[0].as_api() == {"MetricName": "loss", "Value": 0.7,
                                 "Timestamp": "2026-01-01T00:00:01.000+00:00"}


@pytest.mark.parametrize(("name", "regex", "words"), [
    ("", "x=(1)", "Name must be 1-255"),
    ("n" * 256, "x=(1)", "Name must be 1-255"),
    ("loss", "", "Regex must be 1-500"),
    ("loss", "(" + "a" * 499 + ")", "Regex must be 1-500 characters, got 501 characters"),
    ("loss", "loss=([0-9]", "does not compile"),
    ("loss", "loss=[0-9]+", "no capture group"),
])
def test_a_definition_the_service_refuses(name: str, regex: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        job_metrics.definition(name, regex)


def test_limits_of_the_list() -> None:
    many = [{"Name": f"m{i}", "Regex": "x=(1)"} for i in range(41)]
    with pytest.raises(ConfigError, match="41 metric definitions; SageMaker allows at most 40"):
        job_metrics.definitions(many)
    assert len(job_metrics.definitions(many[:40])) == 40
    with pytest.raises(ConfigError, match="'m0' is defined twice"):
        job_metrics.definitions([many[0], many[0]])
    with pytest.raises(ConfigError, match=r"\[0\] must have exactly the keys Name and Regex"):
        job_metrics.definitions([{"Name": "a", "Regex": "(1)", "Extra": 1}])


def test_project_definitions_refused_like_the_request(tmp_path: Path) -> None:
    config = tmp_path / "byoc.toml"
    config.write_text('[project]\nname = "x"\n[[metric_definitions]]\nName = "a"\nRegex = "no-group"\n')
    with pytest.raises(ConfigError, match="byoc.toml metric_definitions 'a': Regex has no capture group"):
        job_metrics.from_config(ProjectConfig.read(config))


def test_regex_problems_finds_a_regex_that_misreads_values() -> None:
    assert job_metrics.regex_problems(SAFE, lambda value: f"epoch=1 val_loss={value} lr=0.1") == []
    # the regex many samples use: no sign, and an exponent only as "e-"
    problems = job_metrics.regex_problems(r"loss: ([0-9]+(.|e\-)[0-9]+)", lambda value: f"loss: {value}")
    assert any("'-0.3'" in problem for problem in problems)
    assert any("'nan'" in problem for problem in problems)


def test_the_probe_regex_reads_what_the_probe_prints() -> None:
    (regex,) = [item.regex for item in job_metrics.from_config(ProjectConfig.read(TUNEPROBE / "byoc.toml"))]
    assert job_metrics.regex_problems(regex, lambda value: f"epoch=3 train_loss=nan val_loss={value}") == []


def test_save_merges_into_job_json_and_writes_samples_and_a_plot(tmp_path: Path) -> None:
    jobrecord.merge(tmp_path, {"TrainingJobName": "j", "AlgorithmSpecification": {"TrainingImage": "i"}})
    scan = scanner(("loss", SAFE))
    for value in ("0.9", "0.5", "0.25"):
        scan.scan("algo-1", f"val_loss={value}")
    scan.scan("algo-2", "val_loss=0.3")
    scan.save(tmp_path)
    record = json.loads((tmp_path / "job.json").read_text())
    assert record["TrainingJobName"] == "j"
    assert record["AlgorithmSpecification"]["TrainingImage"] == "i"
    assert record["AlgorithmSpecification"]["MetricDefinitions"] == [{"Name": "loss", "Regex": SAFE}]
    assert [(m["MetricName"], m["Value"]) for m in record["FinalMetricDataList"]] == [("loss", 0.3)]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["Value"] for s in saved["Samples"]["algo-1"]] == [0.9, 0.5, 0.25]
    assert [s.value for s in metrics.load_samples(tmp_path)] == [0.9, 0.5, 0.25, 0.3]
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_sample_keeps_its_step_per_metric_and_host_and_its_time(tmp_path: Path) -> None:
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n) for n in range(100))
    scan = metrics.MetricScanner([job_metrics.definition("loss", SAFE),
                                  job_metrics.definition("acc", r"acc=([0-9]+\.[0-9]+)")],
                                 clock=lambda: next(moments))
    for host, line in (("algo-1", "val_loss=0.9 acc=0.1"), ("algo-2", "val_loss=0.8"),
                       ("algo-1", "val_loss=0.5"), ("algo-1", "acc=0.2"), ("algo-2", "val_loss=0.4")):
        scan.scan(host, line)
    steps = [(s.host, s.name, s.step, s.value) for s in scan.samples]
    assert steps == [("algo-1", "loss", 0, 0.9), ("algo-1", "acc", 0, 0.1), ("algo-2", "loss", 0, 0.8),
                     ("algo-1", "loss", 1, 0.5), ("algo-1", "acc", 1, 0.2), ("algo-2", "loss", 1, 0.4)]
    jobrecord.merge(tmp_path, {"TrainingJobName": "j"})
    scan.defer_plot = True
    scan.save(tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())["Samples"]
    assert [(e["MetricName"], e["Step"], e["Timestamp"]) for e in saved["algo-2"]] == [
        ("loss", 0, "2026-01-01T00:00:02.000+00:00"), ("loss", 1, "2026-01-01T00:00:05.000+00:00")]
    assert sorted(metrics.load_samples(tmp_path), key=lambda s: s.timestamp) == scan.samples
    # the FinalMetricDataList entries stay as DescribeTrainingJob has them: no Step
    assert all("Step" not in entry for entry in json.loads((tmp_path / "job.json").read_text())[
        "FinalMetricDataList"])
    # a metrics.json saved before steps were: numbered in the order read, per metric and host
    for entries in saved.values():
        for entry in entries:
            del entry["Step"]
    (tmp_path / "metrics.json").write_text(json.dumps({"Samples": saved}))
    assert sorted(metrics.load_samples(tmp_path), key=lambda s: s.timestamp) == scan.samples


def test_without_matplotlib_the_plot_is_skipped_with_a_note(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    notes: list[str] = []
    scan = scanner(("loss", SAFE))
    scan.scan("algo-1", "val_loss=1")
    scan.save(tmp_path, say=notes.append)
    assert not (tmp_path / "metrics.png").exists()
    assert notes == ["note: no plot: matplotlib is not installed (pip install 'byoc[plots]')"]
    assert json.loads((tmp_path / "job.json").read_text())["FinalMetricDataList"][0]["Value"] == 1.0


def test_local_train_records_metrics_and_describe_shows_them(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    run = subprocess.run(
        ["byoc", "local", "train", str(TUNEPROBE), "--backend", "process", "--output-dir", str(jobs),
         "--job-name", "metrics-job", "--hyperparameter", "epochs=4",
         "--metric-definition", r"objective:name=objective metric: (\S*)",
         "--metric-definition", r"epoch=epoch=(\d+)"],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    job = jobs / "metrics-job"
    record = json.loads((job / "job.json").read_text())
    final = {m["MetricName"]: m["Value"] for m in record["FinalMetricDataList"]}
    # byoc.toml's definition, then the options'; the probe's loss at x=0.5, n=5, kind=a
    assert final == {"validation:loss": pytest.approx(1.0 + 0.04 + 0.04 + 0.5), "epoch": 4.0}
    samples = json.loads((job / "metrics.json").read_text())
    assert [s["Value"] for s in samples["Samples"]["algo-1"] if s["MetricName"] == "epoch"] == [1, 2, 3, 4]
    assert samples["DroppedValues"] == {"objective:name": 1}  # it printed an empty name
    assert (job / "metrics.png").is_file()
    shown = subprocess.run(["byoc", "local", "describe", "metrics-job", "--output-dir", str(jobs)],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["FinalMetricDataList"] == record["FinalMetricDataList"]
    assert "validation:loss = 1.58" in shown.stderr and "epoch = 4" in shown.stderr


def test_describe_an_unknown_job(tmp_path: Path) -> None:
    shown = subprocess.run(["byoc", "local", "describe", "nope"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert shown.returncode == 2
    assert shown.stderr.startswith("Error: no local job 'nope' in ")
    assert len(shown.stderr.strip().splitlines()) == 1


def test_a_bad_metric_option_stops_train_before_it_starts(tmp_path: Path) -> None:
    run = subprocess.run(
        ["byoc", "local", "train", str(TUNEPROBE), "--backend", "process", "--output-dir",
         str(tmp_path), "--metric", "loss=loss=[0-9]+"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == "Error: --metric 'loss': Regex has no capture group; the first group is the value\n"
    assert list(tmp_path.iterdir()) == []


#: A line on which ``(a|aa)+$`` backtracks for ages (fib(64) paths) and ``(a+)+$`` for 2**64.
ALMOST = "a" * 64 + "!"


@pytest.mark.parametrize("regex", [r"(a+)+$", r"x=(\w+\s?)*$", r"((?:a|b+)*)z", r"(a*){2,}"])
def test_a_regex_that_nests_repeats_without_bound_is_refused(regex: str) -> None:
    with pytest.raises(ConfigError) as caught:
        job_metrics.definition("slow", regex)
    assert caught.value.message.startswith(
        "MetricDefinitions 'slow': Regex repeats a group that itself repeats without bound")


@pytest.mark.parametrize("regex", [SAFE, r"val_rmse=([0-9.eE+-]+)", r"ip=((\d+\.){3}\d+)",
                                   r"loss=((?>a+)+)", r"(?:epoch=\d+ )?loss=(\S+)"])
def test_a_regex_without_nested_unbounded_repeats_is_taken(regex: str) -> None:
    assert job_metrics.definition("fine", regex).regex == regex


def test_a_search_that_backtracks_for_ages_times_out_and_its_metric_is_switched_off() -> None:
    scan = scanner(("slow", r"(a|aa)+$"), ("loss", SAFE))
    started = time.monotonic()
    for _ in range(metrics.MAX_TIMEOUTS):
        assert scan.scan("algo-1", ALMOST) == []
    assert time.monotonic() - started < metrics.MAX_TIMEOUTS * (metrics.MATCH_TIMEOUT + 3)
    assert scan.timed_out == {"slow": metrics.MAX_TIMEOUTS}
    started = time.monotonic()
    assert [s.name for s in scan.scan("algo-1", ALMOST + " val_loss=0.5")] == ["loss"]
    assert time.monotonic() - started < 0.5  # switched off: not searched any more
    assert scan.timed_out == {"slow": metrics.MAX_TIMEOUTS}


def test_only_the_start_of_a_very_long_line_is_searched() -> None:
    scan = scanner(("loss", SAFE))
    assert scan.scan("algo-1", "x" * metrics.MAX_LINE + " val_loss=0.5") == []
    assert [s.value for s in scan.scan("algo-1", "val_loss=0.5 " + "x" * metrics.MAX_LINE)] == [0.5]


def test_train_and_tune_refuse_a_backtracking_regex_before_anything_is_written(tmp_path: Path) -> None:
    run = subprocess.run(
        ["byoc", "local", "train", str(TUNEPROBE), "--backend", "process", "--output-dir",
         str(tmp_path / "jobs"), "--metric", "slow=(a+)+$"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("Error: --metric 'slow': Regex repeats a group that itself repeats")
    assert len(run.stderr.splitlines()) == 1
    assert not (tmp_path / "jobs").exists()
    from tune_requests import request

    body = request("probe-slow")
    body["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"].append(
        {"Name": "slow", "Regex": "(a+)+$"})
    (tmp_path / "request.json").write_text(json.dumps(body))
    run = subprocess.run(
        ["byoc", "local", "tune", str(TUNEPROBE), "--backend", "process", "--config",
         str(tmp_path / "request.json"), "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("Error: TrainingJobDefinition.AlgorithmSpecification.MetricDefinitions"
                                 " 'slow': Regex repeats a group")
    assert len(run.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def slow_train(tmp_path: Path, epochs: int, sleep: float) -> subprocess.Popen[str]:
    """A training whose first line is ALMOST, scanned with a regex that backtracks on it."""
    return subprocess.Popen(
        ["byoc", "local", "train", str(TUNEPROBE), "--backend", "process", "--output-dir",
         str(tmp_path / "jobs"), "--job-name", "slow-job", "--metric", "slow=(a|aa)+$",
         "--hyperparameter", f"_tuning_objective_metric={ALMOST}", "--hyperparameter",
         f"epochs={epochs}", "--hyperparameter", f"sleep={sleep}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_job_whose_regex_backtracks_completes_promptly(tmp_path: Path) -> None:
    process = slow_train(tmp_path, epochs=2, sleep=0)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    document = json.loads((tmp_path / "jobs" / "slow-job" / "metrics.json").read_text())
    assert document["TimedOutLines"] == {"slow": 1}
    assert "warning: metric 'slow': its Regex took over 0.5 s on 1 line(s)" in stderr
    assert [s["Value"] for s in document["Samples"]["algo-1"]] == [pytest.approx(1.68), pytest.approx(1.58)]


def test_sigterm_stops_a_job_while_its_regex_backtracks(tmp_path: Path) -> None:
    process = slow_train(tmp_path, epochs=100, sleep=0.5)
    try:
        log = tmp_path / "jobs" / "slow-job" / "logs"
        deadline = time.monotonic() + 60
        while not any(ALMOST in path.read_text(errors="replace") for path in log.glob("*")
                      if path.is_file()):
            assert time.monotonic() < deadline and process.poll() is None, "the line was never printed"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert jobrecord.read(tmp_path / "jobs" / "slow-job")["TrainingJobStatus"] == "Stopped"
