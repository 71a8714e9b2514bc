"""Zoo networks and layer-table extraction, checked against independent counts."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import resnet20_records
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hw_models import ConfigError, LayerTable
from networks import (
    build_network,
    extract_layer_table,
    get_dataset_spec,
    list_networks,
    reference_dataset,
)

ZOO = [entry.name for entry in list_networks()]


def counted_macs(model: nn.Module, input_shape) -> int:
    """MACs from torch's own FLOP counter (2 FLOPs per MAC for conv and matmul)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


def test_zoo_has_the_four_networks():
    assert ZOO == ["mobilenetv1", "resnet18", "resnet20", "resnet8"]


@pytest.mark.parametrize("network", ZOO)
@pytest.mark.parametrize("dataset", ["reference", "digits", "cifar10"])
def test_extracted_table_matches_module_counts(network, dataset):
    spec = get_dataset_spec(reference_dataset(network) if dataset == "reference" else dataset)
    model = build_network(network, spec)
    table = extract_layer_table(model, spec.input_shape)
    assert int(table.macs.sum()) == counted_macs(model, spec.input_shape)
    weight_params = sum(p.numel() for p in model.parameters() if p.dim() > 1)
    assert int(table.weights.sum()) == weight_params
    assert table.cin[0] == spec.input_shape[0]
    assert table.cout[-1] == spec.num_classes
    assert table.kind[-1] == "linear"


@pytest.mark.parametrize("network, n_layers, params, macs", [
    ("resnet8", 10, 78_042, 12_501_632),       # MLPerf Tiny IC: 78 k parameters, 12.5 M MACs
    ("resnet20", 22, 272_474, 40_813_184),     # CIFAR ResNet-20: 0.27 M parameters
    ("mobilenetv1", 28, 213_586, 7_489_664),   # MLPerf Tiny VWW: 7.49 M MACs
    ("resnet18", 21, 11_271_432, 2_221_772_800),
])
def test_reference_sizes(network, n_layers, params, macs):
    spec = get_dataset_spec(reference_dataset(network))
    model = build_network(network, spec)
    table = extract_layer_table(model, spec.input_shape)
    assert table.n_layers == n_layers
    assert sum(p.numel() for p in model.parameters()) == params
    assert int(table.macs.sum()) == macs


def test_resnet20_table_equals_hand_written_shapes():
    spec = get_dataset_spec("cifar10")
    table = extract_layer_table(build_network("resnet20", spec), spec.input_shape)
    expected = LayerTable.from_records(resnet20_records())
    key = lambda t: sorted(zip(t.kind, t.cin, t.cout, t.kx, t.ox, t.stride))  # noqa: E731
    assert key(table) == key(expected)
    assert table.name[-1] == "fc" and table.name[0] == "stem.conv"
    assert sum(k == "conv" and kx == 3 for k, kx in zip(table.kind, table.kx)) == 19
    assert sum(kx == 1 for k, kx in zip(table.kind, table.kx) if k == "conv") == 2


def test_every_resnet20_block_names_the_shortcut_its_add_reads():
    """Identity blocks: the block input, named by conv1; downsample blocks: the shortcut
    conv's output. The add is counted with conv2, whose output is its main operand."""
    spec = get_dataset_spec("cifar10")
    table = extract_layer_table(build_network("resnet20", spec), spec.input_shape)
    names = table.name
    reads = {names[i]: names[int(t)] for i, t in enumerate(table.shortcut_tensor) if t >= 0}
    assert len(reads) == 9 and all(name.endswith("conv2.conv") for name in reads)
    assert reads["blocks.0.conv2.conv"] == "blocks.0.conv1.conv"
    assert reads["blocks.3.conv2.conv"] == "blocks.3.shortcut.conv"
    assert reads["blocks.6.conv2.conv"] == "blocks.6.shortcut.conv"
    assert list(names[i] for i in np.flatnonzero(table.shortcut_writers())) == [
        "blocks.3.shortcut.conv", "blocks.6.shortcut.conv"]


def test_mobilenet_depthwise_layers():
    spec = get_dataset_spec("vww")
    table = extract_layer_table(build_network("mobilenetv1", spec), spec.input_shape)
    assert (table.shortcut_tensor == -1).all()  # no residual adds
    depthwise = [i for i, kind in enumerate(table.kind) if kind == "depthwise"]
    assert len(depthwise) == 13
    assert not table.analog_capable[depthwise].any()
    assert (table.groups[depthwise] == table.cin[depthwise]).all()
    assert table.ox[0] == 48  # 96x96 input, stride-2 stem


