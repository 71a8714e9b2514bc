"""Pareto masks, hypervolume and its history: hand-made tables, Optuna, brute force."""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import optuna
import pandas as pd
import pytest

from dse.pareto import hypervolume, hypervolume_history, pareto_mask, to_losses
from dse.results import plots


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


# --- cross-checks against brute force on seeded random data ---------------------------------

def brute_force_mask(losses: np.ndarray) -> np.ndarray:
    """O(n^2) definition: finite rows that no finite row dominates."""
    valid = np.isfinite(losses).all(axis=1)
    weakly = (losses[None, :, :] <= losses[:, None, :]).all(axis=2)  # [i, j]: j <= i
    strictly = (losses[None, :, :] < losses[:, None, :]).any(axis=2)
    dominated = (weakly & strictly & valid[None, :]).any(axis=1)
    return valid & ~dominated


def grid_volume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact volume for integer coordinates: count the unit cells some point is <= ."""
    cells = np.indices(reference.astype(int)).reshape(len(reference), -1).T
    covered = (points[None, :, :] <= cells[:, None, :]).all(axis=2).any(axis=1)
    return float(covered.sum())


def inclusion_exclusion_volume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact volume of a union of boxes [point, reference) by inclusion-exclusion."""
    points = points[(points < reference).all(axis=1)]
    volume = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            volume += (-1) ** (size + 1) * float(np.prod(reference - corner))
    return volume


def random_values(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Small integers (many ties and duplicate rows) with a few NaN and infinite values."""
    values = rng.integers(0, 4, size=(n, k)).astype(float)
    values[rng.random((n, k)) < 0.03] = np.nan
    values[rng.random((n, k)) < 0.02] = rng.choice([np.inf, -np.inf])
    return values


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mask_matches_brute_force(k):
    rng = np.random.default_rng(100 + k)
    for _ in range(30):
        values = random_values(rng, int(rng.integers(1, 50)), k)
        directions = list(rng.choice(["minimize", "maximize"], size=k))
        expected = brute_force_mask(to_losses(values, directions))
        assert pareto_mask(values, directions).tolist() == expected.tolist()


@pytest.mark.parametrize("k", [3, 4])
def test_mask_matches_brute_force_over_several_blocks(k):
    rng = np.random.default_rng(7)
    values = np.round(rng.random((2500, k)), 2)  # rounding leaves ties
    # a curved trade-off puts many rows on the front
    values[:, -1] = np.round(1.0 - np.sqrt(values[:, :-1].mean(axis=1)), 2) + values[:, -1] / 50
    values[rng.random(2500) < 0.01, 0] = np.nan
    assert np.array_equal(pareto_mask(values, ["minimize"] * k), brute_force_mask(values))


def test_mask_of_empty_and_all_nan_tables():
    assert pareto_mask(np.empty((0, 3)), ["minimize"] * 3).tolist() == []
    assert not pareto_mask(np.full((4, 2), np.nan), ["minimize"] * 2).any()


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_matches_grid_counting(k):
    rng = np.random.default_rng(200 + k)
    reference = np.full(k, 5.0)
    for _ in range(40):
        # coordinates up to 6: some points lie on or beyond the reference and add nothing
        points = rng.integers(0, 7, size=(int(rng.integers(0, 15)), k)).astype(float)
        assert hypervolume(points, reference) == grid_volume(points, reference)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(k):
    rng = np.random.default_rng(300 + k)
    reference = np.full(k, 0.9)
    for _ in range(20):
        points = rng.random((int(rng.integers(1, 9)), k))
        assert hypervolume(points, reference) == pytest.approx(
            inclusion_exclusion_volume(points, reference), rel=1e-12, abs=1e-15)


def test_hypervolume_edge_cases():
    assert hypervolume(np.empty((0, 3)), np.ones(3)) == 0.0
    assert hypervolume(np.array([[0.25], [0.5]]), np.ones(1)) == pytest.approx(0.75)
    assert hypervolume(np.array([[1.0, 0.0], [0.0, 1.0]]), np.ones(2)) == 0.0  # on the edge


def per_prefix_history(losses: np.ndarray, eligible: np.ndarray, reference: np.ndarray,
                       volume: Callable[[np.ndarray, np.ndarray], float] = hypervolume
                       ) -> list[float]:
    """The definition: recompute the eligible front and its volume after every row."""
    usable = eligible & np.isfinite(losses).all(axis=1)
    volumes = []
    for count in range(1, len(losses) + 1):
        points = losses[:count][usable[:count]]
        front = points[brute_force_mask(points)] if len(points) else points
        volumes.append(volume(front, reference))
    return volumes


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("integers", [True, False])
def test_history_matches_per_prefix_recomputation(k, integers):
    rng = np.random.default_rng(400 + 10 * k + integers)
    reference = np.full(k, 4.0 if integers else 1.1)
    for _ in range(8):
        n = int(rng.integers(1, 60))
        losses = (rng.integers(0, 6, size=(n, k)).astype(float) if integers
                  else rng.random((n, k)) * 1.2)
        losses[rng.random(n) < 0.05, 0] = np.nan
        eligible = rng.random(n) < 0.8
        history = hypervolume_history(losses, eligible, reference)
        assert history.shape == (n,)
        volume = grid_volume if integers else hypervolume
        assert history == pytest.approx(
            per_prefix_history(losses, eligible, reference, volume), rel=1e-9, abs=1e-12)


def test_history_of_empty_table():
    assert hypervolume_history(np.empty((0, 3)), np.empty(0, bool), np.ones(3)).shape == (0,)


def test_history_of_10000_rows_completes_and_never_decreases():
    rng = np.random.default_rng(11)
    losses = rng.random((10_000, 3))
    history = hypervolume_history(losses, np.ones(10_000, bool), np.full(3, 1.1))
    assert (np.diff(history) >= 0).all()
    assert history[-1] == pytest.approx(hypervolume(losses, np.full(3, 1.1)), rel=1e-9)


def test_plot_history_matches_per_prefix_recomputation():
    rng = np.random.default_rng(5)
    n = 40
    frame = pd.DataFrame({
        "trial": rng.permutation(n), "state": rng.choice(["COMPLETE", "FAIL"], n, p=[.9, .1]),
        "feasible": rng.random(n) < 0.8, "accuracy": rng.random(n),
        "latency_s": rng.random(n) * 1e-3, "energy_j": rng.random(n) * 1e-6})
    frame.loc[3, "energy_j"] = np.nan
    history = plots.hypervolume_history(frame, ["accuracy", "latency", "energy"])
    done = frame[frame["state"] == "COMPLETE"].sort_values("trial")
    losses = done[["accuracy", "latency_s", "energy_j"]].to_numpy() * [-1, 1, 1]
    low, high = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
    expected = per_prefix_history((losses - low) / (high - low),
                                  done["feasible"].to_numpy(), np.full(3, 1.1))
    assert history.columns.tolist() == ["trial", "hypervolume"]
    assert history["trial"].tolist() == done["trial"].tolist()
    assert history["hypervolume"].to_numpy() == pytest.approx(expected, rel=1e-9)
