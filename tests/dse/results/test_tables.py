"""Tables of a study: the front's reasons and the noise-aware front."""
from __future__ import annotations

import numpy as np
import pandas as pd


def test_an_empty_front_says_why():
    from dse.results.tables import empty_front_reason
    frame = pd.DataFrame({"state": ["COMPLETE", "COMPLETE", "FAIL"],
                          "constraint:latency_over_budget_s": [1e-3, 2e-3, None],
                          "constraint:energy_over_budget_j": [-1.0, 1.0, None]})
    assert empty_front_reason(frame) == ("none of the 2 complete trials meets every "
                                         "constraint (latency_over_budget_s by 2, "
                                         "energy_over_budget_j by 1)")
    assert empty_front_reason(frame.iloc[2:]) == "no trial has completed yet"


def test_robust_front_keeps_points_within_their_interval_of_the_front():
    from dse.results.tables import robust_front_mask
    frame = pd.DataFrame({  # accuracy up, latency down
        "trial": [0, 1, 2, 3],
        "accuracy": [0.95, 0.90, 0.94, 0.80],
        "accuracy_ci_high": [0.97, 0.92, 0.96, 0.85],
        "latency_s": [2.0, 1.0, 2.5, 3.0],
        "state": "COMPLETE", "feasible": True,
        "is_pareto": [True, True, False, False]})
    # trial 2: dominated by 0 at the means, not once its upper end (0.96 > 0.95) is used;
    # trial 3: dominated by 0 even at its upper end
    assert robust_front_mask(frame, ["accuracy", "latency"]).tolist() == [True, True, True,
                                                                           False]
    assert robust_front_mask(frame, ["latency"]).tolist() == [True, True, False, False]


def test_dominated_by_agrees_with_brute_force():
    from dse.pareto import dominated_by
    rng = np.random.default_rng(3)
    values, others = rng.integers(0, 4, (60, 3)).astype(float), rng.integers(0, 4, (9, 3))
    directions = ["maximize", "minimize", "minimize"]
    signs = np.array([-1, 1, 1])
    expected = [any(((o * signs) <= (v * signs)).all() and ((o * signs) < (v * signs)).any()
                     for o in others) for v in values]
    assert dominated_by(values, others.astype(float), directions).tolist() == expected


def test_the_csvs_give_each_partitions_absolute_dram_point_and_the_analog_share(toy_table,
                                                                              tmp_path):
    from toy import toy_prepared

    from dse.commands.search import run_search
    prepared = toy_prepared(toy_table, tmp_path, trials=6, sampler="random", confirm=False,
                            partitions=2)
    run_search(prepared)
    device = prepared.problem.device
    for name in ("trials.csv", "pareto.csv"):
        frame = pd.read_csv(prepared.out_dir / name)
        for k in (0, 1):
            assert np.allclose(frame[f"vdd_v:p{k}"],
                               device.vdd_nominal_v - frame[f"undervolt_mv:p{k}"] / 1000)
            assert np.allclose(frame[f"trcd_ns:p{k}"],
                               device.trcd_nominal_ns - frame[f"trcd_reduction_ns:p{k}"])
        analog = frame[[c for c in frame.columns if c.startswith("n_analog:")]].sum(axis=1)
        assert np.allclose(frame["analog_channel_fraction"], analog / (16 + 16 + 32 + 64 + 10))
    trials = pd.read_csv(prepared.out_dir / "trials.csv")
    baseline = trials[trials["baseline"] == "all-digital"]
    assert baseline[["vdd_v:p0", "trcd_ns:p1"]].to_numpy().tolist() == [[1.1, 18.125]]
