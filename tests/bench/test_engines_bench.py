"""bench/engines.py: the budget conversion and the table's columns, on constructed rows."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from dse.config import SearchConfig
from hw_models import load_soc

PATH = Path(__file__).resolve().parents[2] / "bench" / "engines.py"
spec = importlib.util.spec_from_file_location("bench_engines", PATH)
assert spec is not None and spec.loader is not None
engines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(engines)

BASE = SearchConfig.from_options(network="resnet8", dataset="digits")
TRAIN_IMAGES = 1258


def test_streamed_preset_streams_the_weights_and_is_written_once(tmp_path):
    path = Path(engines.streamed_preset(tmp_path))
    assert load_soc(path).memory.weights_resident is False
    assert load_soc("diana").memory.weights_resident == "auto"
    before = path.stat().st_mtime_ns
    engines.streamed_preset(tmp_path)
    assert path.stat().st_mtime_ns == before


def test_eden_gets_every_split_when_nothing_is_in_dram():
    counts = engines.eden_samples_per_split(BASE, TRAIN_IMAGES)
    assert set(counts.values()) == {0}  # resnet8 keeps its weights and activations on chip
    assert engines.settings_for("eden", 200_000, BASE, TRAIN_IMAGES) == {"trials": 12}


def test_eden_and_odimo_eden_are_sized_to_the_budget_when_weights_stream(tmp_path):
    from dse.engines.eden import DEFAULT_RETRAIN_EPOCHS
    streamed = BASE.replace(hw=engines.streamed_preset(tmp_path))
    counts = engines.eden_samples_per_split(streamed, TRAIN_IMAGES)
    retrain = DEFAULT_RETRAIN_EPOCHS * TRAIN_IMAGES  # once per split; characterising is free
    assert set(counts.values()) == {retrain}
    per_probe = engines.probe_samples(streamed)
    room = 8 * per_probe + 4 * (retrain + per_probe)  # the queued trials, four splits
    assert engines.settings_for("eden", room, streamed, TRAIN_IMAGES) == {"trials": 12}
    assert engines.settings_for("eden", room - 1, streamed, TRAIN_IMAGES) == {"trials": 11}
    assert engines.settings_for("eden", 1, streamed, TRAIN_IMAGES) == {"trials": 9}  # one
    pipeline = engines.settings_for("odimo+eden", 200_000, streamed, TRAIN_IMAGES)
    assert pipeline == {"trials": 9, "--lambdas": "0.00258"}
    wide = engines.settings_for("odimo+eden", 200_000, streamed, TRAIN_IMAGES, 10, 0)
    per_lambda = 10 * TRAIN_IMAGES + per_probe + retrain + per_probe
    assert wide["trials"] == 8 + (200_000 - 8 * per_probe) // per_lambda
    odimo = engines.settings_for("odimo", 200_000, streamed, TRAIN_IMAGES)
    assert odimo == {"trials": 9, "--lambdas": "0.00258"}  # ODiMO's 200 + 200 epochs: one
    per_lambda = (200 + 200) * TRAIN_IMAGES + per_probe
    odimo = engines.settings_for("odimo", 8 * per_probe + 3 * per_lambda, streamed,
                                 TRAIN_IMAGES)
    assert odimo["trials"] == 11 and len(odimo["--lambdas"].split(",")) == 3
    truncated = engines.settings_for("odimo", 200_000, streamed, TRAIN_IMAGES, 10, 0)
    assert truncated == {"trials": 15,
                         "--lambdas": "0,0.000258,0.00129,0.00258,0.00644,0.0129,0.0258"}


def row(seed: int, volume: float, metrics=()) -> dict:
    return {"seed": seed, "hypervolume": volume, "method_metrics": list(metrics)}


def test_paired_differences_match_seeds():
    reference = [row(0, 0.30), row(1, 0.31), row(2, math.nan)]
    mine = [row(0, 0.29), row(1, 0.33), row(2, 0.30), row(3, 0.5)]
    text = engines._paired_differences(mine, reference)
    assert text == "+0.0050 [-0.0100, +0.0200] (1/2 above 0)"
    assert engines._paired_differences(mine, []) == "n/a"


def test_runs_on_different_checkpoints_do_not_pair():
    """A checkpoint trained afresh is another network: the same seed on another one is not
    a pair (nor is a row that recorded none with one that did)."""
    def on(checkpoint, seed, volume):
        return {**row(seed, volume), "checkpoint_sha256": checkpoint}
    reference = [on("a", 0, 0.30), on("b", 1, 0.31), row(2, 0.40)]
    mine = [on("a", 0, 0.35), on("a", 1, 0.35), on("a", 2, 0.35)]
    assert engines._paired_differences(mine, reference) == \
        "+0.0500 [+0.0500, +0.0500] (1/1 above 0)"
    assert engines.paired_against_best(mine[1:], reference) == "n/a"


def test_a_resumed_benchmark_skips_only_runs_on_the_same_checkpoint():
    done = [{"dataset": "cifar10", "engine": "optuna-tpe", "seed": 0, "checkpoint_sha256": "a"},
            {"dataset": "cifar10", "engine": "eden", "seed": 1}]  # from before the hash
    assert engines.already_run(done, "cifar10", "optuna-tpe", 0, "a")
    assert not engines.already_run(done, "cifar10", "optuna-tpe", 0, "b")  # another network
    assert not engines.already_run(done, "cifar10", "optuna-tpe", 1, "a")
    assert not engines.already_run(done, "digits", "optuna-tpe", 0, "a")
    assert not engines.already_run(done, "cifar10", "frontier", 0, "a")
    assert not engines.already_run(done, "cifar10", "eden", 1, "a")


@pytest.mark.parametrize("extra, words", [
    (["--only", "digits", "--checkpoint", "none.pt"], "none.pt: no such file"),
    (["--checkpoint", str(PATH)], "give --only"),
])
def test_a_given_checkpoint_is_checked_before_anything_runs(tmp_path, monkeypatch, extra,
                                                            words):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["engines.py", "--results-dir", "r", *extra])
    with pytest.raises(SystemExit, match=words):
        engines.main()
    assert not list((tmp_path / "r").rglob("*.jsonl"))


def test_the_versus_table_pairs_each_engine_with_each_other_and_adjusts_for_them_all():
    def on(engine, seed, volume, within, samples=100):
        return {"dataset": "cifar10", "engine": engine, "seed": seed, "hypervolume": volume,
                "hypervolume_within_limit": within, "samples": samples,
                "checkpoint_sha256": "a"}
    here = [on("frontier", seed, 0.75, 0.5 + seed / 100, 25) for seed in range(5)]
    there = ([on("optuna-tpe", seed, 0.5, 0.4) for seed in range(5)]
             + [on("random", seed, 0.74 + seed / 100, 0.5) for seed in range(3)])
    lines = engines.versus_table(here, there, ["cifar10"], ["frontier"],
                                 ["optuna-tpe", "random", "eden"], "big")
    assert len(lines) == 4  # the header, its rule and one row per engine there with rows
    tpe, random = lines[2].split(" | "), lines[3].split(" | ")
    # five seeds all above: p 2/32 = 0.0625, Holm over the 4 tests multiplies it by 4
    assert tpe[3].startswith("+0.2500 [") and "p 0.062, Holm 0.250 (5/5)" in tpe[3]
    assert "+0.1200 [" in tpe[4] and "(5/5)" in tpe[4]
    assert random[3].startswith("-0.0000") or random[3].startswith("+0.0000")
    assert "(1/3)" in random[3] and tpe[5] == "0.25 |"


def test_the_best_engine_is_chosen_on_the_seeds_every_engine_has():
    def on(engine, seed, volume):
        return {"engine": engine, "seed": seed, "hypervolume": volume,
                "checkpoint_sha256": "a"}
    # b is ahead on seed 0, the only seed both have; a's mean is lifted by a seed b lacks
    rows = [on("a", 0, 0.5), on("a", 1, 0.9), on("b", 0, 0.6)]
    assert engines.best_engine(rows, ["a", "b", "c"], "hypervolume") == "b"
    assert engines.best_engine([on("a", 0, 0.5), on("b", 1, 0.6)], ["a", "b"],
                               "hypervolume") == "b"  # no seed shared: each its own mean
    assert engines.best_engine([], ["a"], "hypervolume") is None


def test_each_engine_against_the_best_is_holm_adjusted_over_the_engines():
    def on(engine, seed, volume):
        return {"engine": engine, "seed": seed, "hypervolume": volume,
                "checkpoint_sha256": "a"}
    rows = ([on("best", seed, 0.8) for seed in range(5)]
            + [on("b", seed, 0.7) for seed in range(5)]
            + [on("c", seed, 0.6) for seed in range(5)] + [on("d", 9, 0.1)])
    columns = engines.against_best(rows, ["best", "b", "c", "d"], "best", "hypervolume")
    assert set(columns) == {"b", "c", "d"} and columns["d"] == "n/a"  # no seed shared
    assert columns["b"].endswith("p 0.062 (0/5 above 0), Holm 0.125")  # two verdicts
    assert columns["c"].startswith("-0.2000 [")


def test_the_samples_plot_is_written(tmp_path):
    runs = [("frontier (64k)", {"samples": 4.6e4, "hypervolume": 0.75,
                                "hypervolume_within_limit": 0.38}),
            ("eden (256k)", {"samples": 5.1e3, "hypervolume": 0.35})]  # a row from before
    engines.samples_plot(runs, tmp_path / "s.svg")
    assert (tmp_path / "s.svg").read_text().count("<svg") == 1


def test_paper_metric_takes_each_seeds_best_and_counts_the_seeds():
    odimo = {"kind": "odimo", "metric": "compute_latency", "baseline": "diana-heuristic"}
    rows = [row(0, 0.3, [{**odimo, "change_percent": -3.0}, {**odimo, "change_percent": -5.0},
                         {**odimo, "baseline": "all-analog", "change_percent": -50.0}]),
            row(1, 0.3, [{**odimo, "change_percent": -1.0}]),
            row(2, 0.3, [])]
    text = engines._paper_metric(rows, "odimo", "compute_latency", "diana-heuristic")
    assert text == "-3.0 % [-5.0, -1.0] (2/3 seeds)"
    assert engines._paper_metric(rows, "eden", "dram_energy", None) == "none"


@pytest.mark.parametrize("summary, expected", [
    ({"baselines": [], "front": []}, None),
    ({"baselines": [{"baseline": "all-digital", "latency_s": 2.0, "energy_j": 4.0}],
      "front": [{"test_accuracy": 0.5, "latency_s": 1.0, "energy_j": 2.0}]},
     0.5 * 1.0 * 1.0),  # box (1 - 0.5) x (1.5 - 0.5) x (1.5 - 0.5)
])
def test_confirmed_hypervolume_is_normalised_by_all_digital(summary, expected):
    volume, _ = engines.confirmed_hypervolume(summary)
    if expected is None:
        assert math.isnan(volume)
    else:
        assert volume == pytest.approx(expected)


def test_confirmed_front_counts_the_engines_own_points():
    base = {"baseline": "all-digital", "safe_dram_of": "", "latency_s": 2.0, "energy_j": 4.0,
            "test_accuracy": 0.9}
    summary = {"baselines": [base], "front": [
        {**base, "baseline": "", "safe_dram_of": "all-digital", "energy_j": 3.0},
        {**base, "baseline": "", "latency_s": 1.0, "energy_j": 3.5},  # own, on the front
        {**base, "baseline": None, "safe_dram_of": None, "energy_j": 3.5},  # own, dominated
    ]}
    volume, front, own = engines.confirmed_front(summary)
    assert len(front) == 2 and own == 1 and volume > 0


def test_within_the_limit_keeps_only_the_points_that_meet_it_on_test():
    """A point 1.5 pp below all-digital on test is out at a 1 pp limit, one 0.8 pp below
    is in; with none in, the hypervolume is 0 (not n/a: the front is there, and empty)."""
    base = {"baseline": "all-digital", "safe_dram_of": "", "latency_s": 2.0, "energy_j": 4.0,
            "test_accuracy": 0.900}
    cheap = {**base, "baseline": "", "latency_s": 0.5, "energy_j": 1.0}
    summary = {"baselines": [base], "front": [base, {**cheap, "test_accuracy": 0.885},
                                               {**cheap, "energy_j": 2.0,
                                                "test_accuracy": 0.892}]}
    everything, front, _ = engines.confirmed_front(summary)
    within, kept, _ = engines.confirmed_front(summary, 1.0)
    assert len(front) == 3 and len(kept) == 2 and 0 < within < everything
    assert {round(1 - p[0], 3) for p in kept} == {0.900, 0.892}
    assert engines.confirmed_front(summary, 0.5)[0] == pytest.approx(
        engines.confirmed_front({"baselines": [base], "front": [base]})[0])
    assert engines.within_limit(0.89, 0.90, 1.0)  # exactly at the limit: in
    nothing = {"baselines": [base], "front": [{**cheap, "test_accuracy": 0.5}]}
    assert engines.confirmed_front(nothing, 1.0)[0] == 0.0


def test_the_within_limit_table_pairs_seeds_against_its_own_best(capsys):
    def row(engine, seed, volume):
        return {"dataset": "cifar10", "engine": engine, "seed": seed, "front": [(0, 1, 1)] * 2,
                "hypervolume_within_limit": volume, "within_limit_points": 1}
    rows = [row("frontier", s, 0.2) for s in range(5)] + [
        row("optuna-tpe", s, 0.3 + 0.01 * s) for s in range(5)]
    engines.within_limit_table(rows, [("cifar10", None)], ["frontier", "optuna-tpe"])
    out = capsys.readouterr().out
    assert "| cifar10 | optuna-tpe | 0.3200 [0.3000, 0.3400] | 1.0 / 2.0 | best (optuna-tpe) |" \
        in out
    assert "| cifar10 | frontier | 0.2000 [0.2000, 0.2000] | 1.0 / 2.0 | -0.1200 [" in out
    assert "p 0.062 (0/5 above 0)" in out


def test_run_location_keeps_the_scenarios_apart():
    resident = engines.run_location("r", "digits", "resident", "odimo+eden", 2)
    streamed = engines.run_location("r", "digits", "streamed", "odimo+eden", 2)
    assert resident == (Path("r/digits/odimo-eden-s2"), "engines-digits-odimo-eden-s2")
    assert streamed == (Path("r/digits-streamed/odimo-eden-s2"),
                        "engines-digits-streamed-odimo-eden-s2")


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end(tmp_path):
    """One tiny run of the whole script (search, confirmation, table): a renamed module the
    script reaches into fails here, not in the middle of an hour-long benchmark."""
    import subprocess
    import sys
    result = subprocess.run(
        [sys.executable, str(PATH), "--only", "digits", "--seeds", "1", "--engines", "random",
         "--budget-samples", "4000", "--probe-steps", "1", "--confirm-steps", "1",
         "--epochs", "1", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| digits | random |" in result.stdout


def test_the_sign_flip_test_is_exact_and_its_interval_is_its_dual():
    """All of n differences on one side: p = 2 / 2^n, so 5 seeds can never reach 5 % (their
    interval is unbounded) and 6 can; the interval's ends are where p crosses 5 %."""
    assert engines.sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert engines.sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 64)
    assert engines.sign_flip_interval([0.1, 0.2, 0.3, 0.4, 0.5]) == (-math.inf, math.inf)
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    low, high = engines.sign_flip_interval(values)
    assert 0 < low < 0.35 < high
    assert engines.sign_flip_p(values, low * 1.001) > 0.05 >= engines.sign_flip_p(values,
                                                                                  low * 0.99)


