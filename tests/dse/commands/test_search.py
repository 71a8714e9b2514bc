"""Short searches with a stub probe: bookkeeping, constraints, resume, outputs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import optuna
import pandas as pd
import pytest
from toy import toy_prepared

from dse.commands.search import run_search
from dse.evaluate import candidate_cost
from dse.problem import Limits
from dse.results.ledger import BASELINES, OPTUNA_CONSTRAINTS, constraints_of, objectives_of
from dse.results.tables import front_trials
from dse.space import decode
from dse.storage.storage import open_storage
from hw_models import ConfigError

CONTRACT = ["trial", "accuracy", "latency_s", "energy_j", "dram_energy_j", "compute_energy_j",
            "is_baseline", "baseline"]


def load(prepared) -> optuna.Study:
    return optuna.load_study(study_name=prepared.study_name,
                             storage=open_storage(prepared.storage_url))


def test_short_study_bookkeeping_is_exact(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=10)
    summary = run_search(prepared)
    study = load(prepared)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 10
    assert [t.user_attrs.get("baseline") for t in trials[:4]] == list(BASELINES)
    assert all("baseline" not in t.user_attrs for t in trials[4:])
    for trial in trials:  # the stored cost is the cost model's, exactly
        candidate = decode(trial.params, prepared.problem.space)
        cost = candidate_cost(candidate, prepared.problem)
        metrics = trial.user_attrs["metrics"]
        assert metrics["latency_s"] == float(cost.total_latency_s())
        assert metrics["energy_j"] == float(cost.total_energy_j())
        assert trial.values[1:] == [metrics["latency_s"], metrics["energy_j"]]
        assert trial.user_attrs["worker"]["pid"] > 0 and trial.user_attrs["worker"]["host"]
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert set(CONTRACT) | {"is_pareto", "state"} <= set(frame.columns)
    assert "n_analog:first" in frame.columns and "undervolt_mv" in frame.columns
    assert frame["is_baseline"].sum() == 4
    front = pd.read_csv(tmp_path / "toy" / "pareto.csv")
    assert set(CONTRACT) <= set(front.columns) and len(front) == len(summary.front) > 0
    assert set(front["trial"]) == set(frame.loc[frame["is_pareto"], "trial"])
    for name in ("config.json", "summary.json", "runs.jsonl"):  # figures: test_plots
        assert (tmp_path / "toy" / name).is_file(), name


def test_front_matches_optuna_best_trials(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=12, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=None))
    run_search(prepared)
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    study = load(prepared)
    best = {t.number for t in study.best_trials}
    assert set(frame.loc[frame["is_pareto"], "trial"]) == best
    assert {t.number for t in front_trials(study.trials, objectives_of(study))} == best


def test_progress_reports_the_final_count_and_front(toy_table, tmp_path):
    calls = []
    prepared = toy_prepared(toy_table, tmp_path, trials=9, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=None))
    run_search(prepared, progress=lambda done, total, status: calls.append(
        (done, total, status)))
    front = pd.read_csv(tmp_path / "toy" / "pareto.csv")
    assert calls[0][:2] == (0, 9)  # the start (the display's clock starts with it)
    assert calls[1][0] >= 1 and calls[-1][:2] == (9, 9)  # the first trial, then throttled
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    assert calls[-1][2].startswith(f"front {len(front)}, fastest "
                                   f"{front['latency_s'].min() * 1e3:.3f} ms")


def test_accuracy_constraint_and_unprobed_budget_violations(toy_table, tmp_path):
    calls = []
    limits = Limits(max_accuracy_drop_pp=1.0, latency_budget_s=1e-9)  # nothing fits
    prepared = toy_prepared(toy_table, tmp_path, trials=6, limits=limits, calls=calls)
    run_search(prepared)
    assert calls == []  # over the latency budget: never probed
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert not frame["feasible"].any() and not frame["is_pareto"].any()
    assert frame["accuracy"].isna().all() and not frame["probed"].any()  # unknown, not 0


def test_constraint_values_stored_per_trial(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6,
                            limits=Limits(max_accuracy_drop_pp=1.0))
    run_search(prepared)
    baseline = prepared.accuracy.baseline_accuracy
    for trial in load(prepared).get_trials():
        metrics = trial.user_attrs["metrics"]
        change = metrics["accuracy_change_pp"]  # negative: worse than all-digital
        assert change == pytest.approx((metrics["accuracy"] - baseline) * 100)
        drop = -change - 1.0  # the paired drop's estimate (--drop-rule mean) over the limit
        assert constraints_of(trial)["accuracy_drop_over_limit_pp"] == pytest.approx(drop)
        assert metrics["constraints"] == constraints_of(trial)
        assert trial.system_attrs[OPTUNA_CONSTRAINTS] == [pytest.approx(drop)]  # Optuna's
        assert (metrics["accuracy_change_ci_low_pp"] <= metrics["accuracy_change_pp"]
                <= metrics["accuracy_change_ci_high_pp"])
        assert metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"]


def test_upper_drop_rule_constrains_the_intervals_upper_end(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=8,
                            limits=Limits(max_accuracy_drop_pp=1.0, drop_rule="upper"))
    run_search(prepared)
    uncertain = 0
    for trial in load(prepared).get_trials():
        metrics = trial.user_attrs["metrics"]
        limit = constraints_of(trial)["accuracy_drop_over_limit_pp"]
        # the upper end of the drop's interval is the lower end of the change's
        assert limit == pytest.approx(-metrics["accuracy_change_ci_low_pp"] - 1.0)
        uncertain += metrics["accuracy_change_ci_low_pp"] < metrics["accuracy_change_pp"]
    assert uncertain  # some drop has an interval: the rule is not the mean in disguise


def test_resume_continues_the_same_study(toy_table, tmp_path):
    run_search(toy_prepared(toy_table, tmp_path, trials=6))
    run_search(toy_prepared(toy_table, tmp_path, trials=9))
    study = load(toy_prepared(toy_table, tmp_path))
    assert len(study.trials) == 9
    assert sum("baseline" in t.user_attrs for t in study.trials) == 4
    assert len(optuna.get_all_study_summaries(open_storage(
        toy_prepared(toy_table, tmp_path).storage_url))) == 1


def test_a_resume_with_a_larger_budget_runs_the_reference_points_it_lacked(toy_table,
                                                                          tmp_path):
    run_search(toy_prepared(toy_table, tmp_path, trials=2))  # 2 of the 8 queued points
    run_search(toy_prepared(toy_table, tmp_path, trials=12))
    trials = load(toy_prepared(toy_table, tmp_path)).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 12
    assert sorted(t.user_attrs["baseline"] for t in trials
                  if "baseline" in t.user_attrs) == sorted(BASELINES)
    assert sorted(t.user_attrs["safe_dram_of"] for t in trials
                  if "safe_dram_of" in t.user_attrs) == sorted(BASELINES)


def test_other_settings_under_the_same_name_is_an_error(toy_table, tmp_path):
    run_search(toy_prepared(toy_table, tmp_path, trials=5))
    before = (tmp_path / "toy" / "trials.csv").read_bytes()
    other = toy_prepared(toy_table, tmp_path, trials=5, identity_extra={"network": "other"})
    with pytest.raises(ConfigError, match="exists with other settings \\(network\\)"):
        run_search(other)
    assert len(load(other).trials) == 5
    assert (tmp_path / "toy" / "trials.csv").read_bytes() == before


def test_cost_only_objectives_skip_the_probe(toy_table, tmp_path):
    calls = []
    prepared = toy_prepared(toy_table, tmp_path, trials=8, objectives="latency,dram_energy",
                            calls=calls)
    summary = run_search(prepared)
    assert calls == [] and summary.objectives == ["latency", "dram_energy"]
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert frame["accuracy"].isna().all() and frame["feasible"].all()


def test_compute_only_search(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6, dram="none")
    run_search(prepared)
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert (frame["dram_energy_j"] == 0).all()
    assert not any(c.startswith("undervolt") for c in frame.columns)


def test_summary_claims_rest_on_confirmed_test_numbers(toy_table, tmp_path):
    # the median DIMM: its error-free tRCD and VDD ranges are wide enough for a few of 25
    # random trials to meet the drop limit (the worst DIMM's leave almost none)
    prepared = toy_prepared(toy_table, tmp_path, trials=25, sampler="random",
                            limits=Limits(max_accuracy_drop_pp=5.0), ber_quantile="median")
    summary = run_search(prepared)
    document = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert document["claims"] == summary.claims and summary.claims
    front = {row["trial"] for row in document["front"]}
    for item in summary.claims:
        assert item["change_percent"] < 0 and item["baseline"] in BASELINES
        assert item["trial"] in front and item["trial"] not in range(len(BASELINES))
        assert item["verdict"] in ("significant decrease", "significant increase",
                                   "equivalent", "inconclusive")
        if item.get("same_model"):  # the baseline's own safe DRAM point: not tested
            assert item["verdict"] == "equivalent" and item["p_value"] is None
            assert item["test_accuracy_change_pp"] == 0.0
        else:
            assert item["holm_tests"] == document["holm_tests"] >= 2
            assert 0 <= item["p_value"] <= item["p_adjusted"] <= 1
        assert np.isfinite(item["validation_accuracy_change_pp"])  # chosen on validation
        assert ("no measurable accuracy cost" in item["text"]) == (item["verdict"]
                                                                  == "equivalent")
        assert (item["test_accuracy_change_ci_low_pp"] <= item["test_accuracy_change_pp"]
                <= item["test_accuracy_change_ci_high_pp"])
        assert item["text"].startswith(f"{item['change_percent']:+.1f} % {item['metric']} at ")
        assert " pp test accuracy (95% CI " in item["text"]
    assert {b["baseline"] for b in document["baselines"]} == set(BASELINES)
    assert all(np.isfinite(b["test_accuracy"]) for b in document["baselines"])
    assert all(np.isfinite(row["test_accuracy"]) for row in document["front"])
    assert np.isfinite([row["latency_s"] for row in document["front"]]).all()
    assert summary.confirmation["measured"] == len(BASELINES) + len(front - set(range(4)))
    assert document["validation_to_test_shift"]["points"] == len(front)
    assert {item["kind"] for item in document["method_metrics"]} <= {"odimo", "eden"}
    assert document["selected_on"] == "validation" and document["reported_on"] == "test"
    # the limit the study records, else 1 pp (the toy's identity records none)
    assert document["equivalence_margin_pp"] == (
        prepared.identity.get("max_accuracy_drop") or 1.0)
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")  # EDEN's reference, per trial
    assert (frame["dram_energy_nominal_j"] >= frame["dram_energy_j"] * (1 - 1e-12)).all()
    nominal = frame["is_baseline"]  # at nominal DRAM already: the same energy
    assert np.allclose(frame.loc[nominal, "dram_energy_nominal_j"],
                       frame.loc[nominal, "dram_energy_j"])


def test_without_confirmation_there_is_no_claim_and_the_summary_says_why(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=8, confirm=False)
    summary = run_search(prepared)
    assert summary.claims == [] and "dse confirm" in summary.claims_note
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert frame["test_accuracy"].isna().all()
    assert {"accuracy_ci_low", "accuracy_ci_high", "accuracy_change_pp",
            "accuracy_change_ci_high_pp", "is_pareto_robust"} <= set(frame.columns)
    assert not {"accuracy_drop_pp", "test_accuracy_drop_pp"} & set(frame.columns)
    probed = frame[frame["probed"]]
    assert (probed["accuracy_ci_low"] <= probed["accuracy"]).all()
    assert (probed["accuracy"] <= probed["accuracy_ci_high"]).all()
    assert (frame["is_pareto_robust"] >= frame["is_pareto"]).all()


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "nsga3", "gp", "random", "qmc"])
def test_every_sampler_runs(toy_table, tmp_path, sampler):
    if sampler == "gp":
        pytest.importorskip("scipy", reason="the gp sampler needs the [gp] extra")
    prepared = toy_prepared(toy_table, tmp_path, trials=6, sampler=sampler)
    summary = run_search(prepared)
    assert summary.trials == {"COMPLETE": 6} and summary.front


def test_a_crashed_sqlite_worker_leaves_nothing_running(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=6)
    run_search(prepared)
    study = load(prepared)
    study.enqueue_trial(study.trials[0].params, user_attrs={"baseline": "all-digital"})
    orphan = study.ask()  # as a worker killed with -9 leaves it
    orphan.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    summary = run_search(toy_prepared(toy_table, tmp_path, trials=8))  # resumes, no wait
    study = load(prepared)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
    assert [t.user_attrs.get("baseline") for t in study.trials[orphan.number + 1:]
            ].count("all-digital") == 1  # the queued baseline ran again
    assert summary.front
    assert orphan.number not in [b["trial"] for b in summary.baselines]  # failed: left out


def test_workers_on_one_host_share_its_cpus_whatever_their_study(toy_table, tmp_path,
                                                                 monkeypatch):
    import dse.commands.search as search
    import dse.threads
    from dse.threads import HostWorkers, ThreadPolicy
    # the host's slots of this test alone: another dse search or test run on the machine
    # would otherwise hold some and change the counts below
    monkeypatch.setattr(dse.threads, "_registry_root", lambda: tmp_path / "slots")
    monkeypatch.setattr(search, "ThreadPolicy", lambda requested, workers: ThreadPolicy(
        requested, workers, cpus=4, apply=lambda threads: None))
    prepared = toy_prepared(toy_table, tmp_path, trials=5, sampler="random")
    other = prepared.config.replace(study="another", objectives="latency,energy")
    with search.worker_threads(other) as elsewhere:  # a worker of another study here
        assert elsewhere.refresh() == 4
        with HostWorkers(search.SEARCH_WORKERS) as mine:  # and this one
            assert elsewhere.refresh() == 2
            applied: list[int] = []
            policy = ThreadPolicy(None, mine, cpus=4, apply=applied.append)
            run_search(prepared, threads=policy)
    study = load(prepared)
    assert {t.user_attrs["worker"]["threads"] for t in study.trials} == {2}
    assert applied == [2]


def test_the_summary_says_what_the_safe_dram_point_gains(toy_table, tmp_path):
    from dse.commands.text import search_text
    prepared = toy_prepared(toy_table, tmp_path, trials=8, confirm=False)
    summary = run_search(prepared)
    notes = summary.dram_notes
    assert [note["baseline"] for note in notes] == ["all-digital", "all-analog",
                                                    "diana-heuristic", "min-latency"]
    for note in notes:
        assert note["energy_change_pct"] < 0 and note["dram_energy_change_pct"] < 0
        assert note["accuracy_change_pp"] == 0  # BER 0 everywhere: the same accuracy
    text = search_text(dataclasses.replace(summary, results_dir="r", storage="s"))
    # tRCD: DIVA's errors down to Voltron's 10 ns test point (13.18 ns here) are in the VDD
    # curve, 0 at 0.95 V; the grid's next step, 13.125 ns, is below it
    assert "all-digital at VDD 0.95 V, tRCD 13.375 ns (the lowest VDD and tRCD at which" in text
    assert "no measurable accuracy cost" in text
