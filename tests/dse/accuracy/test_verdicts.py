"""Holm's adjustment, the equivalence test and the three verdicts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dse.accuracy import stats
from dse.accuracy import verdicts as v
from dse.results.claims import adjust, describe
from hw_models.errors import ConfigError


def test_holm_multiplies_the_kth_smallest_by_the_tests_left_and_keeps_the_order():
    assert v.holm([0.01, 0.02, 0.04]) == pytest.approx([0.03, 0.04, 0.04])  # all below 5 %
    assert v.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])  # any order
    # 3 x 0.03 = 0.09: the smallest is not rejected, so none is (step-down stops there)
    assert v.holm([0.03, 0.04, 0.05]) == pytest.approx([0.09, 0.09, 0.09])
    assert v.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert v.holm([]) == []
    with pytest.raises(ValueError):
        v.holm([math.nan])


def test_the_three_verdicts():
    assert v.verdict(0.8, 0.01, 0.9, 0.05) == "significant decrease"  # drop > 0: worse
    assert v.verdict(-0.8, 0.01, 0.9, 0.05) == "significant increase"
    assert v.verdict(0.1, 0.01, 0.01, 0.05) == "significant decrease"  # small, but measured
    assert v.verdict(0.1, 0.6, 0.01, 0.05) == "equivalent"
    assert v.verdict(0.1, 0.6, 0.06, 0.05) == "inconclusive"


class Skewed:
    """A drop whose one-sided p-values are given: TOST takes the larger."""

    drop_pp = 0.1

    def p_value(self, null_drop_pp: float = 0.0, alternative: str = "two-sided") -> float:
        return {(-1.0, "greater"): 0.001, (1.0, "less"): 0.07, (0.0, "two-sided"): 0.8}[
            (null_drop_pp, alternative)]


def test_tost_is_the_larger_one_sided_p_value_at_minus_and_plus_the_margin():
    assert v.equivalence_p(Skewed(), 1.0) == 0.07  # its 90 % interval crosses +1 pp
    assert v.no_change_p(Skewed()) == 0.8


def test_an_interval_of_minus_0_99_to_plus_0_74_pp_is_no_proof_of_no_cost():
    # the change -0.99 to +0.74 pp is a drop of -0.74 to +0.99 pp: alone, its 90 % interval
    # lies within +-1 pp (TOST p 0.024); among the 4 tests of two claims, Holm needs
    # p < 0.05 / 4 for the smallest: it is inconclusive, and never "no measurable cost"
    drop = v.IntervalDrop(0.125, -0.74, 0.99, 0.95)
    p = v.equivalence_p(drop, 1.0)
    assert 0.02 < p < 0.025
    claims = [{"kind": "front", "baseline": "all-digital", "metric": "energy", "trial": 4,
               "change_percent": -53.5, "level": 0.95, "test_accuracy_change_pp": -0.125,
               "test_accuracy_change_ci_low_pp": -0.99, "test_accuracy_change_ci_high_pp": 0.74,
               "equivalence_margin_pp": 1.0, "p_value": v.no_change_p(drop),
               "p_equivalence": p},
              {"kind": "front", "baseline": "all-analog", "metric": "energy", "trial": 5,
               "change_percent": -10.0, "level": 0.95, "test_accuracy_change_pp": 0.3,
               "test_accuracy_change_ci_low_pp": -0.5, "test_accuracy_change_ci_high_pp": 1.1,
               "equivalence_margin_pp": 1.0, "p_value": 0.5, "p_equivalence": 0.5}]
    assert adjust(claims) == 4
    assert claims[0]["p_equivalence_adjusted"] == pytest.approx(4 * p)
    assert [claim["verdict"] for claim in claims] == ["inconclusive", "inconclusive"]
    for claim in claims:
        assert "no measurable accuracy cost" not in describe(claim)
        assert "Holm-adjusted over 4 tests" in describe(claim)
    alone = claims[:1]
    adjust(alone)
    assert alone[0]["verdict"] == "equivalent"
    assert "no measurable accuracy cost" in describe(alone[0])


def test_identical_answers_on_few_images_are_not_equivalent_and_far_nulls_do_not_fail():
    correct = np.ones((1, 1, 300), dtype=bool)
    correct[0, 0, :9] = False
    same = stats.paired_test(correct, correct)
    # no image differs, but 300 images cannot bound the drop within 1 pp: not equivalent
    assert v.no_change_p(same) == 1.0 and v.equivalence_p(same, 1.0) > 0.05
    assert v.equivalence_p(same, 3.0) < 0.05  # within 3 pp they can
    worse = correct.copy()
    worse[0, 0, 9:60] = False  # 17 pp worse: beyond every replicate of +-1 pp
    drop = stats.paired_test(correct, worse)
    assert v.no_change_p(drop) < 0.001 and v.equivalence_p(drop, 1.0) == pytest.approx(1.0)


def test_the_normal_approximation_of_an_interval_is_dual_to_it():
    drop = v.IntervalDrop(0.5, 0.1, 0.9, 0.95)  # excludes 0 at 95 %
    assert drop.p_value(0.0) == pytest.approx(0.0143, abs=1e-3)
    assert drop.p_value(0.1) == pytest.approx(0.05, abs=1e-6)
    assert drop.p_value(1.0, "less") + drop.p_value(1.0, "greater") == pytest.approx(1.0)
    exact = v.IntervalDrop(0.0, 0.0, 0.0, 0.95)
    assert exact.p_value(0.0) == 1.0 and v.equivalence_p(exact, 0.5) == 0.0


@pytest.mark.parametrize("margin", [-1.0, math.nan, math.inf])
def test_a_margin_is_finite_and_not_negative(margin):
    with pytest.raises(ConfigError, match="--equivalence-margin must be a finite number"):
        v.check_margin(margin)
