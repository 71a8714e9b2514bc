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
