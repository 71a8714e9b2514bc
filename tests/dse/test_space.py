"""The search space, driven by optuna.trial.FixedTrial."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from toy import toy_problem

from dse.space import (
    Candidate,
    absolute_points,
    channel_step,
    decode,
    encode,
    nominal_candidate,
    param_distributions,
    suggest_candidate,
)


def test_channel_grid_always_ends_at_cout():
    assert [channel_step(c) for c in (16, 64, 10, 8, 200, 3, 17)] == [16, 16, 10, 8, 10, 3, 1]


def test_fixed_trial_gives_a_frozen_candidate(toy_table):
    space = toy_problem(toy_table).space
    params = {"n_analog:first": 16, "n_analog:mid": 16, "n_analog:big": 48, "n_analog:fc": 10,
              "undervolt_mv": 100, "trcd_reduction_ns": 2.5}
    candidate = suggest_candidate(optuna.trial.FixedTrial(params), space)
    assert candidate == Candidate(n_analog=(16, 0, 16, 48, 10), vdd_v=(1.0,),
                                  trcd_ns=(15.625,), weight_partition=(0,) * 5,
                                  activation_partition=(0,) * 5)
    with pytest.raises(AttributeError):
        candidate.vdd_v = (0.9,)  # frozen


def test_whole_device_space_has_one_point_and_no_placement(toy_table):
    space = toy_problem(toy_table).space
    assert space.partitions == 1
    # the toy's weights (43 kB) stay in L2; big's input + output (512 kB) spill, so its
    # input and its output (fc's input) live in DRAM
    assert space.dram_weights == (False,) * 5
    assert space.dram_activations == (False, False, False, True, True)
    trial = optuna.create_study().ask()
    suggest_candidate(trial, space)
    assert "n_analog:dw" not in trial.params
    assert {n for n in trial.params if not n.startswith("n_analog:")} == {
        "undervolt_mv", "trcd_reduction_ns"}
    # lpddr4 B, max: 1.1 V down to 0.9 V in 25 mV steps, the last one above the max's
    # usable floor 0.876 V (Voltron's 1.075 V at the same fraction of nominal)
    assert space.max_undervolt_mv == 200
    assert space.max_trcd_reduction_ns == 9.0


def test_partitioned_space_places_every_tensor_that_can_live_in_dram(toy_table):
    space = toy_problem(toy_table, partitions=2).space
    trial = optuna.create_study().ask()
    candidate = suggest_candidate(trial, space)
    assert {n for n in trial.params if not n.startswith("n_analog:")} == {
        "undervolt_mv:p0", "trcd_reduction_ns:p0", "undervolt_mv:p1", "trcd_reduction_ns:p1",
        "partition:activations/big", "partition:activations/fc"}
    assert len(candidate.vdd_v) == len(candidate.trcd_ns) == 2
    assert candidate.activation_partition[3] == trial.params["partition:activations/big"]


@pytest.mark.parametrize("count", [0, 3, 9])
def test_partition_counts_the_device_cannot_hold(toy_table, count):
    from hw_models import ConfigError
    with pytest.raises(ConfigError, match=f"cannot hold {count} equal partitions: it has 8 "
                                          "banks"):
        toy_problem(toy_table, partitions=count)


def test_ranges_respect_the_device(toy_table):
    space = toy_problem(toy_table, partitions=4).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        candidate = suggest_candidate(study.ask(), space)
        assert all(0.9 <= v <= 1.1 for v in candidate.vdd_v)
        assert all(9.0625 <= t <= 18.125 for t in candidate.trcd_ns)
        assert all(0 <= n <= c for n, c in zip(candidate.n_analog, toy_table.cout))
        assert candidate.n_analog[1] == 0
        assert all(0 <= p < 4 for p in candidate.activation_partition)


def test_compute_only_space(toy_table):
    space = toy_problem(toy_table, dram="none").space
    trial = optuna.create_study().ask()
    candidate = suggest_candidate(trial, space)
    assert candidate.vdd_v is None and not any(candidate.weight_partition)
    assert all(name.startswith("n_analog:") for name in trial.params)


@pytest.mark.parametrize("partitions", [1, 2])
def test_baseline_params_round_trip(toy_table, partitions):
    space = toy_problem(toy_table, partitions=partitions).space
    baseline = nominal_candidate(space, np.array([16, 0, 32, 64, 10]))
    candidate = suggest_candidate(optuna.trial.FixedTrial(encode(baseline, space)), space)
    assert candidate == baseline
    assert candidate.vdd_v == (1.1,) * partitions
    assert candidate.trcd_ns == (18.125,) * partitions


@pytest.mark.parametrize("dram, partitions", [("lpddr4-3200", 1), ("lpddr4-3200", 4),
                                              ("none", 1)])
def test_encode_and_decode_are_exact_inverses(toy_table, dram, partitions):
    space = toy_problem(toy_table, dram=dram, partitions=partitions).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        trial = study.ask()
        candidate = suggest_candidate(trial, space)
        assert encode(candidate, space) == trial.params  # same names, values and types
        assert decode(trial.params, space) == candidate
        assert decode(encode(candidate, space), space) == candidate


@pytest.mark.parametrize("partitions", [1, 4])
def test_absolute_points_are_the_candidates_vdd_and_trcd(toy_table, partitions):
    space = toy_problem(toy_table, partitions=partitions).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(20):
        trial = study.ask()
        candidate = suggest_candidate(trial, space)
        points = absolute_points(trial.params, space.device)
        names = ([("vdd_v", "trcd_ns")] if partitions == 1 else
                 [(f"vdd_v:p{k}", f"trcd_ns:p{k}") for k in range(partitions)])
        assert list(points) == [name for pair in names for name in pair]
        assert [points[vdd] for vdd, _ in names] == list(candidate.vdd_v)
        assert [points[trcd] for _, trcd in names] == list(candidate.trcd_ns)


@pytest.mark.parametrize("partitions", [1, 2])
def test_distributions_cover_exactly_the_sampled_parameters(toy_table, partitions):
    space = toy_problem(toy_table, partitions=partitions).space
    trial = optuna.create_study().ask()
    suggest_candidate(trial, space)
    assert param_distributions(space) == trial.distributions


def test_decode_names_a_missing_parameter(toy_table):
    from hw_models import ConfigError
    space = toy_problem(toy_table).space
    with pytest.raises(ConfigError, match="n_analog:mid"):
        decode({"n_analog:first": 0}, space)


@pytest.mark.parametrize("quantile, floors", [
    ("median", {"A": 1.1, "B": 1.05, "C": 1.175}),
    ("p90", {"A": 1.125, "B": 1.075, "C": 1.25}),
    ("max", {"A": 1.125, "B": 1.075, "C": 1.25}),
    ("mean", {"A": 1.125, "B": 1.075, "C": 1.25}),
])
def test_the_vdd_grid_stops_at_the_quantiles_usable_floor(toy_table, quantile, floors):
    """DDR3L (the measured device, 25 mV grid = Voltron's steps): the grid ends exactly at
    the floor below which stopped or saturated DIMMs leave the statistic unknown."""
    from dse.problem import build_problem
    from dse.space import vdd_grid_v

    for vendor, floor in floors.items():
        problem = build_problem(network="toy", dataset=None, dram="ddr3l-1600",
                                vendor=vendor, ber_quantile=quantile, table=toy_table)
        grid = vdd_grid_v(problem.space)
        assert grid[0] == 1.35 and grid[-1] == pytest.approx(floor)
    lpddr4 = toy_problem(toy_table, ber_quantile=quantile).space
    low = lpddr4.device.vdd_range_v("B", quantile)[0]
    grid = vdd_grid_v(lpddr4)
    assert grid[-1] >= low - 1e-9 and grid[-1] - 0.025 < low
