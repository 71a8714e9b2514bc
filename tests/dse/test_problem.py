"""build_problem: names into a Problem, with or without a stored layer table."""
from __future__ import annotations

import pytest

from dse.problem import Limits, build_problem
from hw_models import ConfigError


def test_a_stored_table_needs_no_network(toy_table):
    problem = build_problem(network="anything", dataset=None, table=toy_table,
                            objectives="latency,energy", limits=Limits(None, 1e-3))
    assert problem.table is toy_table and problem.device.name == "lpddr4-3200"
    assert problem.directions == ["minimize", "minimize"] and not problem.needs_accuracy
    assert problem.space.dram_activations == (False, False, False, True, True)
    assert problem.space.dram_weights == (False,) * 5  # 43 kB of weights stay in L2


def test_without_dram_there_is_no_device(toy_table):
    problem = build_problem(network="toy", dataset=None, dram="none", table=toy_table)
    assert problem.device is None and problem.space.max_undervolt_mv == 0
    assert problem.needs_accuracy


def test_bad_names_are_config_errors(toy_table):
    with pytest.raises(ConfigError):
        build_problem(network="toy", dataset=None, hw="no-such-soc", table=toy_table)
    with pytest.raises(ConfigError):
        build_problem(network="toy", dataset=None, vendor="Z", table=toy_table)
    with pytest.raises(ConfigError):
        build_problem(network="toy", dataset=None, dram="ddr9", table=toy_table)


def test_the_ber_quantile_reaches_the_cost_model(toy_table):
    from dse.evaluate import candidate_cost
    from dse.space import Candidate

    bers = {}
    for quantile in ("median", "max"):
        problem = build_problem(network="toy", dataset=None, table=toy_table,
                                ber_quantile=quantile)
        assert problem.ber_quantile == quantile
        candidate = Candidate((0,) * 5, (0.88,), (14.0,), (0,) * 5, (0,) * 5)
        bers[quantile] = candidate_cost(candidate, problem).activation_ber[3:]
    assert (0 < bers["median"]).all() and (bers["median"] < bers["max"]).all()
    with pytest.raises(ConfigError, match="unknown BER quantile"):
        build_problem(network="toy", dataset=None, table=toy_table, ber_quantile="p95")


def test_the_network_is_traced_when_no_table_is_given():
    problem = build_problem(network="resnet8", dataset="digits", objectives="latency")
    assert problem.table.n_layers == 10


@pytest.mark.parametrize("network, dataset, weights_in_dram", [
    ("resnet20", "cifar10", False), ("resnet18", "tiny-imagenet", True)])
def test_the_probe_sees_errors_exactly_where_the_cost_puts_tensors(network, dataset,
                                                                   weights_in_dram):
    """What the probe is given is the cost model's placement: ResNet20 keeps everything on
    chip (no error at any DRAM point), ResNet18 streams its weights (errors on every layer's
    weights); its first stage's identity blocks hold their 256 kB input through conv2 beside
    conv2's 256 kB input and output (768 kB > the 512 kB L2), so those tensors and their
    shortcuts are in DRAM and only they get activation and shortcut errors."""
    from dse.evaluate import candidate_cost, probe_candidate
    from dse.space import at_point

    problem = build_problem(network=network, dataset=dataset, objectives="latency")
    candidate = at_point(problem.space, [0] * problem.table.n_layers, (0.9, 10.0))
    cost = candidate_cost(candidate, problem)
    given = probe_candidate(candidate, cost)
    traffic = cost.traffic
    assert all((ber > 0) == bool(weights_in_dram) for ber in given.weight_ber)
    assert (traffic.weight_read_bytes > 0).all() == weights_in_dram
    n_layers = problem.table.n_layers
    assert [ber > 0 for ber in given.activation_ber] == list(traffic.input_in_dram)
    shortcut = given.shortcut_ber or (0.0,) * n_layers
    assert [ber > 0 for ber in shortcut] == list(traffic.shortcut_in_dram)
    names = problem.table.name
    spilled = [names[i] for i in range(n_layers) if traffic.shortcut_in_dram[i]]
    assert spilled == ([] if network == "resnet20"
                       else ["blocks.0.conv2.conv", "blocks.1.conv2.conv"])
    assert traffic.input_in_dram.any() == (network == "resnet18")
