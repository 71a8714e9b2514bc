"""The exact Pareto set of sums (``dse.pareto.pareto_sums``) against brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dse.pareto import pareto_mask, pareto_sums


def brute_force(options):
    """Every choice's sum (added in stage order), its non-dominated distinct rows."""
    sums = []
    for choice in itertools.product(*(range(len(t)) for t in options)):
        total = np.zeros(options[0].shape[1])
        for table, j in zip(options, choice):
            total = total + table[j]
        sums.append(total)
    sums = np.array(sums)
    front = sums[pareto_mask(sums, ["minimize"] * sums.shape[1])]
    return np.unique(front, axis=0)


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("seed", range(8))
def test_the_sums_front_is_brute_forces(width, seed):
    """Random stages, floats and small integers (ties everywhere): the same set of sums,
    bit for bit, and each returned choice adds up to its sum."""
    rng = np.random.default_rng(seed)
    stages = int(rng.integers(1, 7))
    if seed % 2:
        options = [rng.integers(0, 4, (int(rng.integers(1, 5)), width)).astype(float)
                   for _ in range(stages)]
    else:
        options = [rng.normal(size=(int(rng.integers(1, 5)), width)) for _ in range(stages)]
    sums, choices = pareto_sums(options)
    expected = brute_force(options)
    assert np.array_equal(np.unique(sums, axis=0), expected)
    assert len(sums) == len(expected)  # one choice per distinct sum
    for total, choice in zip(sums, choices):
        again = np.zeros(width)
        for table, j in zip(options, choice):
            again = again + table[j]
        assert np.array_equal(again, total)


def test_trade_offs_that_no_single_stage_shows():
    """Two stages, each trading latency for accuracy drop: the front holds the mixed
    choices as well as the extremes, and drops what a cheaper mix dominates."""
    layer = np.array([[0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])  # (drop, latency)
    sums, choices = pareto_sums([layer, layer])
    # (3, 2), the first option then the last, is dominated by the middle twice (2, 2)
    assert sums.tolist() == [[0.0, 4.0], [1.0, 3.0], [2.0, 2.0], [4.0, 1.0], [6.0, 0.0]]
    assert choices.tolist() == [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2]]


def test_bad_stages_are_refused():
    with pytest.raises(ValueError, match="at least one stage"):
        pareto_sums([])
    with pytest.raises(ValueError, match="stage 1"):
        pareto_sums([np.zeros((2, 3)), np.zeros((0, 3))])
    with pytest.raises(ValueError, match="finite"):
        pareto_sums([np.array([[np.nan, 0.0]])])
