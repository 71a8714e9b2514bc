"""Pareto masks and hypervolume on hand-made tables, and against Optuna."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from dse.pareto import hypervolume, pareto_mask


def test_mask_with_ties_and_mixed_directions():
    # (accuracy: maximise, latency: minimise)
    values = np.array([[0.9, 1.0],    # front
                       [0.8, 1.0],    # dominated by row 0
                       [0.95, 2.0],   # front
                       [0.95, 2.0],   # a tie with row 2: both stay
                       [0.7, 0.5],    # front
                       [0.7, 0.6],    # dominated by row 4
                       [np.inf, 0.1]  # not finite: never on the front
                       ])
    mask = pareto_mask(values, ["maximize", "minimize"])
    assert mask.tolist() == [True, False, True, True, True, False, False]


def test_mask_three_objectives():
    values = np.array([[1, 1, 1], [0, 2, 2], [2, 0, 2], [2, 2, 0], [2, 2, 2], [1, 1, 1.5]])
    assert pareto_mask(values, ["minimize"] * 3).tolist() == [True, True, True, True, False,
                                                              False]


def test_mask_matches_optuna_best_trials():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: [t.suggest_float("a", 0, 1), t.suggest_int("b", 0, 5),
                              t.suggest_float("c", 0, 1)], n_trials=120)
    values = np.array([t.values for t in study.trials])
    mask = pareto_mask(values, ["maximize", "minimize", "minimize"])
    assert set(np.flatnonzero(mask)) == {t.number for t in study.best_trials}


def test_hypervolume_by_hand():
    reference = np.array([1.0, 1.0])
    assert hypervolume(np.array([[0.5, 0.5]]), reference) == pytest.approx(0.25)
    # two boxes 0.5 x 0.75 and 0.75 x 0.5 overlapping in 0.5 x 0.5: 0.375 + 0.375 - 0.25
    points = np.array([[0.5, 0.25], [0.25, 0.5]])
    assert hypervolume(points, reference) == pytest.approx(0.5)
    assert hypervolume(np.array([[2.0, 0.0]]), reference) == 0.0  # outside the box
    cube = hypervolume(np.array([[0.5, 0.5, 0.5], [0.0, 0.9, 0.9]]), np.ones(3))
    assert cube == pytest.approx(0.125 + 0.01 - 0.5 * 0.1 * 0.1)
