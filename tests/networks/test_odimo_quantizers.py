"""The probe's quantisers against ODiMO's formulas, computed by hand in numpy (eml-eda/odimo
@ 2d9f139, models/quant_module_pow2.py, "qm2" below, and models/utils.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from networks.quantize import DianaLayer, quantizer_parameters, split_parameters

PHI_INV_THIRD = -0.4307272992954576  # standard normal quantile at 1/3 (qm2:377-378)
ANALOG = [0, 3, 5, 10]               # the mixed split of the test layer


def odimo_activation(x: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """qm2:195-202: sf = 2^floor(log2(127 / clip)), floor(clamp(x, 0, 127 / sf) * sf) / sf;
    returns the dequantised activation and the clip in effect."""
    sf = 2.0 ** math.floor(math.log2(127 / clip))
    clip_in_effect = 127 / sf
    return np.floor(np.clip(x, 0, clip_in_effect) * sf) / sf, clip_in_effect


def odimo_ternary(w: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """qm2:390-396 with 2 bits: e^s * round(clamp(W / e^s, -1, 1)), one s per channel."""
    scale = np.exp(log_scale)[:, None, None, None]
    return scale * np.round(np.clip(w / scale, -1, 1))


def odimo_int8(w: np.ndarray, p: float) -> tuple[np.ndarray, float]:
    """qm2:386-396 with 8 bits and round_pow2: S = 2^floor(log2 p),
    S * round(127 * clamp(W / S, -1, 1)) / 127."""
    s = 2.0 ** math.floor(math.log2(p))
    return s * np.round(127 * np.clip(w / s, -1, 1)) / 127, s


def odimo_bias(b: np.ndarray, weight_step: np.ndarray, activation_step: float) -> np.ndarray:
    """qm2:321-340: 16-bit codes of step (weight step) x (activation step)."""
    full_scale = 32767 * weight_step * activation_step
    return full_scale * np.round(32767 * np.clip(b / full_scale, -1, 1)) / 32767


def conv2d_by_hand(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stride 1, padding 1, 3x3: a direct sum."""
    n, _, h, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, width))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", padded[:, :, i:i + h, j:j + width], w[:, :, i, j])
    return out + b[None, :, None, None]


@pytest.fixture()
def layer() -> DianaLayer:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1, bias=True)
    bias = conv.bias
    assert bias is not None
    with torch.no_grad():
        conv.weight.mul_(1.5)
        bias.copy_(torch.linspace(-0.6, 0.6, 16))
        bias[1] = 1.5   # beyond a digital channel's 16-bit range: clamped
    return DianaLayer(conv, quantize_input=True)


def test_initial_scales_are_odimo_s(layer):
    sigma = math.sqrt(2 / (16 * 3 * 3))
    expected = math.log(-2 * PHI_INV_THIRD * sigma)
    assert math.exp(expected) == pytest.approx(0.1015, abs=1e-4)
    assert np.allclose(layer.ternary_log_scale.detach().numpy(), expected, atol=1e-6)
    peak = float(layer.layer.weight.detach().abs().max())
    # models/utils.py:270
    assert float(layer.digital_scale.detach()) == 2.0 ** math.floor(math.log2(2 * peak))
    assert peak < float(layer.digital_scale.detach()) <= 2 * peak


def test_forward_of_a_mixed_conv_matches_odimo_s_formulas(layer):
    with torch.no_grad():
        layer.ternary_log_scale.add_(torch.linspace(-0.3, 0.3, 16))  # one scale per channel
        layer.digital_scale.fill_(0.37)         # S = 0.25
        layer.input_quantizer.clip.fill_(1.3)   # sf = 64, clip in effect 1.984375
    layer.analog[ANALOG] = True
    x = torch.randn(2, 3, 5, 5) * 1.5
    with torch.no_grad():
        layer(x)  # a warm-up pass
        out = layer(x).numpy()

    w = layer.layer.weight.detach().double().numpy()
    b = layer.layer.bias.detach().double().numpy()
    log_scale = layer.ternary_log_scale.detach().double().numpy()
    x_q, clip_in_effect = odimo_activation(x.double().numpy(), 1.3)
    assert clip_in_effect == 1.984375
    w_digital, s = odimo_int8(w, 0.37)
    assert s == 0.25
    analog = np.zeros(16, dtype=bool)
    analog[ANALOG] = True
    w_q = np.where(analog[:, None, None, None], odimo_ternary(w, log_scale), w_digital)
    weight_step = np.where(analog, np.exp(log_scale), s / 127)
    b_q = odimo_bias(b, weight_step, clip_in_effect / 127)
    assert abs(b_q[1]) < 1.5 - 0.4  # the clamp bites on the digital channel 1
    expected = conv2d_by_hand(x_q, w_q, b_q)
    assert np.abs(out - expected).max() < 1e-5
    # a ternary channel holds three values, a digital one S / 127 multiples
    weight = layer.quantized_weight().detach().double().numpy()
    for channel in ANALOG:
        assert len(np.unique(np.round(weight[channel] / np.exp(log_scale[channel])))) <= 3


