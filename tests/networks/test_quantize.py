"""DIANA quantisers, the analog-channel rule and the quantised model."""
from __future__ import annotations

from unittest import mock

import pytest
import torch

from hw_models.error_models import ErrorModelParams
from networks import build_network, extract_layer_table
from networks.diana_model import calibrate, to_diana
from networks.quantize import (
    ActivationQuantizer,
    analog_channels,
    pow2_int8,
    ternarisation_error,
    ternary,
)
from networks.resnet import BasicBlock


def test_ternary_values_per_channel():
    torch.manual_seed(0)
    weight = torch.randn(6, 4, 3, 3) * 0.2
    log_scale = torch.log(torch.linspace(0.05, 0.3, 6))
    codes, scale = ternary(weight, log_scale)
    assert set(codes.unique().tolist()) <= {-1.0, 0.0, 1.0}
    dequantised = codes * scale[:, None, None, None]
    for channel in range(6):
        values = set(dequantised[channel].unique().tolist())
        s = float(scale[channel])
        assert values <= {-s, 0.0, s} and s > 0
        kept = weight[channel].abs() > s / 2  # round(clamp(w / s, -1, 1)): threshold s / 2
        assert torch.equal(codes[channel] != 0, kept)


def test_int8_grid_with_power_of_two_scale():
    torch.manual_seed(1)
    weight = torch.randn(8, 3, 3, 3) * 0.3
    codes, scale = pow2_int8(weight, torch.tensor(0.9))
    assert scale == 0.5  # 2^floor(log2 0.9)
    assert codes.abs().max() <= 127 and torch.equal(codes, codes.round())
    inside = weight.abs() <= scale
    assert ((codes * scale / 127 - weight).abs()[inside]).max() <= scale / 127 / 2 + 1e-7
    assert torch.equal(codes[~inside].abs(), torch.full_like(codes[~inside], 127.0))


def test_activations_are_7_bit():
    quantizer = ActivationQuantizer()
    quantizer.clip.data.fill_(2.0)  # rounded up to 127 / 32 = 3.96875 (sf = 32)
    x = torch.linspace(-1, 5, 1001)
    with torch.no_grad():
        codes = quantizer.codes(x)
        out = quantizer(x)
    assert codes.min() == 0 and codes.max() == 127
    assert torch.equal(codes, codes.round())
    assert out.min() == 0 and float(out.max()) == 127 / 32
    assert len(out.unique()) == 128


def test_analog_channel_rule_picks_smallest_ternarisation_error():
    torch.manual_seed(2)
    weight = torch.randn(4, 8)
    weight[2] = torch.tensor([0.5, -0.5, 0.5, 0.0, 0.5, -0.5, 0.0, 0.5])  # exactly ternary
    weight[3] = weight[2].clone()  # a tie with channel 2: the lower index wins
    log_scale = torch.log(torch.tensor([0.8, 0.8, 0.5, 0.5]))
    errors = ternarisation_error(weight, log_scale)
    assert errors[2] == pytest.approx(0, abs=1e-12)
    assert analog_channels(weight, 1, log_scale).tolist() == [False, False, True, False]
    two = analog_channels(weight, 2, log_scale)
    assert two.tolist() == [False, False, True, True]
    order = torch.argsort(errors[:2])
    three = analog_channels(weight, 3, log_scale)
    assert three[order[0]] and not three[order[1]]
    assert analog_channels(weight, 0, log_scale).sum() == 0
    assert analog_channels(weight, 4, log_scale).all()


def calibrated(network: str, dataset: str, shape: tuple[int, int, int], images: int,
               seed: int):
    """A zoo network as DIANA runs it, calibrated on random images."""
    torch.manual_seed(seed)
    float_model = build_network(network, dataset).eval()
    table = extract_layer_table(float_model, shape)
    model = to_diana(float_model, table.name)
    batch = torch.randn(images, *shape)
    calibrate(model, batch)
    return float_model, model, table, batch


@pytest.fixture(scope="module")
def small_model():
    return calibrated("resnet8", "digits", (1, 8, 8), 64, seed=3)


def odimo_block_forward(self, x):
    """The float block with ODiMO's add: each operand clipped at 0 (its quantiser's range)
    before the sum, where the float model has one ReLU after it."""
    return torch.relu(self.conv2(self.conv1(x))) + torch.relu(self.shortcut(x))


