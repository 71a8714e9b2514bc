"""Confirmation on the test split: stored per point, resumable, shared between workers."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import optuna
import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint
from toy import toy_prepared

from cli import cli
from dse.commands.confirm import confirm_points, points_to_confirm
from dse.commands.search import run_search
from dse.engines.optuna.storage import open_storage
from dse.engines.testing import StubEstimator
from dse.results.confirmation import CLAIM_PREFIX, RECORD_PREFIX, confirmed_results
from dse.results.ledger import BASELINES
from dse.signals import SignalGuard


def unconfirmed_study(toy_table, tmp_path, trials=10):
    prepared = toy_prepared(toy_table, tmp_path, trials=trials, confirm=False)
    run_search(prepared)
    study = optuna.load_study(study_name=prepared.study_name,
                              storage=open_storage(prepared.storage_url))
    return prepared, study


class Counting(StubEstimator):
    def __init__(self, signal_at=None):
        super().__init__(signal_at, split="test")
        self.asked = []

    def __call__(self, candidate):
        self.asked.append(candidate.n_analog)
        return super().__call__(candidate)


def test_confirmation_covers_the_baselines_first_then_the_front(toy_table, tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    trials = study.get_trials()
    assert trials[points[0]].user_attrs["baseline"] == "all-digital"
    assert {trials[n].user_attrs.get("baseline") for n in points[:4]} == set(BASELINES)
    counts = confirm_points(study, prepared.problem, Counting(), {"split": "test"})
    assert counts["measured"] == len(points) and set(confirmed_results(study)) == set(points)


def test_confirmation_resumes_after_sigterm_without_probing_finished_points(toy_table,
                                                                           tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    assert len(points) >= 3
    first = Counting(signal_at=3)  # SIGTERM from inside the third probe
    with SignalGuard() as guard, pytest.raises(KeyboardInterrupt):
        confirm_points(study, prepared.problem, first, {"split": "test"},
                       interruptible=guard.interruptible)
    assert set(confirmed_results(study)) == set(points[:2])  # the third was not stored
    second = Counting()
    counts = confirm_points(study, prepared.problem, second, {"split": "test"})
    assert counts == {"points": len(points), "measured": len(points) - 2, "already": 2,
                      "left_to_others": 0}
    assert len(second.asked) == len(points) - 2
    assert set(confirmed_results(study)) == set(points)


def test_other_settings_are_confirmed_again_and_replace_the_old(toy_table, tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    confirm_points(study, prepared.problem, Counting(), {"split": "test", "steps": 1})
    again = Counting()
    counts = confirm_points(study, prepared.problem, again, {"split": "test", "steps": 2})
    assert counts["measured"] == counts["points"] == len(again.asked)
    record = study.user_attrs[f"{RECORD_PREFIX}{points_to_confirm(study)[0]}"]
    assert record["settings"] == {"split": "test", "steps": 2}


def test_a_point_a_live_worker_claimed_is_left_to_it(toy_table, tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        study.set_user_attr(f"{CLAIM_PREFIX}{points[1]}", {
            "host": socket.gethostname(), "pid": sleeper.pid, "time": time.time()})
        study.set_user_attr(f"{CLAIM_PREFIX}{points[2]}", {  # a dead worker's claim
            "host": socket.gethostname(), "pid": _dead_pid(), "time": time.time()})
        counts = confirm_points(study, prepared.problem, Counting(), {"split": "test"})
    finally:
        sleeper.kill()
        sleeper.wait()
    assert counts["left_to_others"] == 1 and counts["measured"] == len(points) - 1
    assert points[1] not in confirmed_results(study) and points[2] in confirmed_results(study)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---- dse confirm, end to end ----------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture()
def searched(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    result = run("search", "--dataset", "synthetic", "--epochs", "1", "--trials", "6",
                 "--probe-steps", "0", "--error-seeds", "1", "--finetune-seeds", "1",
                 "--no-confirm", "--sampler", "random", "--results-dir", str(tmp_path),
                 "--json")
    assert result.exit_code == 0, result.output
    return tmp_path / json.loads(result.stdout)["study"]


def test_dse_confirm_confirms_and_a_rerun_measures_nothing(searched, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # the folder is found wherever it is run from
    first = run("confirm", str(searched), "--confirm-steps", "1", "--confirm-seeds", "1",
                "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["confirmation"]["measured"] == summary["confirmation"]["points"] >= 4
    baselines = {b["baseline"]: b for b in summary["baselines"]}
    assert set(baselines) == set(BASELINES)
    for row in [*summary["baselines"], *summary["front"]]:
        assert row["test_accuracy_ci_low"] <= row["test_accuracy"] <= row["test_accuracy_ci_high"]
    assert baselines["all-digital"]["test_accuracy_change_pp"] == 0.0
    assert summary["confirm_settings"]["steps"] == 1
    again = json.loads(run("confirm", str(searched), "--confirm-steps", "1",
                           "--confirm-seeds", "1", "--json").stdout)
    assert again["confirmation"]["measured"] == 0
    text = run("pareto", str(searched))
    assert "test acc % [95% CI]" in text.stdout


@pytest.mark.parametrize("args, words", [
    (("--confirm-steps", "0"), ("--confirm-steps must be >= 1",)),
    (("--confirm-seeds", "0"), ("--confirm-seeds must be >= 1",)),
])
def test_dse_confirm_bad_counts_are_one_line(searched, args, words):
    before = (searched / "summary.json").read_bytes()
    result = run("confirm", str(searched), *args)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert all(word in result.stderr for word in words), result.stderr
    assert (searched / "summary.json").read_bytes() == before


def test_dse_confirm_of_a_study_without_accuracy_is_one_line(tmp_path):
    made = run("search", "--dataset", "synthetic", "--objectives", "latency,energy",
               "--trials", "2", "--results-dir", str(tmp_path), "--json")
    assert made.exit_code == 0, made.output
    folder = tmp_path / json.loads(made.stdout)["study"]
    result = run("confirm", str(folder))
    assert result.exit_code == 2 and "no accuracy objective" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_dse_confirm_of_a_study_without_a_front_is_one_line(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    made = run("search", "--dataset", "synthetic", "--epochs", "1", "--trials", "4",
               "--probe-steps", "0", "--error-seeds", "1", "--finetune-seeds", "1",
               "--latency-budget", "1e-12", "--results-dir", str(tmp_path), "--json")
    assert made.exit_code == 0, made.output
    folder = tmp_path / json.loads(made.stdout)["study"]
    before = (folder / "summary.json").read_bytes()
    result = run("confirm", str(folder))
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert "no Pareto front to confirm" in result.stderr
    assert "latency_over_budget_s" in result.stderr
    assert (folder / "summary.json").read_bytes() == before


@pytest.mark.parametrize("command", [("search", "--trials", "1"), ("probe",)])
@pytest.mark.parametrize("level", ["0", "1", "1.5", "-0.2"])
def test_interval_levels_outside_0_1_are_one_line(command, level, tmp_path):
    result = run(*command, "--interval-level", level, "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert "--interval-level must be in (0, 1)" in result.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_a_wider_level_gives_wider_intervals(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    common = ("probe", "--dataset", "synthetic", "--epochs", "1", "--steps", "0",
              "--error-seeds", "2", "--finetune-seeds", "1", "--mapping", "all-analog",
              "--vdd", "0.9", "--results-dir", str(tmp_path), "--json")
    narrow = json.loads(run(*common, "--interval-level", "0.5").stdout)
    wide = json.loads(run(*common, "--interval-level", "0.99").stdout)
    assert narrow["accuracy"] == wide["accuracy"] and wide["interval_level"] == 0.99
    assert (wide["accuracy_ci_high"] - wide["accuracy_ci_low"]
            > narrow["accuracy_ci_high"] - narrow["accuracy_ci_low"])


def test_dse_confirm_of_a_missing_study_is_one_line(tmp_path):
    result = run("confirm", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "no study found" in result.stderr

