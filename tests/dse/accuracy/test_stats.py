"""Intervals and paired drops on constructed cases with a known answer."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dse.accuracy import ProbeResult, accuracy_drop_pp, stats


def test_all_right_gets_the_width_its_split_allows():
    low, high = stats.accuracy_interval(np.ones(269, dtype=bool))
    assert high == 1.0
    assert low == pytest.approx(stats.wilson(269, 269)[0])
    assert 0.98 < low < 0.99  # 269 images cannot show more than about 98.6 %


def test_half_right_matches_the_binomial_interval():
    correct = np.zeros(400, dtype=bool)
    correct[::2] = True
    low, high = stats.accuracy_interval(correct)
    half_width = 1.959964 * math.sqrt(0.25 / 400)
    assert low == pytest.approx(0.5 - half_width, abs=0.005)
    assert high == pytest.approx(0.5 + half_width, abs=0.005)


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(0)
    images = rng.random(500) < 0.9
    same = np.broadcast_to(images, (3, 3, 500))
    noisy = same.copy()
    noisy[0, :, :60] = ~noisy[0, :, :60]  # one fine-tune differs on 60 images
    narrow, wide = stats.accuracy_interval(same), stats.accuracy_interval(noisy)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_an_identical_candidate_drops_exactly_zero_with_the_width_its_images_allow():
    rng = np.random.default_rng(1)
    correct = rng.random((2, 3, 269)) < 0.97
    test = stats.paired_test(correct, correct.copy())
    assert test.drop_pp == 0.0 and test.p_value(0.0) == 1.0
    assert test.bootstrap_interval() == (0.0, 0.0)
    # no image differs, yet 269 images cannot rule out ~2 images in 269 that would: the
    # corrected score interval solves (n d - 1)^2 = z^2 n d (1 - d)
    low, high = test.interval()
    n, z = 269, 1.959964
    assert low == -high and (n * high / 100 - 1) ** 2 == pytest.approx(
        z * z * n * high / 100 * (1 - high / 100), rel=1e-5)
    assert 2.0 < high < 2.1
    assert stats.paired_drop_pp(correct, correct.copy()) == (0.0, low, high)


def test_the_paired_interval_shrinks_when_candidates_agree_on_most_images():
    rng = np.random.default_rng(2)
    base = rng.random(1000) < 0.9
    close = base.copy()
    close[np.flatnonzero(base)[:10]] = False  # 10 images fewer right: 1 pp
    independent = rng.random(1000) < base.mean() - 0.01
    drop, low, high = stats.paired_drop_pp(base, close)
    assert drop == pytest.approx(1.0) and 0 < low <= 1.0 <= high
    _, far_low, far_high = stats.paired_drop_pp(base, independent)
    assert high - low < (far_high - far_low) / 2
    unpaired = stats.unpaired_drop_pp((base.mean(), *stats.accuracy_interval(base)),
                                      (close.mean(), *stats.accuracy_interval(close)))
    assert high - low < (unpaired[2] - unpaired[1]) / 2
    assert stats.significance(low, high) == "significant"


def test_verdicts():
    assert stats.significance(-0.5, 0.4) == "not significant"
    assert stats.significance(0.1, 0.4) == "significant"
    assert stats.significance(-0.9, -0.1) == "significant"


def test_intervals_are_reproducible():
    rng = np.random.default_rng(4)
    correct = rng.random((2, 3, 300)) < 0.8
    assert stats.accuracy_interval(correct) == stats.accuracy_interval(correct.copy())


def test_packing_round_trips_and_rejects_garbage():
    rng = np.random.default_rng(5)
    correct = rng.random((2, 3, 13)) < 0.5  # not a multiple of 8 bits
    assert np.array_equal(stats.unpack(stats.pack(correct)), correct)
    for bad in (None, [], {"shape": [2, 3], "bits": ""}, {"shape": [1, 1, 9], "bits": "AA=="},
                {"shape": [1, 1, 8], "bits": "not base64!"}):
        assert stats.unpack(bad) is None


def test_bad_levels_and_shapes_are_refused():
    from hw_models import ConfigError
    for level in (0, 1, 1.5, -0.1):
        with pytest.raises(ConfigError):
            stats.check_level(level)
    with pytest.raises(ValueError):
        stats.as_correct(np.zeros((0, 3, 4), dtype=bool))
    with pytest.raises(ValueError, match="same images"):
        stats.paired_drop_pp(np.ones(10, bool), np.ones(11, bool))


def test_a_result_from_correctness_carries_everything():
    result = ProbeResult.from_correct([[[1, 1, 0, 1]], [[1, 0, 0, 1]]], seconds=2.0)
    assert result.accuracy_mean == 0.625 and result.accuracy_per_seed == (0.75, 0.5)
    assert result.accuracy_std == pytest.approx(0.125)
    assert result.ci_low <= 0.625 <= result.ci_high


def test_drops_without_per_image_data_come_from_the_two_intervals():
    with_interval = ProbeResult(0.9, 0.0, (0.9,), 0.0, False, ci_low=0.88, ci_high=0.92)
    base = ProbeResult(0.95, 0.0, (0.95,), 0.0, False, ci_low=0.94, ci_high=0.96)
    drop, low, high = accuracy_drop_pp(base, with_interval)
    assert drop == pytest.approx(5.0) and low < 5.0 < high
    bare = ProbeResult(0.9, 0.0, (0.9,), 0.0, False)
    assert math.isnan(accuracy_drop_pp(base, bare)[1])


def test_a_drop_at_its_limit_meets_it_despite_rounding():
    from dse.accuracy import within_limit
    assert (0.95 - 0.94) * 100 > 1.0 and within_limit((0.95 - 0.94) * 100, 1.0)
    assert not within_limit(1.0 + 1e-6, 1.0)


def test_paired_test_is_the_paired_drop_with_intervals_at_any_level():
    base = np.ones((2, 3, 269), dtype=bool)
    base[..., :8] = False
    cand = base.copy()
    cand[..., 8:12] = False
    test = stats.paired_test(base, cand)
    assert test.drop_pp == pytest.approx(100 * 4 / 269)
    assert stats.paired_drop_pp(base, cand) == (test.drop_pp, *test.interval())
    narrow, wide = test.interval(0.5), test.interval(0.99)
    assert wide[0] <= narrow[0] <= test.drop_pp <= narrow[1] <= wide[1]
    with pytest.raises(ValueError, match="alternative"):
        test.p_value(0.0, "both")


def _extra_wrong(extra: int, shape: tuple[int, int] = (2, 3), images: int = 269
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A candidate wrong on ``extra`` more images in every seed."""
    base = np.ones((*shape, images), dtype=bool)
    base[..., :8] = False
    cand = base.copy()
    cand[..., 8:8 + extra] = False
    return base, cand


