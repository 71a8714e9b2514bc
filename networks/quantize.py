"""DIANA quantisation of a torch model, with DRAM bit errors on the stored tensors.

As in ODiMO (Risso et al., ISLPED 2023) for DIANA:

* BatchNorm is folded into the preceding conv / linear layer (torch.fx ``fuse``);
* digital output channels use 8-bit symmetric weights with one power-of-two scale per layer
  (shift-based requantisation on DIANA's digital core): codes in [-127, 127];
* analog output channels use ternary weights {-1, 0, +1} with one scale per output channel
  (threshold 0.7 x mean |w| and scale = mean |w| above it, as in ternary weight networks,
  Li & Liu 2016);
* the inputs of every layer but the first are 7-bit unsigned activations with a learned clip
  (PACT, Choi et al. 2018), initialised by calibration; the network input stays as it is;
* straight-through estimators pass gradients through every rounding.

**Which channels go analog** (``analog_channels``): the ``n_analog`` output channels whose
weights lose least when ternarised, i.e. with the smallest relative ternarisation error
||w_c - t_c||^2 / ||w_c||^2 (ties broken by channel index). The rule is deterministic.

DRAM errors act on the stored codes: int8 two's complement for digital weights, packed 2-bit
(w+, w-) codes for analog weights, one byte per 7-bit activation; each tensor starts a DRAM
row. After injection, EDEN's implausible-value correction zeroes weight codes outside the
layer's error-free code range and activation codes above 127.

**One stored copy per tensor**: layers that read the same input (a block's first conv and its
shortcut conv) share one activation quantiser and one ``StoredCopy``: the tensor is
quantised and stored once, so in a forward pass the first reader draws its errors and every
other reader gets the same corrupted codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hw_models.error_models import ErrorModelParams
from networks import fault_injection as fi

DIGITAL_LEVELS = 127  # 8-bit symmetric codes
ACTIVATION_LEVELS = 127  # 7-bit unsigned codes
TERNARY_THRESHOLD = 0.7  # x mean |w|, ternary weight networks (Li & Liu 2016)


def pow2_int8(weight: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Codes (float tensor of integers in [-127, 127]) and the layer's power-of-two scale."""
    peak = float(weight.detach().abs().max())
    scale = 2.0 ** np.ceil(np.log2(peak / DIGITAL_LEVELS)) if peak > 0 else 1.0
    return torch.clamp(torch.round(weight / scale), -DIGITAL_LEVELS, DIGITAL_LEVELS), scale


