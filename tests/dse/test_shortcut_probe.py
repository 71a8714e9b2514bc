"""A stored shortcut's bit error rate goes from the cost model to the probe's network."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from dse.accuracy import ProbeCandidate
from dse.evaluate import candidate_cost, probe_candidate
from dse.problem import build_problem
from dse.space import Candidate
from hw_models import LayerTable

# a downsample block whose conv1 spills once the shortcut conv's output is held through it
# (tests/hw_models/test_shortcut_traffic.py has the arithmetic)
DOWNSAMPLE = [
    dict(name="stem", kind="conv", cin=4, cout=32, kx=3, ky=3, ox=96, oy=96),
    dict(name="conv1", kind="conv", cin=32, cout=64, kx=3, ky=3, ox=48, oy=48, stride=2),
    dict(name="conv2", kind="conv", cin=64, cout=64, kx=3, ky=3, ox=48, oy=48,
         shortcut_tensor=3),
    dict(name="shortcut", kind="conv", cin=32, cout=64, kx=1, ky=1, ox=48, oy=48, stride=2,
         input_tensor=1),
    dict(name="fc", kind="linear", cin=64, cout=10, kx=1, ky=1, ox=1, oy=1),
]


@pytest.fixture
def problem(soc):
    streaming = dataclasses.replace(soc, memory=dataclasses.replace(soc.memory,
                                                                    weights_resident=False))
    return build_problem(network="toy", dataset=None, table=LayerTable.from_records(DOWNSAMPLE),
                         objectives="latency", soc=streaming, partitions=2)


def test_a_downsample_shortcut_ber_reaches_the_probe(problem):
    """Two partitions: the block input (and the shortcut placed with it) in the approximate
    one. The add's shortcut gets that partition's BER; moved to the nominal one, none."""
    space = problem.space
    assert space.dram_activations[1]  # the placement parameter of the block input
    names = [name for name, _, _ in space.placed_tensors()]
    assert "partition:activations/conv1" in names
    assert "partition:activations/shortcut" not in names  # no parameter of its own
    device = problem.device
    approximate = (device.vdd_nominal_v, round(device.vdd_nominal_v - 0.2, 6))
    trcd = (device.trcd_nominal_ns,) * 2
    n = problem.table.n_layers
    readers = (0, 1, 0, 1, 0)  # the block input (slot 1) read by conv1 and the shortcut
    candidate = Candidate((0,) * n, approximate, trcd, (0,) * n, readers)
    given = probe_candidate(candidate, candidate_cost(candidate, problem))
    assert len(given.shortcut_ber) == n and given.shortcut_ber[2] > 0
    assert given.shortcut_ber[2] == given.activation_ber[1]
    assert [b for i, b in enumerate(given.shortcut_ber) if i != 2] == [0.0] * (n - 1)
    nominal = Candidate((0,) * n, approximate, trcd, (0,) * n, (0,) * n)
    assert probe_candidate(nominal, candidate_cost(nominal, problem)).shortcut_ber == ()


def test_the_fine_tune_hands_the_shortcut_ber_to_the_network():
    from networks.finetune import _set_errors

    seen = {}

    class Model:
        def set_errors(self, weight_ber, activation_ber, **kwargs):
            seen.update(kwargs)

    setup = SimpleNamespace(config=SimpleNamespace(error_model=0), error_params=None,
                            row_bytes=2048)
    candidate = ProbeCandidate((0, 0), (0.0, 0.0), (0.0, 0.0), shortcut_ber=(0.0, 0.02))
    _set_errors(Model(), candidate, setup, scale=0.5, seed=1)  # type: ignore[arg-type]
    assert seen["shortcut_ber"] == [0.0, 0.01]
    _set_errors(Model(), dataclasses.replace(candidate, shortcut_ber=()), setup,  # type: ignore[arg-type]
                scale=1.0, seed=1)
    assert seen["shortcut_ber"] is None


def test_cost_json_names_each_add_s_shortcut():
    import json

    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["cost", "--network", "resnet8", "--dataset", "digits",
                                      "--mapping", "all-digital", "--json"])
    assert result.exit_code == 0, result.output
    layers = {row["name"]: row for row in json.loads(result.stdout)["layers"]}
    assert layers["blocks.0.conv2.conv"]["shortcut_tensor"] == "blocks.0.conv1.conv"
    assert layers["blocks.1.conv2.conv"]["shortcut_tensor"] == "blocks.1.shortcut.conv"
    assert layers["blocks.1.conv1.conv"]["shortcut_tensor"] is None
    assert not any(row["shortcut_in_dram"] or row["shortcut_ber"] for row in layers.values())
