"""Statistics over a DIMM population: type-7 quantiles, as numpy computes them."""
from __future__ import annotations

import numpy as np
import pytest

from hw_models.derive.dimm_stats import BER_QUANTILES, column, population_columns, quantile


@pytest.mark.parametrize("n", [1, 2, 4, 7, 28, 46])
def test_quantiles_match_numpy(n):
    values = list(np.random.default_rng(n).lognormal(-10, 4, n))
    for q in (0.0, 0.5, 0.9, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)),
                                                    rel=1e-12)


def test_columns_and_zeros():
    stats = population_columns([0.0, 0.0, 0.0, 4e-3])
    assert list(stats) == [column(q) for q in BER_QUANTILES] == [
        "mean_ber", "median_ber", "p90_ber", "max_ber"]
    assert stats["median_ber"] == 0 and stats["max_ber"] == 4e-3
    assert stats["p90_ber"] == pytest.approx(0.7 * 4e-3)  # rank 2.7 of 0..3
    assert stats["mean_ber"] == pytest.approx(1e-3)
    one_bad = population_columns([0.0] * 19 + [1e-2])  # the mean is not a quantile
    assert one_bad["mean_ber"] == pytest.approx(5e-4) and one_bad["p90_ber"] == 0
    with pytest.raises(ValueError, match="no DIMM"):
        population_columns([])


@pytest.mark.parametrize("n, censored, known", [
    (10, 4, {"median"}),              # ranks 4 and 5 of 0..9 measured, 9 not
    (11, 2, {"median"}),              # rank 5 <= 8; p90 rank 9 > 8
    (11, 1, {"median", "p90"}),       # p90 rank 9 <= 9
    (9, 4, {"median"}),               # rank 4 <= 4
    (8, 5, set()),                    # median reads rank 4 > 2
    (7, 0, {"mean", "median", "p90", "max"}),
])
def test_a_quantile_is_known_while_it_reads_no_censored_dimm(n, censored, known):
    values = [float(i) for i in range(n - censored)]
    stats = population_columns(values, censored)
    assert {name for name in BER_QUANTILES if stats[column(name)] is not None} == known


def test_censored_dimms_take_the_top_ranks():
    """4 measured, 2 censored: the median reads ranks 2.5 of 0..5, between the 3rd and 4th
    measured values, not the median of the 4 measured (which leaves the worst out)."""
    stats = population_columns([0.0, 1.0, 2.0, 3.0], 2)
    assert stats["median_ber"] == pytest.approx(2.5)
    assert population_columns([0.0, 1.0, 2.0, 3.0])["median_ber"] == pytest.approx(1.5)
    assert population_columns([], 3)["median_ber"] is None
