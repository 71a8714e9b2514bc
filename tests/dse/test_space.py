"""The search space, driven by optuna.trial.FixedTrial."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from toy import toy_problem

from dse.space import (
    Candidate,
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
              "undervolt_mv": 100, "trcd_reduction_ns": 2.5,
              **{f"approx_weights:{n}": n in ("mid", "big") for n in toy_table.name},
              "approx_activations:big": True}
    candidate = suggest_candidate(optuna.trial.FixedTrial(params), space)
    assert candidate == Candidate(
        n_analog=(16, 0, 16, 48, 10), vdd_v=1.0, trcd_ns=15.625,
        weights_approx=(False, False, True, True, False),
        activations_approx=(False, False, False, True, False))
    with pytest.raises(AttributeError):
        candidate.vdd_v = 0.9  # frozen


def test_space_has_no_parameter_for_depthwise_or_on_chip_activations(toy_table):
    space = toy_problem(toy_table).space
    assert space.spilled == (False, False, False, True, False)
    study = optuna.create_study()
    trial = study.ask()
    suggest_candidate(trial, space)
    names = set(trial.params)
    assert "n_analog:dw" not in names
    assert {"approx_activations:big"} == {n for n in names if n.startswith("approx_act")}
    assert space.max_undervolt_mv == 250  # lpddr4 B: 1.1 V down to 0.835 V in 25 mV steps
    assert space.max_trcd_reduction_ns == 9.0


def test_ranges_respect_the_device(toy_table):
    space = toy_problem(toy_table).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        candidate = suggest_candidate(study.ask(), space)
        assert 0.835 <= candidate.vdd_v <= 1.1 and 9.0625 <= candidate.trcd_ns <= 18.125
        assert all(0 <= n <= c for n, c in zip(candidate.n_analog, toy_table.cout))
        assert candidate.n_analog[1] == 0


def test_compute_only_space(toy_table):
    space = toy_problem(toy_table, dram="none").space
    trial = optuna.create_study().ask()
    candidate = suggest_candidate(trial, space)
    assert candidate.vdd_v is None and not any(candidate.weights_approx)
    assert all(name.startswith("n_analog:") for name in trial.params)


def test_baseline_params_round_trip(toy_table):
    space = toy_problem(toy_table).space
    baseline = nominal_candidate(space, np.array([16, 0, 32, 64, 10]))
    candidate = suggest_candidate(optuna.trial.FixedTrial(encode(baseline, space)), space)
    assert candidate == baseline
    assert candidate.vdd_v == 1.1 and candidate.trcd_ns == 18.125
    assert not any(candidate.weights_approx) and not any(candidate.activations_approx)


@pytest.mark.parametrize("dram", ["lpddr4-3200", "none"])
def test_encode_and_decode_are_exact_inverses(toy_table, dram):
    space = toy_problem(toy_table, dram=dram).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        trial = study.ask()
        candidate = suggest_candidate(trial, space)
        assert encode(candidate, space) == trial.params  # same names, values and types
        assert decode(trial.params, space) == candidate
        assert decode(encode(candidate, space), space) == candidate


def test_distributions_cover_exactly_the_sampled_parameters(toy_table):
    space = toy_problem(toy_table).space
    trial = optuna.create_study().ask()
    suggest_candidate(trial, space)
    assert param_distributions(space) == trial.distributions


def test_decode_names_a_missing_parameter(toy_table):
    from hw_models import ConfigError
    space = toy_problem(toy_table).space
    with pytest.raises(ConfigError, match="n_analog:mid"):
        decode({"n_analog:first": 0}, space)