def test_resnet18_keeps_spatial_size_in_the_stem():
    spec = get_dataset_spec("tiny-imagenet")
    table = extract_layer_table(build_network("resnet18", spec), spec.input_shape)
    assert (table.ox[0], table.cout[0], table.cout[-1]) == (64, 64, 200)


def test_extraction_leaves_the_model_in_training_mode():
    model = build_network("resnet8", "digits").train()
    extract_layer_table(model, (1, 8, 8))
    assert model.training


def test_module_called_twice_gets_two_rows():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    table = extract_layer_table(Shared(), (4, 8, 8))
    assert table.name == ("conv", "conv#2")


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        from torch import nn

        def tiny(input_shape, num_classes):
            c, h, w = input_shape
            return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

        def not_a_model(input_shape, num_classes):
            return 42

        def broken(input_shape, num_classes):
            return nn.Linear(3, 3)

        def keywords_only(*, num_classes, input_shape):
            return tiny(input_shape, num_classes)

        def odd_shapes(input_shape, num_classes):
            c, h, w = input_shape
            # a 1x3 kernel (ky=1, kx=3) with stride (2, 1), then a linear layer on 4-D data
            return nn.Sequential(nn.Conv2d(c, 4, (1, 3), stride=(2, 1), padding=(0, 1)),
                                 nn.Linear(w, num_classes))

        def multiline(input_shape, num_classes):
            raise RuntimeError("first line\\nsecond line")

        def exits(input_shape, num_classes):
            raise SystemExit(5)
    """))
    (tmp_path / "badmodule.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("mynets", "badmodule"):
        sys.modules.pop(name, None)


def test_user_model(user_package):
    model = build_network("mynets:tiny", "cifar10")
    table = extract_layer_table(model, (3, 32, 32))
    assert table.name == ("0", "4")
    assert list(table.cout) == [8, 10]
    assert table.macs[0] == 8 * 3 * 9 * 32 * 32


def test_user_builder_is_called_with_keywords(user_package):
    assert extract_layer_table(build_network("mynets:keywords_only", "cifar10"),
                               (3, 32, 32)).n_layers == 2


def test_non_square_kernels_strides_and_4d_linear(user_package):
    table = extract_layer_table(build_network("mynets:odd_shapes", "cifar10"), (3, 32, 32))
    conv, linear = table.to_records()
    assert (conv["kx"], conv["ky"], conv["stride"], conv["ox"], conv["oy"]) == (3, 1, 1, 32, 16)
    assert conv["macs"] == 4 * 3 * 3 * 32 * 16
    # the linear layer runs on every (channel, row) position of a (4, 16, 32) tensor
    assert (linear["cin"], linear["ox"], linear["oy"]) == (32, 4 * 16, 1)
    assert linear["macs"] == 32 * 10 * 4 * 16


@pytest.mark.parametrize("reference, message", [
    ("mynets:exits", "SystemExit"),
    ("nosuchpackage.mod:fn", "cannot import 'nosuchpackage.mod'"),
    ("badmodule:fn", "boom at import"),
    ("mynets:missing", "no callable 'missing'"),
    ("mynets:not_a_model", "returned int"),
    ("mynets:", "package.module:function"),
])
def test_bad_user_models(user_package, reference, message):
    with pytest.raises(ConfigError, match=message):
        build_network(reference, "cifar10")


def test_user_model_failing_on_the_input_shape(user_package):
    with pytest.raises(ConfigError, match="fails on input shape"):
        extract_layer_table(build_network("mynets:broken", "cifar10"), (3, 32, 32))


def test_unknown_network_and_dataset():
    with pytest.raises(ConfigError, match="unknown network 'vgg'"):
        build_network("vgg", "cifar10")
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        get_dataset_spec("mnist")
    with pytest.raises(ConfigError, match="give --dataset"):
        reference_dataset("mynets:tiny")


def test_records_round_trip():
    spec = get_dataset_spec("digits")
    table = extract_layer_table(build_network("resnet8", spec), spec.input_shape)
    again = LayerTable.from_records(table.to_records())
    for column in ("cin", "cout", "macs", "weights", "input_elements", "output_elements"):
        np.testing.assert_array_equal(getattr(again, column), getattr(table, column))
