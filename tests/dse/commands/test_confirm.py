"""Confirmation on the test split: stored per point, resumable, shared between workers."""
from __future__ import annotations

import dataclasses
import json
import socket
import statistics
import subprocess
import sys
import time

import optuna
import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint
from toy import toy_prepared

from cli import cli
from dse.commands.confirm import confirm_points, confirmation_plan, points_to_confirm
from dse.commands.search import run_search
from dse.commands.text import confirmation_plan_text
from dse.engines.testing import BatchedStub, StubEstimator
from dse.results.confirmation import CLAIM_PREFIX, RECORD_PREFIX, confirmed_results
from dse.results.ledger import BASELINES
from dse.signals import SignalGuard
from dse.storage.storage import open_storage


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


class StartingFrom(Counting):
    """Counts which weights each point was measured from (``StartsFrom``)."""

    def __init__(self, started=None, weights=None):
        super().__init__()
        self.started = started if started is not None else []
        self.weights = weights

    def starting_from(self, weights):
        self.started.append(weights)
        return StartingFrom(self.started, weights)

    def keep_weights(self, weights):
        return {"tensors_sha256": weights}

    def weights_of(self, record):
        return record["tensors_sha256"]


def test_a_trial_with_delivered_weights_is_confirmed_from_them(toy_table, tmp_path,
                                                                monkeypatch):
    """(The trial's record is added to the trials the confirmation reads: a finished
    trial's attributes cannot be written.)"""
    from dse.accuracy.abilities import StartsFrom
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    chosen = points[-1]
    trials = study.get_trials()
    trials[chosen].set_user_attr("delivered_weights", {"tensors_sha256": "ab" * 32})
    monkeypatch.setattr(study, "get_trials", lambda *args, **kwargs: trials)
    estimator = StartingFrom()
    assert isinstance(estimator, StartsFrom)
    confirm_points(study, prepared.problem, estimator, {"split": "test"})
    assert estimator.started == ["ab" * 32]  # that point only
    records = {n: study.user_attrs[f"{RECORD_PREFIX}{n}"] for n in points}
    assert records[chosen]["from_weights_sha256"] == "ab" * 32
    assert all("from_weights_sha256" not in r for n, r in records.items() if n != chosen)
    with pytest.raises(Exception, match="cannot start from other weights"):
        study.set_user_attr("dse:confirm-settings", None)
        stub = StubEstimator(split="test")
        confirm_points(study, prepared.problem, lambda candidate: stub(candidate),
                       {"split": "test", "x": 1})


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