def test_codes_and_step_are_odimo_s_integers(layer):
    quantizer = layer.input_quantizer
    with torch.no_grad():
        quantizer.clip.fill_(2.0)  # 127 / 2 = 63.5: sf = 32, clip in effect 3.96875
    x = torch.linspace(-1, 5, 601)
    with torch.no_grad():
        codes, step = quantizer.codes(x), quantizer.step()
    assert float(step) == 1 / 32
    assert codes.min() == 0 and codes.max() == 127 and torch.equal(codes, codes.round())
    expected, _ = odimo_activation(x.double().numpy(), 2.0)
    assert np.array_equal((codes * step).numpy(), expected.astype(np.float32))
    assert np.array_equal(codes.numpy(), np.floor(np.clip(x.numpy(), 0, 3.96875) * 32))


def test_gradients_follow_odimo_s_straight_through_estimators():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
    layer = DianaLayer(conv, quantize_input=True)
    with torch.no_grad():
        layer.digital_scale.fill_(0.37)
        layer.input_quantizer.clip.fill_(1.3)
    layer.analog[ANALOG] = True
    x = (torch.randn(2, 3, 5, 5) * 1.5).requires_grad_()
    probe = torch.randn(2, 16, 5, 5)
    (layer(x) * probe).sum().backward()

    # the same loss through a plain conv of the quantised tensors: its gradients in them
    w_q = layer.quantized_weight().detach().requires_grad_()
    x_q = layer.input_quantizer(x.detach()).detach().requires_grad_()
    (F.conv2d(x_q, w_q, None, padding=1) * probe).sum().backward()
    grad_w, grad_x = w_q.grad, x_q.grad
    grad_weight, grad_s = conv.weight.grad, layer.ternary_log_scale.grad
    grad_p, grad_clip = layer.digital_scale.grad, layer.input_quantizer.clip.grad
    assert grad_w is not None and grad_x is not None and x.grad is not None
    assert grad_weight is not None and grad_s is not None
    assert grad_p is not None and grad_clip is not None
    w = conv.weight.detach()
    analog = layer.analog[:, None, None, None]
    # qm2:263-274: the weight gets the gradient of its quantised value unchanged
    assert torch.allclose(grad_weight, grad_w, atol=1e-5)
    # d(e^s round(W / e^s)) / ds = W_q - W on analog channels, nothing on digital ones
    expected_s = ((grad_w * (w_q - w)) * analog).sum(dim=(1, 2, 3))
    assert torch.allclose(grad_s, expected_s, atol=1e-5)
    assert (grad_s[~layer.analog] == 0).all()
    assert grad_s[layer.analog].abs().min() > 0
    # S = 2^FloorSTE(log2 p): dS/dp = S / p, so dL/dp = sum(grad (W_q - W)) / p (digital)
    expected_p = float(((grad_w * (w_q - w)) * ~analog).sum()) / 0.37
    assert float(grad_p) == pytest.approx(expected_p, rel=1e-4)
    # PACT (qm2:205-218): x gets the gradient where 0 < x < clip, the clip the rest
    clip_in_effect = 1.984375
    inside = (x.detach() > 0) & (x.detach() < clip_in_effect)
    assert torch.allclose(x.grad, grad_x * inside, atol=1e-6)
    expected_clip = float(grad_x[x.detach() >= clip_in_effect].sum())
    assert float(grad_clip) == pytest.approx(expected_clip, rel=1e-4)