def test_all_digital_model_tracks_the_float_model(small_model):
    float_model, model, _, images = small_model
    with mock.patch.object(BasicBlock, "forward", odimo_block_forward), torch.no_grad():
        reference = float_model(images)
    with torch.no_grad():
        quantised = model.eval()(images)
    assert (quantised - reference).abs().max() < 0.1 * reference.abs().max()


@pytest.mark.slow
def test_split_and_errors_change_the_output_reproducibly(small_model):
    _, model, table, images = small_model
    model.eval()
    with torch.no_grad():
        digital = model(images)
        model.set_split(table.cout)
        analog = model(images)
        bers = [1e-2] * table.n_layers
        model.set_errors(bers, bers, model=0, params=ErrorModelParams(), row_bytes=2048, seed=5)
        noisy = model(images)
        model.set_errors(bers, bers, model=0, params=ErrorModelParams(), row_bytes=2048, seed=5)
        again = model(images)
        fresh = model(images)  # the generator moved on: new masks
        model.clear_errors()
        model.set_split([0] * table.n_layers)
    assert not torch.allclose(digital, analog)
    assert not torch.allclose(analog, noisy)
    assert torch.equal(noisy, again) and not torch.equal(noisy, fresh)


def test_depthwise_layers_never_go_analog_in_training_splits():
    from networks.train import TrainConfig, _RandomSplits
    float_model = build_network("mobilenetv1", "digits")
    table = extract_layer_table(float_model, (1, 8, 8))
    model = to_diana(float_model, table.name)
    splits = _RandomSplits(table, TrainConfig())
    for step in range(20):
        splits(model, step)
        for layer, capable in zip(model.layers(), table.analog_capable):
            assert capable or not layer.analog.any()


def test_one_stored_tensor_one_mask_for_every_reader():
    """A block's conv1 and its shortcut conv read one stored tensor: one quantiser, one
    corrupted copy (the same flipped bits), as the cost model's one DRAM copy."""
    _, model, table, images = calibrated("resnet20", "cifar10", (3, 32, 32), 4, seed=4)
    conv1 = table.name.index("blocks.3.conv1.conv")
    shortcut = table.name.index("blocks.3.shortcut.conv")
    assert table.input_tensor[shortcut] == conv1  # the cost model's view
    layers = model.layers()
    assert layers[shortcut].input_quantizer is layers[conv1].input_quantizer
    seen: dict[int, list[torch.Tensor]] = {conv1: [], shortcut: []}
    for index in seen:
        layer = layers[index]
        original = layer.quantized_input

        def spy(x, original=original, index=index):
            value = original(x)
            seen[index].append(value.detach().clone())
            return value
        layer.quantized_input = spy  # type: ignore[method-assign]
    bers = [0.0] * table.n_layers
    bers[conv1] = bers[shortcut] = 0.05
    with torch.no_grad():
        model.eval()(images)  # error-free
        model.set_errors([0.0] * table.n_layers, bers, model=0, params=ErrorModelParams(),
                         row_bytes=2048, seed=7)
        model(images)
        model(images)  # a fresh pass: fresh masks, still one per tensor
    clean, first, second = (seen[conv1][k] for k in range(3))
    assert all(torch.equal(seen[conv1][k], seen[shortcut][k]) for k in range(3))
    assert not torch.equal(clean, first) and not torch.equal(first, second)
    assert all(layer.stored_copy.source is None for layer in layers)  # nothing kept after


def test_a_split_can_name_its_analog_channels(small_model):
    _, model, table, _ = small_model
    counts = [0] * table.n_layers
    counts[1] = 3
    channels = [None] * table.n_layers
    channels[1] = (0, 2, 5)
    model.set_split(counts, channels)
    assert torch.nonzero(model.layers()[1].analog).flatten().tolist() == [0, 2, 5]
    model.set_split(counts)  # by the rule: the 3 least-ternarisation-error channels
    rule = analog_channels(model.layers()[1].layer.weight, 3,
                           model.layers()[1].ternary_log_scale)
    assert torch.equal(model.layers()[1].analog, rule)
    model.set_split([0] * table.n_layers)