@pytest.mark.parametrize("shape", [(1, 1), (2, 3)])
def test_four_images_wrong_in_every_seed_are_within_noise(shape):
    # exact McNemar: p = 0.125 for 4 of 4 discordant images one way; the bootstrap alone
    # said [0.37, 2.97] and `significant`
    test = stats.paired_test(*_extra_wrong(4, shape))
    low, high = test.interval()
    assert low < 0 < high and stats.significance(low, high) == "not significant"
    assert test.p_value(0.0) == pytest.approx(0.1336, abs=1e-4)  # corrected McNemar
    six = stats.paired_test(*_extra_wrong(6, shape))
    assert six.interval()[0] > 0 and six.p_value(0.0) < 0.05  # exact McNemar: 0.031


def test_one_seed_is_the_corrected_score_interval_of_the_discordant_images():
    rng = np.random.default_rng(7)
    base = rng.random(400) < 0.9
    cand = base.copy()
    cand[np.flatnonzero(base)[:9]] = False   # 9 against the candidate
    cand[np.flatnonzero(~base)[:3]] = True   # 3 towards it
    test = stats.paired_test(base, cand)
    assert (test.against, test.towards, test.images) == (9.0, 3.0, 400)
    for level in (0.8, 0.95, 0.99):
        score = stats.score_interval(9, 3, 400, level)
        low, high = test.interval(level)
        boot_low, boot_high = test.bootstrap_interval(level)
        assert (low, high) == pytest.approx((min(score[0] * 100, boot_low),
                                             max(score[1] * 100, boot_high)))
    # at a drop of 0 the statistic is McNemar's corrected one: (|b - c| - 1)^2 / (b + c)
    chi_square = (abs(9 - 3) - 1) ** 2 / 12
    assert stats.score_p_value(9, 3, 400, 0.0) == pytest.approx(
        math.erfc(math.sqrt(chi_square / 2)))


def test_the_score_interval_covers_exactly_on_the_discordant_counts():
    # one seed, n images, P(against) = k / n, P(towards) = 0: the exact probability that the
    # interval holds the truth, summed over the binomial count of discordant images
    n = 269
    for k in (1, 2, 4, 8):
        truth, coverage, upper_miss = k / n, 0.0, 0.0
        for against in range(60):
            weight = math.comb(n, against) * truth ** against * (1 - truth) ** (n - against)
            low, high = stats.score_interval(against, 0, n)
            coverage += weight * (low <= truth <= high)
            upper_miss += weight * (truth > high)
        assert coverage >= 0.95 and upper_miss <= 0.025, (k, coverage, upper_miss)


def _near(value: float, ends: tuple[float, float]) -> bool:
    return min(abs(value - ends[0]), abs(value - ends[1])) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p_values_are_dual_to_the_intervals(seed):
    rng = np.random.default_rng(seed)
    base = rng.random((2, 3, 300)) < 0.9
    cand = base ^ (rng.random((2, 3, 300)) < 0.04)
    test = stats.paired_test(base, cand, replicates=500)
    for alpha in (0.01, 0.05, 0.1, 0.2, 0.4):
        two = test.interval(1 - alpha)
        one = test.interval(1 - 2 * alpha)
        for null in np.linspace(test.drop_pp - 6, test.drop_pp + 6, 49):
            if not _near(null, two):
                assert (test.p_value(null) < alpha) == (null < two[0] or null > two[1])
            if not _near(null, one):
                assert (test.p_value(null, "less") < alpha) == (one[1] < null)
                assert (test.p_value(null, "greater") < alpha) == (one[0] > null)
    assert test.p_value(test.drop_pp) == 1.0


def test_seed_counts_that_differ_pair_every_seed_with_every_seed():
    rng = np.random.default_rng(3)
    base = rng.random((2, 3, 200)) < 0.9
    cand = rng.random((1, 2, 200)) < 0.85
    test = stats.paired_test(base, cand)
    assert (test.against - test.towards) / 200 * 100 == pytest.approx(test.drop_pp)
    low, high = test.interval()
    assert low < test.drop_pp < high
