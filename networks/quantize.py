"""DIANA quantisation of a torch model, with DRAM bit errors on the stored tensors.

The quantisers are ODiMO's (Risso et al., ISLPED 2023; public code eml-eda/odimo @ 2d9f139,
``models/quant_module_pow2.py``, abbreviated ``qm2`` below, and ``models/utils.py``), the
ones its DIANA networks (``models/mixresnet.py``) search and fine-tune with:

* BatchNorm is folded into the preceding conv / linear layer (torch.fx ``fuse``), as ODiMO
  starts from a BN-folded network (mixresnet.py:594-603);
* **analog (ternary) weights**, one learned log-scale ``s_c`` per output channel
  (``FQConvWeightQuantization`` with 2 bits, qm2:359-399; per channel, qm2:369):
  ``W_q = e^s_c * round(clamp(W / e^s_c, -1, 1))``. ``s_c`` starts from the layer's shape
  only, at ``ln(-2 Phi^-1(1/3) sigma)`` with ``sigma = sqrt(2 / (cout * k^2))``, so that a
  weight drawn from N(0, sigma) is -1, 0 or +1 with equal odds (qm2:371-379; ``init_scale_param``
  skips the 2-bit branch, utils.py:254-255): e^s = 0.1015 for a 16-channel 3x3 conv;
* **digital (8-bit) weights**, one learned scale ``p`` per layer rounded down to a power of two
  (``round_pow2``, qm2:386-388, set for every branch but the 2-bit one, qm2:766):
  ``S = 2^floor(log2 p)``, ``W_q = S * round(127 * clamp(W / S, -1, 1)) / 127`` (qm2:245-261),
  so codes in [-127, 127] and one code worth S / 127; ``p`` starts at
  ``2^floor(log2(2 max|W|))`` of the layer's weights (utils.py:267-272);
* **biases** (BN-folded layers have them): 16-bit codes whose step is the weight step times
  the input's activation step (``FQConvBiasQuantization``, qm2:307-342): per channel
  ``e^s_c * (clip / 127)`` analog, ``(S / 127) * (clip / 127)`` digital; codes in
  [-32767, 32767]. The first layer reads the raw network input, which has no activation
  step, so its bias stays float;
* **activations**: the input of every layer but the first is 7-bit unsigned PACT with a
  learned clip and a power-of-two scale (``LearnedClippedLinearQuantizeSTE`` with
  ``round_pow2``, qm2:189-218; on by default for DIANA's layers, qm2:532):
  ``sf = 2^floor(log2(127 / clip))``, ``code = floor(clamp(x, 0, 127 / sf) * sf)`` in 0..127,
  ``x_q = code / sf``, so the clip in effect, 127 / sf, lies in [clip, 2 clip). ODiMO writes
  that value back into the clip parameter on every forward pass (qm2:198); here the
  parameter keeps what the optimiser made of it and the forward pass uses the rounded value
  (the same forward for the same parameter). ODiMO starts every clip at 6 (qm2:531);
  dse calibrates it instead on training images (``diana_model.calibrate``): the baseline
  checkpoint then learns it in quantisation-aware training, and the probe starts from the
  clips that checkpoint learned. The network input stays as it is (ODiMO's ResNet20
  quantises it too, with a clip of 1.0, so 127 / 64 = 1.984375 in effect,
  mixresnet.py:298-301; dse's normalised images are not confined to [0, 2));
* **gradients** as ODiMO's autograd: every rounding (and the weights' clamp) passes the
  gradient straight through (``FQQuantizationSTE.backward``, qm2:263-274; ``FloorSTE``,
  qm2:348-355): the weight gets ``grad``, a ternary log-scale ``sum(grad * (W_q - W))``
  over its channel and the digital scale ``sum(grad * (W_q - W)) / p`` over its layer; the
  activation passes ``grad`` for 0 < x < clip and the clip gets the sum of ``grad`` over
  x >= clip (PACT, qm2:205-218);
* the quantiser parameters (clips and weight scales) learn with their own optimiser, plain SGD
  at 1e-5 (``QUANTIZER_LR``; ODiMO's ``q_params``, ``--lrq`` default 1e-5, in search and
  fine-tune: image_classification/cifar10/search_r20.py:91,339-357 and main_r20.py:89,
  308-325): ``quantizer_parameters`` lists them.

**Which channels go analog** (``analog_channels``): the ``n_analog`` output channels whose
weights lose least when ternarised under their own scale ``e^s_c``, i.e. with the smallest
relative error ||w_c - e^s_c t_c||^2 / ||w_c||^2 (ties broken by channel index). The rule is
deterministic.

**Checkpoints without the weight scales** (written before these quantisers): a state dict that
lacks a layer's scales gets them by ODiMO's initial rules from the weights it holds
(``DianaLayer._load_from_state_dict``); every other missing or unexpected key is still an
error.

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

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hw_models.error_models import ErrorModelParams
from networks import fault_injection as fi

# Which quantisers the probe measures with, its residual adds (networks.quant_add) included:
# part of the probe cache key and of EDEN's retraining key, so that results measured with
# other quantisers (dse <= 0.3: ternary at 0.7 mean|w|, unlearned scales, float adds) are
# measured again rather than read back.
QUANTIZER_VERSION = "odimo-2d9f139-pact"

DIGITAL_LEVELS = 127     # 2^(8-1) - 1 positive codes of the 8-bit weights (qm2:251)
TERNARY_LEVELS = 1       # 2^(2-1) - 1 (qm2:251): codes -1, 0, +1
ACTIVATION_LEVELS = 127  # 2^7 - 1 codes of the 7-bit activations (qm2:149)
BIAS_LEVELS = 32767      # 2^(16-1) - 1 positive codes of the 16-bit biases (qm2:314,324)
# qm2:377: p = 1 / (2^bits - 1), the share of weights each of the three ternary codes gets
TERNARY_CODE_SHARE = 1 / 3
QUANTIZER_LR = 1e-5      # SGD on clips and scales (ODiMO --lrq, cifar10/main_r20.py:89)


def initial_ternary_log_scale(cout: int, kernel_area: int) -> float:
    """ODiMO's initial log-scale of a ternary layer (qm2:371-378): weights of a kaiming
    fan-out normal N(0, sqrt(2 / (cout * k^2))) below -e^s / 2 have odds 1/3. From the
    shape only (a linear layer is a 1x1 conv, as ODiMO maps it, mixresnet.py:81-88:
    ``kernel_area`` 1)."""
    sigma = math.sqrt(2 / (cout * kernel_area))
    return math.log(-2 * NormalDist(0.0, sigma).inv_cdf(TERNARY_CODE_SHARE))


def initial_digital_scale(weight: torch.Tensor) -> float:
    """ODiMO's initial 8-bit scale of a layer, 2^floor(log2(2 max|W|)) (utils.py:270): the
    power of two in (max|W|, 2 max|W|], so no weight clips (1 for an all-zero layer)."""
    peak = float(weight.detach().abs().max())
    return float(2.0 ** math.floor(math.log2(2 * peak))) if peak > 0 else 1.0


def _kernel_area(weight: torch.Tensor) -> int:
    return int(np.prod(weight.shape[2:])) if weight.dim() > 2 else 1


Spread = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_is(small: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The ``Spread`` of one model: ``small`` as it is (the operation broadcasts it)."""
    return small