def test_bias_quantisation_reaches_the_scales_and_the_clip(layer):
    layer.analog[ANALOG] = True
    with torch.no_grad():
        layer.layer.weight.zero_()  # only the bias path is left to carry gradients
    layer(torch.rand(1, 3, 4, 4)).sum().backward()
    grad_s = layer.ternary_log_scale.grad
    assert grad_s is not None and grad_s[layer.analog].abs().sum() > 0
    assert layer.input_quantizer.clip.grad is not None


def test_quantizer_parameters_are_odimo_s_q_params(layer):
    weights, quantizers = split_parameters(layer)
    names = {id(p): name for name, p in layer.named_parameters()}
    assert sorted(names[id(p)] for p in quantizers) == [
        "digital_scale", "input_quantizer.clip", "ternary_log_scale"]
    assert sorted(names[id(p)] for p in weights) == ["layer.bias", "layer.weight"]
    assert quantizer_parameters(layer) == quantizers


def test_the_analog_channels_are_those_ternarised_best_under_their_own_scale():
    pattern = torch.tensor([0.5, -0.5, 0.0])
    layer = DianaLayer(torch.nn.Linear(3, 3, bias=False), quantize_input=True)
    with torch.no_grad():
        layer.layer.weight.copy_(pattern.repeat(3, 1))
        layer.ternary_log_scale.copy_(torch.log(torch.tensor([2.0, 0.5, 0.5])))
    # channel 0: everything rounds to 0 (relative error 1); channels 1, 2: exact, a tie
    assert layer.analog_channels(1).tolist() == [False, True, False]
    assert layer.analog_channels(2).tolist() == [False, True, True]
    with torch.no_grad():
        layer.ternary_log_scale.copy_(torch.log(torch.tensor([0.5, 0.9, 2.0])))
    assert layer.analog_channels(1).tolist() == [True, False, False]
    assert layer.analog_channels(2).tolist() == [True, True, False]


def test_a_state_dict_without_scales_gets_odimo_s_initial_ones(layer):
    state = {k: v.clone() for k, v in layer.state_dict().items()
             if k not in ("ternary_log_scale", "digital_scale")}
    state["layer.weight"] = state["layer.weight"] * 3  # the loaded weights set the scale
    fresh = DianaLayer(torch.nn.Conv2d(3, 16, 3, padding=1), quantize_input=True)
    with torch.no_grad():
        fresh.ternary_log_scale.zero_()
        fresh.digital_scale.fill_(123.0)
    fresh.load_state_dict(state)
    peak = float(state["layer.weight"].abs().max())
    assert float(fresh.digital_scale.detach()) == 2.0 ** math.floor(math.log2(2 * peak))
    assert torch.allclose(fresh.ternary_log_scale, layer.ternary_log_scale)
    with pytest.raises(RuntimeError, match="layer.bias"):  # other keys are still required
        fresh.load_state_dict({k: v for k, v in state.items() if k != "layer.bias"})
    with pytest.raises(RuntimeError, match="stray"):
        fresh.load_state_dict({**state, "stray": torch.zeros(1)})


def test_a_checkpoint_of_dse_0_3_0_builds_with_odimo_s_initial_scales():
    """Written before the learned weight scales: each layer gets ODiMO's initial ones from
    the weights the checkpoint holds, and it runs."""
    from pathlib import Path

    from networks.train import load_checkpoint
    path = (Path(__file__).parents[1] / "data" / "studies-0.3.0" / "checkpoints"
            / "resnet8-digits-bbdf0b5334.pt")
    checkpoint = load_checkpoint(path)
    assert not any("scale" in key for key in checkpoint.state_dict)
    model = checkpoint.build()
    for name, layer in zip(checkpoint.layer_names, model.layers()):
        weight = checkpoint.state_dict[f"net.{name}.layer.weight"]
        peak = float(weight.abs().max())
        assert float(layer.digital_scale.detach()) == 2.0 ** math.floor(math.log2(2 * peak))
        cout, area = weight.shape[0], int(np.prod(weight.shape[2:]))
        sigma = math.sqrt(2 / (cout * area))
        assert torch.allclose(layer.ternary_log_scale.detach(),
                              torch.tensor(math.log(-2 * PHI_INV_THIRD * sigma)))
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.rand(2, *checkpoint.input_shape))).all()