def ternary(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel ternary codes in {-1, 0, 1} and scales, shape (cout,)."""
    flat = weight.detach().reshape(weight.shape[0], -1)  # (cout, fan_in)
    magnitude = flat.abs()
    threshold = TERNARY_THRESHOLD * magnitude.mean(dim=1, keepdim=True)
    kept = magnitude > threshold
    scale = (magnitude * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1)
    codes = torch.sign(flat) * kept
    return codes.reshape(weight.shape), scale


def ternarisation_error(weight: torch.Tensor) -> torch.Tensor:
    """Relative squared error of ternarising each output channel, shape (cout,)."""
    codes, scale = ternary(weight)
    flat = weight.detach().reshape(weight.shape[0], -1)
    approx = codes.reshape(flat.shape) * scale[:, None]
    return ((flat - approx) ** 2).sum(dim=1) / (flat ** 2).sum(dim=1).clamp(min=1e-30)


def analog_channels(weight: torch.Tensor, n_analog: int) -> torch.Tensor:
    """Boolean mask (cout,): the ``n_analog`` channels with the smallest ternarisation error."""
    order = torch.argsort(ternarisation_error(weight), stable=True)
    mask = torch.zeros(weight.shape[0], dtype=torch.bool)
    mask[order[:n_analog]] = True
    return mask


def straight_through(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` in the forward pass, gradient of ``value`` in the backward pass."""
    return value + (target - value).detach()


@dataclass(frozen=True)
class TensorErrors:
    """Bit errors of one layer's stored tensors (set by ``set_errors``).

    Attributes:
        weight_ber, activation_ber: bit error rate of the weights / input activations.
        model: EDEN error model 0..3.
        params: error-model parameters of the DRAM device.
        row_bytes: DRAM row size.
        rng: drawn from for every forward pass, so training sees fresh masks.
    """

    weight_ber: float
    activation_ber: float
    model: int
    params: ErrorModelParams
    row_bytes: int
    rng: np.random.Generator


class StoredCopy:
    """The corrupted codes of one stored tensor in the current forward pass, shared by the
    layers that read it (plain state, not a module: nothing of it is saved)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.source: torch.Tensor | None = None
        self.ber = 0.0
        self.codes: torch.Tensor | None = None

    def get(self, x: torch.Tensor, ber: float) -> torch.Tensor | None:
        return self.codes if self.source is x and self.ber == ber else None

    def keep(self, x: torch.Tensor, ber: float, codes: torch.Tensor) -> None:
        self.source, self.ber, self.codes = x, ber, codes


class ActivationQuantizer(nn.Module):
    """7-bit unsigned fake quantisation with a learned clip (PACT)."""

    def __init__(self) -> None:
        super().__init__()
        self.clip = nn.Parameter(torch.tensor(1.0))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes 0..127 as float, differentiable in x and clip through the STE."""
        clipped = torch.minimum(F.relu(x), self.clip)
        return straight_through(clipped * ACTIVATION_LEVELS / self.clip,
                                torch.round(clipped * ACTIVATION_LEVELS / self.clip))

    def step(self) -> torch.Tensor:
        """The value of one code (differentiable in the clip)."""
        return self.clip / ACTIVATION_LEVELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.codes(x) * self.step()


class DianaLayer(nn.Module):
    """A conv or linear layer as DIANA runs it: split digital / analog output channels."""

    analog: torch.Tensor  # bool buffer, one entry per output channel (True: analog)

    def __init__(self, layer: nn.Conv2d | nn.Linear, *, quantize_input: bool) -> None:
        super().__init__()
        self.layer = layer
        self.quantize_input = quantize_input
        self.input_quantizer = ActivationQuantizer()
        self.register_buffer("analog", torch.zeros(layer.weight.shape[0], dtype=torch.bool))
        self.errors: TensorErrors | None = None
        self._frozen_weight: torch.Tensor | None = None
        self.stored_copy = StoredCopy()  # shared with the other readers of the same input
        # ODiMO's search: per output channel, the probability of the analog array; the
        # weight is then the mix of the two quantised weights (None: the ``analog`` split)
        self.analog_probability: torch.Tensor | None = None

    def set_errors(self, errors: TensorErrors | None) -> None:
        self.errors = errors
        self._frozen_weight = None

    def freeze_weight_errors(self) -> None:
        """Draw the weight errors once and reuse them (one mask per evaluation seed)."""
        self._frozen_weight = self.quantized_weight().detach()

    def quantized_weight(self) -> torch.Tensor:
        """Weights as the accelerators see them (errors included), with STE gradients."""
        weight = self.layer.weight
        digital_codes, digital_scale = pow2_int8(weight.detach())
        ternary_codes, ternary_scale = ternary(weight.detach())
        errors = self.errors
        if errors is not None and errors.weight_ber > 0:
            digital_codes, ternary_codes = self._inject_weights(errors, digital_codes,
                                                                ternary_codes)
        per_channel = (-1,) + (1,) * (weight.dim() - 1)
        analog_weight = straight_through(weight,
                                         ternary_codes * ternary_scale.reshape(per_channel))
        digital_weight = straight_through(weight, digital_codes * digital_scale)
        if self.analog_probability is not None:  # ODiMO: sum_i softmax(alpha / tau)_i Q_i(W)
            share = self.analog_probability.reshape(per_channel)
            return share * analog_weight + (1 - share) * digital_weight
        return torch.where(self.analog.reshape(per_channel), analog_weight, digital_weight)

    def _inject_weights(self, errors: TensorErrors, digital: torch.Tensor,
                        analog_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kw = dict(model=errors.model, seed=errors.rng, row_bytes=errors.row_bytes,
                  params=errors.params)
        low, high = float(digital.min()), float(digital.max())  # profiled, error-free
        digital_rows = digital[~self.analog]
        if digital_rows.numel():
            hit = fi.inject_int8(digital_rows.to(torch.int8), errors.weight_ber, **kw)
            digital = digital.clone()
            digital[~self.analog] = fi.correct_implausible(hit.float(), low, high)
        analog_rows = analog_codes[self.analog]
        if analog_rows.numel():
            analog_codes = analog_codes.clone()
            analog_codes[self.analog] = fi.inject_ternary(analog_rows.to(torch.int8),
                                                          errors.weight_ber, **kw).float()
        return digital, analog_codes

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_input:
            return x
        quantizer = self.input_quantizer
        errors = self.errors
        ber = errors.activation_ber if errors is not None else 0.0
        known = self.stored_copy.get(x, ber) if ber > 0 else None
        if known is not None:  # another reader of this tensor drew its errors already
            return known * quantizer.step()
        codes = quantizer.codes(x)
        if errors is not None and ber > 0:
            stored = codes.detach().to(torch.uint8).cpu()
            hit = fi.inject_activations(stored, ber, model=errors.model, seed=errors.rng,
                                        row_bytes=errors.row_bytes, params=errors.params)
            corrected = fi.correct_implausible(hit.float(), 0, ACTIVATION_LEVELS)
            codes = straight_through(codes, corrected.to(codes.device))
            self.stored_copy.keep(x, ber, codes)
        return codes * quantizer.step()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantized_input(x)
        weight = self._frozen_weight
        if weight is None:
            weight = self.quantized_weight()
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, layer.bias)
        return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding, layer.dilation,
                        layer.groups)
