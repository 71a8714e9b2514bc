"""bench/coverage.py: the simulation's truth, its reference tests, and today's coverage."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "coverage.py"
spec = importlib.util.spec_from_file_location("bench_coverage", PATH)
assert spec is not None and spec.loader is not None
coverage = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = coverage  # dataclasses look their module up
spec.loader.exec_module(coverage)

NOISY = coverage.regime(269, 0.93, against=6, towards=2, seeds=(2, 3),
                        noise=coverage.SEED_NOISE)


def test_the_drawn_drops_and_accuracies_average_to_the_stated_truth():
    rng = np.random.default_rng(0)
    draws = [coverage.simulate(NOISY, rng) for _ in range(3000)]
    drops = np.array([(base.mean() - cand.mean()) * 100 for base, cand in draws])
    accuracies = np.array([cand.mean() for _, cand in draws])
    assert NOISY.true_drop_pp == pytest.approx(100 * 4 / 269)
    # four Monte-Carlo standard errors
    assert abs(drops.mean() - NOISY.true_drop_pp) < 4 * drops.std() / math.sqrt(len(drops))
    assert abs(accuracies.mean() - NOISY.candidate_accuracy) < (
        4 * accuracies.std() / math.sqrt(len(accuracies)))


def test_shapes_and_the_baseline_is_the_same_under_every_error_seed():
    base, cand = coverage.simulate(NOISY, np.random.default_rng(1))
    assert base.shape == cand.shape == (2, 3, 269)
    assert (base == base[:, :1]).all()
    assert not (cand == cand[:, :1]).all()


def test_a_regime_that_does_not_fit_its_images_is_refused():
    with pytest.raises(ValueError, match="do not fit"):
        coverage.regime(269, 0.97, against=15, towards=15)


def test_exact_mcnemar_matches_the_issue():
    base = np.ones((2, 3, 269), dtype=bool)
    for extra, p_value in ((4, 0.125), (5, 0.0625), (0, 1.0)):
        cand = base.copy()
        cand[..., :extra] = False
        assert coverage.mcnemar_p(base, cand) == pytest.approx(p_value)


def test_wilson_covers_at_its_level_on_a_binomial():
    # 4000 draws: a Monte-Carlo standard error of 0.34 pp around 95 %
    assert coverage.wilson_coverage(269, 0.9, 4000, seed=2) == pytest.approx(0.95, abs=0.015)


def test_the_quick_grid_prints_its_tables(capsys):
    coverage.main(["--quick", "--replications", "20", "--bootstrap", "200"])
    out = capsys.readouterr().out
    assert "| 4 | 1.49 [-0.61, 4.28] | [0.37, 2.97] | not significant | 0.1336 | 0.1250 |" in out
    assert "coverage %" in out and "admitted by `upper` (one-sided 97.5 % bound) %" in out


# Regimes where the bootstrap alone covered 84-91 % (docs/benchmarks.md), and one with noise
SMALL_GRID = [coverage.regime(269, 0.93, against=2, seeds=(2, 3)),
              coverage.regime(269, 0.93, against=4, seeds=(2, 3)),
              coverage.regime(269, 0.93, against=2, towards=2, seeds=(1, 1)),
              coverage.regime(1000, 0.90, against=8, seeds=(1, 1), noise=coverage.SEED_NOISE)]


@pytest.mark.parametrize("index", range(len(SMALL_GRID)))
def test_paired_interval_covers_at_95_percent_with_few_discordant_images(index):
    spec = SMALL_GRID[index]
    outcome = coverage.measure(spec, 300, bootstrap=200, seed=3 + index)
    # three Monte-Carlo standard errors (1.3 pp each at 95 %, 0.9 pp at 2.5 %)
    assert outcome.drop_covered >= 0.95 - 3 * outcome.standard_error(0.95)
    assert outcome.above_upper <= 0.025 + 3 * outcome.standard_error(0.025)
    if spec.true_drop_pp == 0:  # the p-value's type-I error at 5 %
        assert outcome.p_rejects <= 0.05 + 3 * outcome.standard_error(0.05)
    assert outcome.p_rejects == outcome.significant  # dual: p(0) < 0.05 iff 0 is outside


def test_the_exact_one_seed_coverage_of_the_score_interval():
    intervals = coverage.score_intervals(269, size=40)
    cover, above, below = coverage.exact_score_coverage(269, 4, 0, intervals)
    assert cover == pytest.approx(0.9924, abs=1e-4) and above == 0.0  # docs/benchmarks.md
    cover, above, below = coverage.exact_score_coverage(269, 4, 4, intervals)
    assert cover >= 0.95 and above == pytest.approx(below)