def test_the_sign_flip_interval_covers_a_known_centre():
    """By simulation with a known truth: 8 seeds, symmetric differences about 0.3."""
    import numpy as np
    rng = np.random.default_rng(0)
    draws = 200
    covered = 0
    for _ in range(draws):
        values = list(0.3 + rng.standard_t(3, size=8) * 0.05)
        low, high = engines.sign_flip_interval(values)
        covered += low <= 0.3 <= high
    assert covered / draws >= 0.92  # nominal 95 %; 200 draws: +-1.5 % standard error


def test_the_frontiers_retraining_comes_out_of_its_budget():
    from dse.engines.eden import DEFAULT_RETRAIN_EPOCHS
    from dse.engines.frontier import DEFAULT_RETRAIN
    per_probe = engines.probe_samples(BASE)
    retraining = DEFAULT_RETRAIN * DEFAULT_RETRAIN_EPOCHS * TRAIN_IMAGES
    budget = 8 * per_probe + retraining + 30 * per_probe
    assert engines.settings_for("frontier", budget, BASE, TRAIN_IMAGES) == {
        "trials": 38, "--frontier-retrain": DEFAULT_RETRAIN}
    rounds = engines.settings_for("frontier-rounds", budget, BASE, TRAIN_IMAGES)
    assert rounds["trials"] == 38 + retraining // per_probe  # no stage, no room kept
    # a budget with room for one retraining (and its trial's probe) but not two: one
    one = DEFAULT_RETRAIN_EPOCHS * TRAIN_IMAGES
    small = 8 * per_probe + one + per_probe + 2 * per_probe
    assert one + per_probe > 2 * per_probe  # no room for a second retraining
    assert engines.settings_for("frontier", small, BASE, TRAIN_IMAGES) == {
        "trials": 8 + 3, "--frontier-retrain": 1}
    assert engines.settings_for("frontier", 8 * per_probe + one, BASE, TRAIN_IMAGES) == {
        "trials": 8 + one // per_probe, "--frontier-retrain": 0}
    assert engines.ENGINES["frontier-rounds"] == ("frontier", {"--frontier-retrain": 0})
    from dse.engines import engine_spec
    for knobs in (engines.ENGINES["frontier-rounds"][1],
                  engines.settings_for("frontier", small, BASE, TRAIN_IMAGES)):
        settings = engine_spec("frontier").make_settings(  # as run_one makes them
            {key: value for key, value in knobs.items() if key.startswith("--")})
        assert settings.retrain == knobs["--frontier-retrain"]


def test_samples_used_counts_the_frontiers_retraining():
    import optuna
    study = optuna.create_study()
    for attrs in ({"metrics": {"probed": True}},
                  {"metrics": {"probed": True, "probe_cached": True}},
                  {"metrics": {"probed": True}, "frontier": {"role": "retrain",
                                                             "samples": 6290}}):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.0)
    assert engines.samples_used(study, BASE) == 2 * engines.probe_samples(BASE) + 6290
