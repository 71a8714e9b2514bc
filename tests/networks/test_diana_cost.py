"""The differentiable DIANA cost equals hw_models' at integer splits, and has gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hw_models.diana import SPLIT_COLUMNS
from hw_models.diana import split_cost as numpy_split_cost
from networks.diana_cost import LayerColumns, split_cost


@pytest.mark.parametrize("network, dataset", [("resnet8", "digits"), ("resnet20", "cifar10"),
                                              ("mobilenetv1", "vww"),
                                              ("resnet18", "tiny-imagenet")])
def test_equals_the_cost_model_at_integer_splits(network, dataset, soc):
    from dse.workload import load_workload
    table = load_workload(network, dataset).table
    layers = LayerColumns.of(table)
    rng = np.random.default_rng(0)
    columns = {c: getattr(table, c) for c in SPLIT_COLUMNS}
    capable = table.analog_capable
    for trial in range(25):
        n_analog = np.where(capable, rng.integers(0, table.cout + 1), 0)
        if trial == 0:
            n_analog = np.zeros_like(n_analog)
        elif trial == 1:
            n_analog = np.where(capable, table.cout, 0)
        digital, analog, energy = numpy_split_cost(n_analog, soc=soc, **columns)
        latency_t, energy_t = split_cost(torch.tensor(n_analog, dtype=torch.float64), layers,
                                         soc)
        np.testing.assert_array_equal(latency_t.numpy(), np.maximum(digital, analog))
        np.testing.assert_array_equal(energy_t.numpy(), energy)


def test_gradients_flow_and_point_the_right_way(soc):
    from dse.workload import load_workload
    table = load_workload("resnet20", "cifar10").table
    layers = LayerColumns.of(table)
    # half of every layer's channels analog: moving channels changes the slower core
    n_analog = torch.tensor(table.cout / 2, dtype=torch.float64, requires_grad=True)
    latency, energy = split_cost(n_analog, layers, soc)
    latency.sum().backward()
    grad = n_analog.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad != 0).any()
    # the digital core is the slower one in ResNet20's 3x3 layers at a half split: more
    # analog channels make them faster
    digital, analog, _ = numpy_split_cost((table.cout / 2).astype(int), soc=soc,
                                          **{c: getattr(table, c) for c in SPLIT_COLUMNS})
    slower_digital = torch.tensor(digital > analog)
    assert (grad[slower_digital] < 0).all()
