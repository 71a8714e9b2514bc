"""The residual add quantised as ODiMO's QuantAdd, and the errors of its stored shortcut."""
from __future__ import annotations

import pytest
import torch

from hw_models.error_models import ErrorModelParams
from networks import build_network, extract_layer_table
from networks.diana_model import calibrate, to_diana
from networks.quant_add import QuantAdd


def test_add_quantises_both_operands_with_one_quantiser_and_keeps_the_sum():
    """ODiMO's QuantAdd: q(x) + q(y) with one 7-bit clip, the sum not requantised.
    Clip 127/64: one code is 1/64 (a power of two, as ODiMO's pow2 scale), so the operands
    below sit on codes and the hand-computed codes hold for round and floor alike."""
    add = QuantAdd()
    add.quantizer.clip.data.fill_(127 / 64)
    main = torch.tensor([-0.5, 3 / 64, 10 / 64, 5.0, 100 / 64])
    shortcut = torch.tensor([1 / 64, -2.0, 200 / 64, 0.0, 100 / 64])
    # codes: main [0, 3, 10, 127 (clipped), 100]; shortcut [1, 0, 127 (clipped), 0, 100]
    expected = torch.tensor([1, 3, 137, 127, 200]) / 64  # beyond 127 codes: not requantised
    with torch.no_grad():
        assert torch.equal(add(main, shortcut), expected)


def test_add_passes_gradients_to_both_operands_and_the_clip():
    add = QuantAdd()
    main = torch.tensor([0.2, 0.5], requires_grad=True)
    shortcut = torch.tensor([0.3, 2.0], requires_grad=True)
    add(main, shortcut).sum().backward()
    assert main.grad is not None and shortcut.grad is not None
    assert shortcut.grad[0] > 0 and shortcut.grad[1] == 0  # clipped: no gradient
    assert add.quantizer.clip.grad is not None


@pytest.fixture(scope="module")
def resnet8():
    torch.manual_seed(2)
    float_model = build_network("resnet8", "digits").eval()
    table = extract_layer_table(float_model, (1, 8, 8))
    model = to_diana(float_model, table.name)
    images = torch.randn(8, 1, 8, 8)
    calibrate(model, images)
    return float_model, model, table, images


def test_every_block_add_is_quantised(resnet8):
    float_model, model, table, images = resnet8
    mains = [name for _, name in model.add_names]
    assert mains == ["blocks.0.conv2.conv", "blocks.1.conv2.conv", "blocks.2.conv2.conv"]
    identity, down1, down2 = model.adds()
    conv1 = model.layers()[table.name.index("blocks.0.conv1.conv")]
    assert identity.reader is conv1 and identity.quantizer is conv1.input_quantizer
    assert down1.reader is None and down2.reader is None  # clips of their own
    assert down1.quantizer is not conv1.input_quantizer
    with torch.no_grad():
        reference = float_model(images)
        quantised = model.eval()(images)
    assert (quantised - reference).abs().max() < 0.2 * reference.abs().max()


def _spy(module, method: str, seen: list[torch.Tensor]) -> None:
    original = getattr(module, method)

    def spy(x):
        value = original(x)
        seen.append(value.detach().clone())
        return value
    setattr(module, method, spy)


def test_identity_shortcut_reads_the_codes_conv1_read_errors_included():
    """An identity block's shortcut is its input, stored once: the add gets conv1's
    corrupted codes, not a mask of its own."""
    torch.manual_seed(5)
    float_model = build_network("resnet8", "digits").eval()
    table = extract_layer_table(float_model, (1, 8, 8))
    model = to_diana(float_model, table.name)
    images = torch.randn(4, 1, 8, 8)
    calibrate(model, images)
    conv1_index = table.name.index("blocks.0.conv1.conv")
    conv1 = model.layers()[conv1_index]
    add = model.adds()[0]
    read_by_conv1: list[torch.Tensor] = []
    read_by_add: list[torch.Tensor] = []
    _spy(conv1, "quantized_input", read_by_conv1)
    _spy(add, "shortcut_value", read_by_add)
    bers = [0.0] * table.n_layers
    bers[conv1_index] = 0.05
    with torch.no_grad():
        model.eval()(images)
        model.set_errors([0.0] * table.n_layers, bers, model=0, params=ErrorModelParams(),
                         row_bytes=2048, seed=3, shortcut_ber=[0.3] * table.n_layers)
        model(images)
        model(images)
    # the add reads through conv1: its reads are every second one of conv1's spy
    assert len(read_by_conv1) == 6 and len(read_by_add) == 3
    assert all(torch.equal(a, b) for a, b in zip(read_by_conv1[0::2], read_by_add))
    assert all(torch.equal(a, b) for a, b in zip(read_by_conv1[1::2], read_by_add))
    assert not torch.equal(read_by_add[0], read_by_add[1])  # errors reached the shortcut
    assert not torch.equal(read_by_add[1], read_by_add[2])  # fresh masks per pass


def test_downsample_shortcut_gets_its_own_bit_error_rate(resnet8):
    _, model, table, images = resnet8
    main = table.name.index("blocks.1.conv2.conv")
    down = model.adds()[1]
    read: list[torch.Tensor] = []
    _spy(down, "shortcut_value", read)
    zeros = [0.0] * table.n_layers
    shortcut = list(zeros)
    shortcut[main] = 0.05
    try:
        with torch.no_grad():
            clean = model.eval()(images)
            model.set_errors(zeros, zeros, model=0, params=ErrorModelParams(),
                             row_bytes=2048, seed=3, shortcut_ber=shortcut)
            noisy = model(images)
            model.set_errors(zeros, zeros, model=0, params=ErrorModelParams(),
                             row_bytes=2048, seed=3, shortcut_ber=shortcut)
            again = model(images)
    finally:
        model.clear_errors()
        del down.shortcut_value
    assert not torch.equal(read[0], read[1]) and torch.equal(read[1], read[2])
    assert not torch.equal(clean, noisy) and torch.equal(noisy, again)
    codes = read[1] / down.quantizer.step()
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.max() <= 127 + 1e-4


def test_a_checkpoint_without_add_clips_calibrates_them_on_its_first_batch(tmp_path):
    """dse 0.3.0 checkpoints were trained with a float add: they still load, and a
    downsample add's clip is set from the first batch (an identity add has conv1's)."""
    from dataclasses import replace

    from helpers import tiny_checkpoint

    from networks.train import load_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint(tmp_path / "tiny.pt"))
    legacy = replace(checkpoint, state_dict={
        key: value for key, value in checkpoint.state_dict.items() if "quant_add" not in key})
    assert len(legacy.state_dict) < len(checkpoint.state_dict)
    model = legacy.build()
    assert [add.calibrate_on_first_pass for add in model.adds()] == [False, True, True]
    before = float(model.adds()[1].quantizer.clip.detach())
    with torch.no_grad():
        model.eval()(torch.randn(4, *checkpoint.input_shape))
    assert [add.calibrate_on_first_pass for add in model.adds()] == [False, False, False]
    assert float(model.adds()[1].quantizer.clip.detach()) != before
    fresh = checkpoint.build()  # a checkpoint with the clips keeps them
    assert not any(add.calibrate_on_first_pass for add in fresh.adds())
    assert torch.equal(fresh.adds()[1].quantizer.clip, checkpoint.state_dict[
        "net.quant_add_1.quantizer.clip"])