def test_confirmation_hands_over_its_points_a_group_at_a_time(toy_table, tmp_path):
    """Points go to a batched estimator ``group_size`` at a time; a SIGTERM inside a group
    keeps the groups before it and stores none of its own."""
    from dse.accuracy.abilities import Batched
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    assert len(points) >= 5 and isinstance(BatchedStub(2, split="test"), Batched)
    first = BatchedStub(2, signal_at=4, split="test")  # SIGTERM: 2nd group, 2nd point
    with SignalGuard() as guard, pytest.raises(KeyboardInterrupt):
        confirm_points(study, prepared.problem, first, {"split": "test"},
                       interruptible=guard.interruptible)
    assert first.groups == [2, 2]
    assert set(confirmed_results(study)) == set(points[:2])
    second = BatchedStub(2, split="test")
    counts = confirm_points(study, prepared.problem, second, {"split": "test"})
    assert counts["measured"] == len(points) - 2
    assert second.groups == [2] * ((len(points) - 2) // 2) + [1] * (len(points) % 2)
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


class Timed(Counting):
    """A stub whose every point took ``seconds`` (as a real confirmation records)."""

    def __init__(self, seconds, signal_at=None):
        super().__init__(signal_at)
        self.seconds = seconds

    def __call__(self, candidate):
        return dataclasses.replace(super().__call__(candidate), seconds=self.seconds)


SETTINGS = {"split": "test", "steps": 200, "finetune_seeds": 3, "error_seeds": 3, "seed": 0}


def test_the_plan_is_announced_first_and_progress_starts_at_the_points_found_done(
        toy_table, tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    with SignalGuard() as guard, pytest.raises(KeyboardInterrupt):
        confirm_points(study, prepared.problem, Timed(7.0, signal_at=3), SETTINGS,
                       interruptible=guard.interruptible)
    heard, told = [], []
    confirm_points(study, prepared.problem, Timed(7.0), SETTINGS,
                   progress=lambda *call: told.append(call), announce=heard.append)
    [plan] = heard
    assert plan["points"] == len(points) and plan["baselines"] == len(BASELINES)
    assert plan["already"] == 2 and plan["to_measure"] == len(points) - 2
    assert (plan["steps"], plan["finetune_seeds"], plan["error_seeds"]) == (200, 3, 3)
    assert plan["estimate_from"] == "confirmed"
    assert plan["estimate_s"] == pytest.approx(7.0 * (len(points) - 2))
    # the points found done count from the start: the rate is that of the probes run now
    assert told[0][:2] == (2, len(points)) and told[0][2].startswith(f"trial {points[2]} (")
    assert [done for done, _, _ in told] == list(range(2, len(points) + 1))
    assert told[-1] == (len(points), len(points), "done")


def test_a_first_plan_is_timed_by_the_searchs_probes_per_step(toy_table, tmp_path):
    prepared, study = unconfirmed_study(toy_table, tmp_path)
    points = points_to_confirm(study)
    plan = confirmation_plan(study, points, SETTINGS)
    probes = [t.user_attrs["metrics"]["probe_seconds"] for t in study.get_trials()
              if t.user_attrs["metrics"]["probed"]]
    per_step = statistics.median(probes) / (20 * 2)  # the search's 20 steps x 2 fine-tunes
    assert plan["already"] == 0 and plan["estimate_from"] == "search"
    assert plan["seconds_per_step"] == pytest.approx(per_step)
    assert plan["estimate_s"] == pytest.approx(len(points) * per_step * 200 * 3)
    assert confirmation_plan(study, points, {"split": "test"})["estimate_s"] is None


def test_the_announcement_names_points_steps_time_and_how_to_skip_it():
    plan = {"points": 18, "already": 0, "to_measure": 18, "baselines": 4, "steps": 200,
            "finetune_seeds": 3, "error_seeds": 3, "seconds_per_step": 0.07,
            "estimate_s": 756.0, "estimate_from": "search"}
    line = confirmation_plan_text(plan, in_search=True)
    assert "\n" not in line
    for words in ("confirming 18 points on the test split", "4 baselines, 14 of the front",
                  "3 fine-tunes of 200 steps", "roughly 13 min", "0.07 s per fine-tune step",
                  "--no-confirm skips it", "`dse confirm` runs it later"):
        assert words in line, (words, line)
    later = confirmation_plan_text({**plan, "already": 6, "to_measure": 12,
                                    "estimate_from": "confirmed"}, in_search=False)
    assert "confirming 12 of 18 points" in later and "6 confirmed before" in later
    assert "--no-confirm" not in later and "a stopped run resumes" in later
    assert "already" in confirmation_plan_text({**plan, "already": 18, "to_measure": 0},
                                               in_search=True)


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
    points = summary["confirmation"]["points"]
    assert f"confirming {points} points on the test split" in first.stderr
    assert "a stopped run resumes" in first.stderr and "--no-confirm" not in first.stderr
    rerun = run("confirm", str(searched), "--confirm-steps", "1", "--confirm-seeds", "1",
                "--json")
    again = json.loads(rerun.stdout)
    assert again["confirmation"]["measured"] == 0
    assert f"all {points} points are confirmed on the test split already" in rerun.stderr
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



def test_a_search_says_how_long_on_stderr_and_keeps_stdout_for_its_json(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    result = run("search", "--dataset", "synthetic", "--epochs", "1", "--trials", "6",
                 "--probe-steps", "1", "--error-seeds", "1", "--finetune-seeds", "1",
                 "--confirm-steps", "2", "--confirm-seeds", "1", "--sampler", "random",
                 "--threads", "1", "--results-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    points = summary["confirmation"]["points"]
    assert "\r" not in result.stderr  # not a terminal: lines, no redrawing
    lines = result.stderr.splitlines()
    [announced] = [i for i, line in enumerate(lines) if line.startswith("confirming ")
                   and "on the test split (" in line]
    for words in (f"confirming {points} points", "1 fine-tune of 2 steps",
                  "--no-confirm skips it"):
        assert words in lines[announced], (words, lines[announced])
    confirming = [i for i, line in enumerate(lines)
                  if line.startswith("confirming on the test split:")]
    assert confirming and min(confirming) > announced
    assert f"{points}/{points} [" in lines[confirming[-1]]
    assert any(line.startswith("search:") and "6/6 [" in line and "trial" in line
               for line in lines)


@pytest.fixture(params=["journal", "postgresql"])
def shared_url(request, tmp_path):
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres_url")


def shared_study(toy_table, tmp_path, url):
    prepared = dataclasses.replace(toy_prepared(toy_table, tmp_path, trials=10,
                                                confirm=False), storage_url=url)
    run_search(prepared)
    return prepared, optuna.load_study(study_name=prepared.study_name,
                                       storage=open_storage(url))


class ClaimingLate(optuna.Study):
    """A worker's study that runs ``meanwhile()`` just before it writes its first claim
    (where a check of the claim and its write are two steps, another worker's whole
    confirmation fits between them)."""

    def __init__(self, name, storage, meanwhile):
        super().__init__(study_name=name, storage=storage)
        self.meanwhile = meanwhile

    def set_user_attr(self, key, value):
        if key.startswith(CLAIM_PREFIX) and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        super().set_user_attr(key, value)


def test_two_confirmations_at_once_measure_each_point_once(toy_table, tmp_path, shared_url):
    prepared, study = shared_study(toy_table, tmp_path, shared_url)
    points = points_to_confirm(study)
    first, second = Counting(), Counting()
    ran = []

    def other_worker():
        ran.append(confirm_points(optuna.load_study(
            study_name=study.study_name, storage=open_storage(shared_url)),
            prepared.problem, second, {"split": "test"}))
    racing = ClaimingLate(study.study_name, open_storage(shared_url), other_worker)
    confirm_points(racing, prepared.problem, first, {"split": "test"})
    if not ran:  # the claim was checked and written in one step: the other runs after
        other_worker()
    assert len(first.asked) + len(second.asked) == len(points)
    assert set(confirmed_results(study)) == set(points)


def test_confirmations_running_together_share_the_points(toy_table, tmp_path, shared_url,
                                                         monkeypatch):
    """Two workers (told apart by their host names) confirm one study at the same time."""
    import threading

    class Hosts:  # each thread is a host of its own
        @staticmethod
        def gethostname():
            return threading.current_thread().name

    monkeypatch.setattr("dse.commands.confirm.socket", Hosts)
    prepared, study = shared_study(toy_table, tmp_path, shared_url)
    points = points_to_confirm(study)
    estimators, counts, errors = [Counting(), Counting()], [], []

    def worker(estimator):
        try:
            counts.append(confirm_points(optuna.load_study(
                study_name=study.study_name, storage=open_storage(shared_url)),
                prepared.problem, estimator, {"split": "test"}))
        except BaseException as exc:  # raised again below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(estimator,), name=f"host-{i}")
               for i, estimator in enumerate(estimators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(len(estimator.asked) for estimator in estimators) == len(points)
    assert sum(count["measured"] for count in counts) == len(points)
    assert set(confirmed_results(study)) == set(points)
