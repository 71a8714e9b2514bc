"""The gather-and-sum fast path agrees with the direct model."""
from __future__ import annotations

import numpy as np
import pytest

from hw_models import LayerTable, build_cost_lookup, compute_cost


def test_lookup_matches_direct_model(resnet20_table, soc):
    rng = np.random.default_rng(2)
    batch = rng.integers(0, resnet20_table.cout + 1, size=(20_000, resnet20_table.n_layers))
    lookup = build_cost_lookup(resnet20_table, soc)
    totals = lookup.totals(batch)
    direct = compute_cost(resnet20_table, soc, batch)
    np.testing.assert_allclose(totals.latency_cycles, direct.total_latency_cycles(), rtol=1e-12)
    np.testing.assert_allclose(totals.energy_j, direct.total_energy_j(), rtol=1e-12)
    np.testing.assert_allclose(totals.latency_s, direct.total_latency_s(), rtol=1e-12)


def test_lookup_single_candidate(resnet20_table, soc):
    lookup = build_cost_lookup(resnet20_table, soc)
    totals = lookup.totals(np.zeros(22, dtype=int))
    assert totals.latency_cycles.shape == (1,)
    assert totals.latency_cycles[0] == pytest.approx(257_673.25, rel=1e-12)


def test_lookup_marks_analog_depthwise_as_nan(soc):
    table = LayerTable.from_records([
        dict(name="dw", kind="depthwise", cin=8, cout=8, kx=3, ky=3, ox=4, oy=4, groups=8),
        dict(name="pw", kind="conv", cin=8, cout=16, kx=1, ky=1, ox=4, oy=4),
    ])
    lookup = build_cost_lookup(table, soc)
    assert np.isnan(lookup.totals(np.array([3, 0])).latency_cycles[0])
    assert np.isfinite(lookup.totals(np.array([0, 16])).latency_cycles[0])
