"""The frontier engine's drop model: measured gains count as no drop, the correction, and
the prediction intervals (the conformal one checked by simulation with a known truth)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dse.engines.frontier import (
    PREDICTION_LEVEL,
    _interval,
    fit_model,
    point_bers,
    prediction_half_pp,
    split_grid,
)
from dse.engines.testing import TOY_LAYERS
from dse.problem import Limits, build_problem
from dse.space import at_point
from hw_models import LayerTable

ON_CHIP = [layer for layer in TOY_LAYERS if layer["name"] != "big"]


@pytest.fixture(scope="module")
def problem():
    return build_problem(network="toy", dataset=None, objectives="accuracy,latency,energy",
                         limits=Limits(max_accuracy_drop_pp=None),
                         table=LayerTable.from_records(ON_CHIP))


def layer_record(problem, layer: int, n: int, drop: float, half: float = 0.5):
    n_analog = np.zeros(problem.table.n_layers, dtype=np.int64)
    n_analog[layer] = n
    info = {"role": "layer", "layer": str(problem.table.name[layer]), "n_analog": n,
            "half_pp": half}
    return info, at_point(problem.space, n_analog, None), drop


def full(problem, layer: int) -> int:
    return int(split_grid(problem.space)[layer][-1])


def test_a_measured_gain_counts_as_no_drop(problem):
    """A layer measured better than the baseline (the probe's noise) adds 0, unless asked
    for the raw terms; a measured loss is kept as it is."""
    records = [layer_record(problem, 0, full(problem, 0), -1.5),
               layer_record(problem, 2, full(problem, 2), 2.0)]
    bers = point_bers(problem)
    model, fitted = fit_model(problem, records, bers)
    raw, _ = fit_model(problem, records, bers, clip=False)
    assert fitted == 0
    assert model.split_drop_pp[0][-1] == 0.0 and raw.split_drop_pp[0][-1] == -1.5
    assert model.split_drop_pp[2][-1] == 2.0 == raw.split_drop_pp[2][-1]
    n_analog = [full(problem, 0), 0, full(problem, 2), 0]
    assert model.predicted_pp(problem, n_analog, None) == pytest.approx(2.0)
    assert raw.predicted_pp(problem, n_analog, None) == pytest.approx(0.5)


def test_the_terms_interval_adds_the_terms_in_quadrature(problem):
    records = [layer_record(problem, 0, full(problem, 0), 1.0, half=0.3),
               layer_record(problem, 2, full(problem, 2), 2.0, half=0.4)]
    model, _ = fit_model(problem, records, point_bers(problem))
    both = [full(problem, 0), 0, full(problem, 2), 0]
    assert model.terms_half_pp(problem, both, None) == pytest.approx(0.5)
    # halfway to a measured count: the half-width is interpolated as the term is
    half_count = [0, 0, full(problem, 2) // 2, 0]
    assert model.terms_half_pp(problem, half_count, None) == pytest.approx(0.2)


def test_the_correction_learns_a_bias_the_characterisation_missed(problem):
    """Verified points that all fell short of their prediction by 2 pp per unit of a
    layer's analog fraction: after the correction the model predicts them closer."""
    grid = split_grid(problem.space)
    records = [layer_record(problem, layer, full(problem, layer), 1.0)
               for layer in range(problem.table.n_layers) if len(grid[layer]) > 1]
    model, _ = fit_model(problem, records, point_bers(problem))
    rng = np.random.default_rng(0)
    verified = []
    cout = problem.table.cout
    for _ in range(30):
        n_analog = np.array([int(rng.choice(options)) for options in grid])
        truth = model.predicted_pp(problem, n_analog, None) + 2.0 * n_analog[0] / cout[0]
        verified.append(({"role": "verify"}, at_point(problem.space, n_analog, None), truth))
    corrected, fitted = fit_model(problem, records + verified, point_bers(problem))
    assert fitted == 30
    errors = [abs(corrected.predicted_pp(problem, c.n_analog, None) - d) -
              abs(model.predicted_pp(problem, c.n_analog, None) - d) for _, c, d in verified]
    assert np.mean(errors) < -0.5


def test_the_conformal_half_width_needs_enough_residuals():
    assert prediction_half_pp(list(range(18))) == math.inf  # ceil(19 x 0.95) = 19 > 18
    assert prediction_half_pp([-(k + 1.0) for k in range(19)]) == 19.0  # |residuals|
    assert prediction_half_pp([float(k) for k in range(39)]) == 37.0    # ceil(40 x .95)


@pytest.mark.parametrize("shape", ["normal", "heavy", "skewed"])
def test_the_conformal_interval_covers_as_stated(shape):
    """Simulated with a known truth: residuals exchangeable (drawn alike), 20-60 earlier
    ones; the new point's residual falls inside the interval at least 95 % of the time
    (within the simulation's own error), whatever the residuals' shape."""
    rng = np.random.default_rng(7)
    draws = {"normal": lambda size: rng.normal(0.3, 1.0, size),
             "heavy": lambda size: rng.standard_t(2, size),
             "skewed": lambda size: rng.exponential(1.5, size) - 0.5}[shape]
    held, trials = 0, 4000
    for trial in range(trials):
        n = 20 + trial % 41
        residuals = draws(n + 1)
        held += abs(residuals[-1]) <= prediction_half_pp(list(residuals[:-1]))
    coverage = held / trials
    assert coverage >= PREDICTION_LEVEL - 3 * math.sqrt(0.05 * 0.95 / trials)
    assert coverage <= 0.99  # not vacuous: about 95-97 %


def test_a_verified_point_gets_the_terms_interval_then_the_conformal_one(problem):
    records = [layer_record(problem, 0, full(problem, 0), 1.0, half=0.3)]
    model, _ = fit_model(problem, records, point_bers(problem))
    candidate = at_point(problem.space, [full(problem, 0), 0, 0, 0], None)
    early = _interval(model, problem, candidate, 1.0, records)
    assert early["interval"] == "terms"
    assert early["predicted_low_pp"] == pytest.approx(0.7)
    assert early["predicted_high_pp"] == pytest.approx(1.3)
    verified = [({"role": "verify", "predicted_drop_pp": 1.0}, candidate, 1.0 + 0.1 * k)
                for k in range(1, 20)]
    later = _interval(model, problem, candidate, 1.0, records + verified)
    assert later["interval"] == "conformal (19 earlier)"
    assert later["predicted_high_pp"] == pytest.approx(1.0 + 1.9)


def test_the_dram_probes_spread_over_log_ber_not_over_rank():
    """LPDDR4 streamed: 20 distinct BERs, two below 1e-8 and 18 above 0.2; the probes take
    both that work and two beyond the jump (by rank, three of four were beyond it)."""
    from dse.engines.frontier import dram_probe_bers
    grid = [5.8e-11, 6.9e-9] + list(np.linspace(0.228, 0.434, 18))
    picked = dram_probe_bers(grid, 4)
    assert picked[:2] == [5.8e-11, 6.9e-9] and len(picked) == 4
    assert all(value in grid for value in picked) and picked[-1] == grid[-1]
    assert dram_probe_bers([1e-6, 1e-6, 1e-3], 4) == [1e-6, 1e-3]  # fewer than asked
    assert dram_probe_bers([1e-5], 4) == [1e-5]


def test_the_conformal_interval_uses_the_last_forty_residuals(problem):
    """Early residuals of a model since corrected (10 pp) do not widen the interval once
    forty later ones (0.5 pp) follow them."""
    records = [layer_record(problem, 0, full(problem, 0), 1.0, half=0.3)]
    model, _ = fit_model(problem, records, point_bers(problem))
    candidate = at_point(problem.space, [full(problem, 0), 0, 0, 0], None)
    old = [({"role": "verify", "predicted_drop_pp": 1.0}, candidate, 11.0)] * 20
    recent = [({"role": "verify", "predicted_drop_pp": 1.0}, candidate, 1.5)] * 40
    found = _interval(model, problem, candidate, 1.0, records + old + recent)
    assert found["interval"] == "conformal (40 earlier)"
    assert found["predicted_high_pp"] == pytest.approx(1.5)