def straight_through(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` in the forward pass, gradient of ``value`` in the backward pass."""
    return value + (target - value).detach()


def floor_ste(value: torch.Tensor) -> torch.Tensor:
    """floor with the gradient of the identity (ODiMO's ``FloorSTE``, qm2:348-355)."""
    return straight_through(value, torch.floor(value))


def power_of_two_scale(scale_param: torch.Tensor) -> torch.Tensor:
    """S = 2^floor(log2 p), differentiable in p through ``floor_ste`` (qm2:386-388)."""
    return torch.exp2(floor_ste(torch.log2(scale_param)))


def _codes(scaled: torch.Tensor, levels: int) -> torch.Tensor:
    """round(levels * clamp(x, -1, 1)): the integer codes of ODiMO's ``FQQuantizationSTE``
    (qm2:253-257) without the gradient."""
    return torch.round(torch.clamp(scaled.detach(), -1, 1) * levels)


def _fake_quantized(weight: torch.Tensor, scale: torch.Tensor, codes: torch.Tensor,
                    levels: int, spread: Spread | None = None) -> torch.Tensor:
    """``scale * codes / levels`` in the forward pass; in the backward pass, the gradient of
    ``scale * (weight / scale)`` with the rounding and clamp passed straight through
    (qm2:391-396 with qm2:263-274). ``spread`` (``Spread``) broadcasts ``scale`` where it
    meets ``weight``."""
    spread = spread or as_is
    scaled = weight / spread(scale, weight)
    return straight_through(scaled, codes / levels) * spread(scale, weight)


def ternary(weight: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary codes in {-1, 0, 1} (weight's shape) and the per-channel scales e^s, (cout,)."""
    scale = torch.exp(log_scale.detach())
    per_channel = (-1,) + (1,) * (weight.dim() - 1)
    return _codes(weight / scale.reshape(per_channel), TERNARY_LEVELS), scale


def pow2_int8(weight: torch.Tensor, scale_param: torch.Tensor) -> tuple[torch.Tensor, float]:
    """8-bit codes in [-127, 127] (float tensor of integers) and the layer's power-of-two
    scale S (one code is worth S / 127)."""
    scale = float(power_of_two_scale(scale_param.detach()))
    return _codes(weight / scale, DIGITAL_LEVELS), scale


def ternarisation_error(weight: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Relative squared error of ternarising each output channel under its scale, (cout,)."""
    codes, scale = ternary(weight.detach(), log_scale)
    flat = weight.detach().reshape(weight.shape[0], -1)
    approx = codes.reshape(flat.shape) * scale[:, None]
    return ((flat - approx) ** 2).sum(dim=1) / (flat ** 2).sum(dim=1).clamp(min=1e-30)


def analog_channels(weight: torch.Tensor, n_analog: int,
                    log_scale: torch.Tensor) -> torch.Tensor:
    """Boolean mask (cout,): the ``n_analog`` channels with the smallest ternarisation error
    under their scales e^log_scale."""
    order = torch.argsort(ternarisation_error(weight, log_scale).cpu(), stable=True)
    mask = torch.zeros(weight.shape[0], dtype=torch.bool)
    mask[order[:n_analog]] = True
    return mask


def quantizer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every activation clip and weight scale of ``model``, each once (a shared quantiser is
    one): ODiMO's ``q_params``, trained by their own optimiser (search_r20.py:339-357)."""
    found: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, ActivationQuantizer):
            found.setdefault(id(module.clip), module.clip)
        elif isinstance(module, DianaLayer):
            for param in (module.ternary_log_scale, module.digital_scale):
                found.setdefault(id(param), param)
    return list(found.values())


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(the other parameters, ``quantizer_parameters``) of ``model``."""
    quantizer = quantizer_parameters(model)
    ids = {id(p) for p in quantizer}
    return [p for p in model.parameters() if id(p) not in ids], quantizer


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
    """One stored tensor as read back in the current forward pass (its corrupted codes
    times their step), shared by the layers that read it (plain state, not a module:
    nothing of it is saved)."""

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


def activation_scale_factor(clip: torch.Tensor) -> torch.Tensor:
    """sf = 2^floor(log2(127 / clip)), codes per unit of activation (qm2:195-197), of a clip
    of any shape (one per stacked replica: ``networks.stacked``); no gradient."""
    clip = clip.detach().clamp(min=torch.finfo(clip.dtype).tiny)
    return torch.exp2(torch.floor(torch.log2(ACTIVATION_LEVELS / clip)))


def clip_in_effect(clip: torch.Tensor) -> torch.Tensor:
    """127 / sf (qm2:198) in the forward pass, with the gradient of the clip."""
    return straight_through(clip, ACTIVATION_LEVELS / activation_scale_factor(clip))


def activation_step(clip: torch.Tensor) -> torch.Tensor:
    """The value of one code, 1 / sf (differentiable in the clip: clip / 127)."""
    return clip_in_effect(clip) / ACTIVATION_LEVELS


Corruption = Callable[[torch.Tensor], torch.Tensor]


class _Pact(torch.autograd.Function):
    """``pact``'s forward and backward in a few passes over the activations (the probe's
    time goes to passes over activation-sized tensors).

    The masks where the gradient passes are float tensors of 0 and 1 made by float
    arithmetic, and the backward multiplies by them: on the 2-core development CPU a
    ``masked_fill`` of 2 M values by a bool mask took 4.0 ms, a float multiply 0.27 ms
    (torch 2.13). The gradients have the values masking gives (a blocked element is 0 or
    -0, which no sum tells apart)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, clip: torch.Tensor, replicas: int,
                corrupt: Corruption | None) -> torch.Tensor:
        # replicas: (K, everything else), the clips (K, 1): a 2-D broadcast is the fast one
        view = x.reshape(replicas, -1) if replicas else x
        clips = clip.detach().reshape(replicas, 1) if replicas else clip.detach()
        scale = activation_scale_factor(clips)      # sf, a power of two
        effective = ACTIVATION_LEVELS / scale       # the clip in effect, 127 / sf
        positive = torch.clamp(view, min=0)
        codes = torch.floor(torch.minimum(positive, effective) * scale)
        if corrupt is not None:
            shaped = codes.reshape(replicas, x.shape[0] // replicas, *x.shape[1:]) \
                if replicas else codes
            codes = corrupt(shaped).reshape(codes.shape)
        ctx.replicas = replicas
        # 1 where x < 127 / sf, else 0: sign(relu(effective - x)), exact (a positive
        # difference of floats is never rounded to zero)
        below = torch.sign(torch.clamp(effective - view, min=0))
        inside = torch.sign(positive).mul_(below)   # 0 < x < 127 / sf: to x
        above = torch.sub(1.0, below, out=below)    # x >= 127 / sf: to the clip
        ctx.save_for_backward(inside, above)
        return (codes / scale).reshape(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        inside, above = ctx.saved_tensors
        view = grad.reshape(inside.shape)
        grad_x = (view * inside).reshape(grad.shape)
        at_clip = view * above
        if ctx.replicas:  # each replica's sum as its model alone sums it
            grad_clip = torch.stack([at_clip[k].sum() for k in range(ctx.replicas)])
        else:
            grad_clip = at_clip.sum()
        return grad_x, grad_clip, None, None


def pact(x: torch.Tensor, clip: torch.Tensor, *, replicas: int = 0,
         corrupt: Corruption | None = None) -> torch.Tensor:
    """``x`` quantised to 7 bits, ``codes / sf`` with ``codes = floor(clamp(x, 0, 127 / sf)
    sf)`` in 0..127 and ``sf = 2^floor(log2(127 / clip))`` (qm2:189-200, the clip in effect
    127 / sf as ODiMO writes it back, qm2:198). ``corrupt`` turns the codes into those read
    back from memory (no gradient). Gradients as ODiMO's
    ``LearnedClippedLinearQuantizeSTE.backward`` (qm2:205-218, PACT): ``grad`` to x where
    0 < x < 127 / sf, and to the clip the sum of ``grad`` where x >= 127 / sf.
    ``replicas`` K > 0: ``x`` is (K N, ...) and ``clip`` (K,), replica k's rows under its
    own clip, each replica's clip gradient summed as its own model sums it."""
    return _Pact.apply(x, clip, replicas, corrupt)


class ActivationQuantizer(nn.Module):
    """7-bit unsigned PACT with a learned clip and a power-of-two scale (ODiMO's
    ``LearnedClippedLinearQuantization`` with ``round_pow2``, qm2:189-241)."""

    def __init__(self) -> None:
        super().__init__()
        self.clip = nn.Parameter(torch.tensor(1.0))

    def scale_factor(self) -> torch.Tensor:
        return activation_scale_factor(self.clip)

    def step(self) -> torch.Tensor:
        """The value of one code, 1 / sf, differentiable in the clip (a bias's step)."""
        return activation_step(self.clip)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes 0..127 (as float) that ``forward`` scales; no gradient."""
        return self(x) * self.scale_factor()

    def forward(self, x: torch.Tensor, corrupt: Corruption | None = None) -> torch.Tensor:
        return pact(x, self.clip, corrupt=corrupt)


def inject_weight_codes(errors: TensorErrors, digital: torch.Tensor, ternary_codes: torch.Tensor,
                        analog: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's 8-bit and ternary weight codes (same shape, (cout, ...)) as read back
    from DRAM under ``errors.weight_ber``: the digital channels' int8 bytes and the analog
    channels' packed 2-bit codes, each channel group one stored tensor, drawn from
    ``errors.rng`` (digital first); weight codes outside the layer's error-free range are
    zeroed (EDEN's correction)."""
    kw = dict(model=errors.model, seed=errors.rng, row_bytes=errors.row_bytes,
              params=errors.params)
    low, high = float(digital.min()), float(digital.max())  # profiled, error-free
    digital_rows = digital[~analog]
    if digital_rows.numel():
        hit = fi.inject_int8(digital_rows.to(torch.int8).cpu(), errors.weight_ber, **kw)
        digital = digital.clone()
        digital[~analog] = fi.correct_implausible(hit.float(), low, high).to(digital.device)
    analog_rows = ternary_codes[analog]
    if analog_rows.numel():
        ternary_codes = ternary_codes.clone()
        ternary_codes[analog] = fi.inject_ternary(analog_rows.to(torch.int8),
                                                  errors.weight_ber, **kw).float()
    return digital, ternary_codes


def corrupted_activation_codes(codes: torch.Tensor, ber: float,
                               errors: TensorErrors) -> torch.Tensor:
    """7-bit activation codes (float, any shape: one stored tensor) as read back from DRAM
    at ``ber``, drawn from ``errors.rng``; codes above 127 are zeroed (EDEN's correction).
    No gradient."""
    stored = codes.detach().to(torch.uint8).cpu()
    hit = fi.inject_activations(stored, ber, model=errors.model, seed=errors.rng,
                                row_bytes=errors.row_bytes, params=errors.params)
    return fi.correct_implausible(hit.float(), 0, ACTIVATION_LEVELS).to(codes.device)


WeightInjection = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def quantized_weights(weight: torch.Tensor, ternary_scale: torch.Tensor,
                      digital_scale: torch.Tensor, inject: WeightInjection | None = None,
                      spread: Spread | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ternary, 8-bit) fake-quantised ``weight`` with ODiMO's gradients, under scales that
    broadcast against it (e^s per output channel, S per layer); ``inject`` turns the
    (8-bit, ternary) codes into the codes read back from DRAM, ``spread`` broadcasts the
    scales where they meet the weights (``Spread``)."""
    ternary_codes = _codes(weight / ternary_scale, TERNARY_LEVELS)
    digital_codes = _codes(weight / digital_scale, DIGITAL_LEVELS)
    if inject is not None:
        digital_codes, ternary_codes = inject(digital_codes, ternary_codes)
    return (_fake_quantized(weight, ternary_scale, ternary_codes, TERNARY_LEVELS, spread),
            _fake_quantized(weight, digital_scale, digital_codes, DIGITAL_LEVELS, spread))


def quantized_biases(bias: torch.Tensor, ternary_step: torch.Tensor, digital_step: torch.Tensor,
                     activation_step: torch.Tensor, spread: Spread | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(analog, digital) 16-bit biases, one code worth (weight step) x (activation step)
    (qm2:321-342); the steps broadcast against ``bias`` (by ``spread`` where given)."""
    spreading = spread or as_is

    def quantized(step: torch.Tensor) -> torch.Tensor:
        full_scale = step * spreading(activation_step, step) * BIAS_LEVELS
        return _fake_quantized(bias, full_scale, _codes(bias / full_scale, BIAS_LEVELS),
                               BIAS_LEVELS, spread)
    return quantized(ternary_step), quantized(digital_step)


class DianaLayer(nn.Module):
    """A conv or linear layer as DIANA runs it: split digital / analog output channels."""

    analog: torch.Tensor  # bool buffer, one entry per output channel (True: analog)

    def __init__(self, layer: nn.Conv2d | nn.Linear, *, quantize_input: bool) -> None:
        super().__init__()
        self.layer = layer
        self.quantize_input = quantize_input
        self.input_quantizer = ActivationQuantizer()
        weight = layer.weight.detach()
        cout = weight.shape[0]
        self.register_buffer("analog", torch.zeros(cout, dtype=torch.bool))
        # learned weight scales, ODiMO's initial values (module docstring)
        self.ternary_log_scale = nn.Parameter(torch.full(
            (cout,), initial_ternary_log_scale(cout, _kernel_area(weight)),
            dtype=weight.dtype, device=weight.device))
        self.digital_scale = nn.Parameter(torch.tensor(
            initial_digital_scale(weight), dtype=weight.dtype, device=weight.device))
        self.errors: TensorErrors | None = None
        self._frozen_weight: torch.Tensor | None = None
        self.stored_copy = StoredCopy()  # shared with the other readers of the same input
        # ODiMO's search: per output channel, the probability of the analog array; the
        # weight is then the mix of the two quantised weights (None: the ``analog`` split)
        self.analog_probability: torch.Tensor | None = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any) -> None:
        """A state dict written before the weight scales existed gets them by ODiMO's initial
        rules from the weights it holds (the module docstring)."""
        weight = state_dict.get(prefix + "layer.weight")
        if isinstance(weight, torch.Tensor):
            cout = weight.shape[0]
            state_dict.setdefault(prefix + "ternary_log_scale", torch.full(
                (cout,), initial_ternary_log_scale(cout, _kernel_area(weight)),
                dtype=weight.dtype))
            state_dict.setdefault(prefix + "digital_scale", torch.tensor(
                initial_digital_scale(weight), dtype=weight.dtype))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_errors(self, errors: TensorErrors | None) -> None:
        self.errors = errors
        self._frozen_weight = None

    def freeze_weight_errors(self) -> None:
        """Draw the weight errors once and reuse them (one mask per evaluation seed)."""
        self._frozen_weight = self.quantized_weight().detach()

    def analog_channels(self, n_analog: int) -> torch.Tensor:
        """The ``n_analog`` least-ternarisation-error channels under this layer's scales."""
        return analog_channels(self.layer.weight, n_analog, self.ternary_log_scale)

    def _per_channel(self) -> tuple[int, ...]:
        return (-1,) + (1,) * (self.layer.weight.dim() - 1)

    def _weight_steps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The value of one code of the ternary (per channel, (cout,)) and 8-bit (per layer)
        weights, differentiable in the scales."""
        return (torch.exp(self.ternary_log_scale) / TERNARY_LEVELS,
                power_of_two_scale(self.digital_scale) / DIGITAL_LEVELS)

    def quantized_weight(self) -> torch.Tensor:
        """Weights as the accelerators see them (errors included), with ODiMO's gradients."""
        per_channel = self._per_channel()
        errors = self.errors
        inject = None
        if errors is not None and errors.weight_ber > 0:
            def inject(digital: torch.Tensor, ternary_codes: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
                return inject_weight_codes(errors, digital, ternary_codes, self.analog)
        analog_weight, digital_weight = quantized_weights(
            self.layer.weight, torch.exp(self.ternary_log_scale).reshape(per_channel),
            power_of_two_scale(self.digital_scale), inject)
        if self.analog_probability is not None:  # ODiMO: sum_i softmax(alpha / tau)_i Q_i(W)
            share = self.analog_probability.reshape(per_channel)
            return share * analog_weight + (1 - share) * digital_weight
        return torch.where(self.analog.reshape(per_channel), analog_weight, digital_weight)

    def quantized_bias(self, activation_step: torch.Tensor | None) -> torch.Tensor | None:
        """16-bit bias, one code worth (weight step) x (activation step) per channel
        (qm2:321-342); float where the layer has no input quantiser."""
        bias = self.layer.bias
        if bias is None or activation_step is None:
            return bias
        analog_bias, digital_bias = quantized_biases(bias, *self._weight_steps(),
                                                     activation_step)
        if self.analog_probability is not None:
            share = self.analog_probability
            return share * analog_bias + (1 - share) * digital_bias
        return torch.where(self.analog, analog_bias, digital_bias)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_input:
            return x
        quantizer = self.input_quantizer
        errors = self.errors
        ber = errors.activation_ber if errors is not None else 0.0
        known = self.stored_copy.get(x, ber) if ber > 0 else None
        if known is not None:  # another reader of this tensor drew its errors already
            return known
        if errors is None or ber == 0:
            return quantizer(x)
        stored = quantizer(x, lambda codes: corrupted_activation_codes(codes, ber, errors))
        self.stored_copy.keep(x, ber, stored)
        return stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantized_input(x)
        weight = self._frozen_weight
        if weight is None:
            weight = self.quantized_weight()
        bias = self.quantized_bias(self.input_quantizer.step() if self.quantize_input
                                   else None)
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, bias)
        return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation,
                        layer.groups)
