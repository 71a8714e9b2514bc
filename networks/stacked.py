"""K copies of one DIANA model run as one: the batched probe's network (torch).

``StackedModel(models)`` takes K ``DianaModel``s of one network (the same layers and adds,
each with its own weights, quantiser parameters, analog split and bit errors: a *replica*)
and runs them together. Their inputs are stacked along the batch axis, replica k's batch in
rows ``[k N, (k + 1) N)``; the output has the same layout. Every parameter gets a leading
replica axis, so one optimiser step updates every replica, and Adam and SGD, being
elementwise, update each exactly as they would update it alone.

What is shared is the work, not the numbers: every quantiser's and every elementwise
operation runs once over all replicas (broadcasting each replica's scales and clips), which
is where a single small candidate spends most of its time; each replica's convolution runs
on its own rows with its own weights (a loop of K convolutions: on the 2-core development CPU
never far behind one grouped convolution and 2-3x ahead of it on the larger feature maps,
``bench/probe_throughput.py --conv-layouts``), and each replica draws its bit errors from
its own generators, in the order a single model draws them. Where a replica's clip or scale
meets a tensor, its gradient is summed replica by replica as autograd sums it for one model
(``spread``, ``quantize.pact``). A replica therefore computes what its model computes
alone, bit for bit (``tests/networks/test_stacked.py``).

Only networks whose every parameter belongs to a ``DianaLayer`` or a quantised add can be
stacked (``stackable``): a network torch.fx could not trace keeps unfolded BatchNorm layers,
whose affine parameters would be shared; such a network is probed one replica at a time.
"""
from __future__ import annotations

import copy
from typing import Sequence, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hw_models.error_models import ErrorModelParams
from networks import fault_injection as fi
from networks.diana_model import DianaModel, tensor_errors
from networks.quant_add import QuantAdd
from networks.quantize import (
    ACTIVATION_LEVELS,
    DIGITAL_LEVELS,
    TERNARY_LEVELS,
    DianaLayer,
    TensorErrors,
    activation_step,
    pact,
    power_of_two_scale,
    quantized_biases,
    quantized_weights,
)


def stackable(model: DianaModel) -> bool:
    """Whether ``model`` can be a replica of a ``StackedModel``: every parameter belongs to
    a ``DianaLayer`` or a ``QuantAdd``, no add still waits for its calibration and no layer
    is in ODiMO's relaxed (search) mode."""
    owned: set[int] = set()
    for module in model.modules():
        if isinstance(module, (DianaLayer, QuantAdd)):
            owned.update(id(p) for p in module.parameters())
            if isinstance(module, QuantAdd) and module.calibrate_on_first_pass:
                return False
            if isinstance(module, DianaLayer) and module.analog_probability is not None:
                return False
    return all(id(p) in owned for p in model.parameters())


@torch.no_grad()
def activation_values(model: DianaModel, input_shape: Sequence[int]) -> int:
    """Values of every layer's input and output for one image of ``input_shape``: what one
    replica holds per image of its batch, times the bytes each value costs."""
    count = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal count
        count += int(inputs[0].numel()) + int(output.numel())
    handles = [layer.register_forward_hook(hook) for layer in model.layers()]
    try:
        model.eval()(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return count


def _stacked_parameter(tensors: Sequence[torch.Tensor]) -> nn.Parameter:
    """The replicas' tensors stacked along a new first axis, a parameter that learns where
    theirs do (a BN-folded bias, for one, does not: torch.fx's ``fuse`` makes it frozen)."""
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone(),
                        requires_grad=tensors[0].requires_grad)


def _replica_view(x: torch.Tensor, replicas: int) -> torch.Tensor:
    """``x`` (K N, ...) as (K, N, ...), a view."""
    return x.reshape(replicas, x.shape[0] // replicas, *x.shape[1:])


def _per_replica(values: torch.Tensor, dims: int) -> torch.Tensor:
    """(K,) or (K, C) ``values`` shaped to broadcast against a (K, ...) tensor of ``dims``
    dimensions (one value per replica, or per replica and channel)."""
    return values.reshape(*values.shape, *(1,) * (dims - values.dim()))


class _Spread(torch.autograd.Function):
    """``small`` (K, ...) expanded to ``shape``; its gradient is each replica's gradient
    summed to the replica's own shape, one replica at a time, so that the sum runs over the
    same terms in the same order as in the replica's model alone (where autograd sums a
    broadcast operand's gradient to its shape)."""

    @staticmethod
    def forward(ctx, small: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        ctx.small_shape = small.shape
        return small.expand(shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        own = ctx.small_shape[1:]
        return torch.stack([grad[k].sum_to_size(own) for k in range(grad.shape[0])]), None


def spread(small: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The stacked models' ``quantize.Spread``: ``small`` (K, ...) broadcast to ``like``'s
    shape (K, ...), with each replica's gradient summed as its own model sums it."""
    if small.shape == like.shape:
        return small
    shaped = _per_replica(small, like.dim())
    if not torch.is_grad_enabled() or not shaped.requires_grad:
        return shaped
    return cast(torch.Tensor, _Spread.apply(shaped, like.shape))


class StackedActivationQuantizer(nn.Module):
    """K ``ActivationQuantizer``s: one learned clip per replica."""

    def __init__(self, clips: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.clip = _stacked_parameter(clips)

    @property
    def replicas(self) -> int:
        return self.clip.shape[0]

    def forward(self, x: torch.Tensor, bers: Sequence[float] = (),
                errors: Sequence[TensorErrors | None] = ()) -> torch.Tensor:
        """``x`` (K N, ...) quantised, each replica's rows under its own clip (``pact``)
        and, where ``bers`` gives it a BER, read back from memory with its ``errors``."""
        corrupt = None
        if any(b > 0 for b in bers):
            def corrupt(codes: torch.Tensor) -> torch.Tensor:
                return _corrupted(codes, bers, errors)
        return pact(x, self.clip, replicas=self.replicas, corrupt=corrupt)

    def step(self) -> torch.Tensor:
        """Each replica's code value, (K,)."""
        return activation_step(self.clip)


class StackedStoredCopy:
    """One stored tensor of every replica as read back in the current pass."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.source: torch.Tensor | None = None
        self.bers: tuple[float, ...] = ()
        self.values: torch.Tensor | None = None

    def get(self, x: torch.Tensor, bers: tuple[float, ...]) -> torch.Tensor | None:
        return self.values if self.source is x and self.bers == bers else None

    def keep(self, x: torch.Tensor, bers: tuple[float, ...], values: torch.Tensor) -> None:
        self.source, self.bers, self.values = x, bers, values


def _corrupted(codes: torch.Tensor, bers: Sequence[float],
               errors: Sequence[TensorErrors | None]) -> torch.Tensor:
    """Activation codes (K, N, ...) as each replica reads them back from DRAM: replica k's
    rows are one stored tensor whose flips are drawn from its own generator, as
    ``corrupted_activation_codes`` draws them for its model alone; the bytes of all
    replicas are converted, flipped and corrected at once (a replica at BER 0 keeps its
    codes)."""
    stored = codes.detach().to(torch.uint8).cpu().reshape(len(bers), -1).clone()
    data = stored.numpy()  # shares memory with ``stored``
    replica_bits = 8 * data.shape[1]
    flips = []
    for k, (ber, replica_errors) in enumerate(zip(bers, errors)):
        if ber > 0 and replica_errors is not None:
            flips.append(k * replica_bits + fi.flip_positions(
                replica_bits, ber, model=replica_errors.model, rng=replica_errors.rng,
                row_bits=8 * replica_errors.row_bytes, params=replica_errors.params,
                stored=data[k]))
    if flips:
        fi.flip_bits(data.reshape(-1), np.concatenate(flips))
    corrected = fi.correct_implausible(stored.float(), 0, ACTIVATION_LEVELS)
    return corrected.reshape(codes.shape).to(codes.device)


def _injected_weights(digital: torch.Tensor, ternary_codes: torch.Tensor, analog: torch.Tensor,
                      errors: Sequence[TensorErrors], hit: Sequence[int]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``inject_weight_codes`` of replicas ``hit`` (with ``errors``), their bytes flipped
    at once: each replica's digital rows and its packed analog rows are one stored tensor
    each, its flips drawn from its own generator, digital first, as its model alone draws
    them; codes outside the replica's error-free 8-bit range are zeroed."""
    index = torch.tensor(list(hit), device=digital.device)
    digital_hit, ternary_hit, analog_hit = digital[index], ternary_codes[index], analog[index]
    low = digital_hit.reshape(len(hit), -1).amin(dim=1)  # profiled, error-free
    high = digital_hit.reshape(len(hit), -1).amax(dim=1)
    row_values = int(np.prod(digital.shape[2:])) if digital.dim() > 2 else 1
    # replica by replica, channel by channel: each replica's rows one stored tensor
    digital_bytes = digital_hit[~analog_hit].to(torch.int8).cpu().contiguous().view(torch.uint8)
    digital_data = digital_bytes.numpy().reshape(-1)
    analog_counts = analog_hit.sum(dim=1).tolist()
    digital_counts = [analog_hit.shape[1] - n for n in analog_counts]
    ternary_counts = [n * row_values for n in analog_counts]
    packed, packed_counts = fi.ternary_parts_to_storage(ternary_hit[analog_hit], ternary_counts)
    packed_data = packed.numpy()
    digital_flips, packed_flips = [], []
    digital_start = packed_start = 0
    for i, replica_errors in enumerate(errors):
        def flips(stored: np.ndarray, e: TensorErrors = replica_errors) -> np.ndarray:
            return fi.flip_positions(8 * stored.size, e.weight_ber, model=e.model, rng=e.rng,
                                     row_bits=8 * e.row_bytes, params=e.params,
                                     stored=stored)
        n_digital = digital_counts[i] * row_values
        if n_digital:
            digital_flips.append(8 * digital_start + flips(
                digital_data[digital_start:digital_start + n_digital]))
        n_packed = packed_counts[i]
        if n_packed:
            packed_flips.append(8 * packed_start + flips(
                packed_data[packed_start:packed_start + n_packed]))
        digital_start += n_digital
        packed_start += n_packed
    digital, ternary_codes = digital.clone(), ternary_codes.clone()
    if digital_flips:
        fi.flip_bits(digital_data, np.concatenate(digital_flips))
        values = digital_bytes.view(torch.int8).float().to(digital.device)
        per_value = torch.repeat_interleave(torch.arange(len(hit), device=digital.device),
                                            torch.tensor(digital_counts,
                                                         device=digital.device) * row_values)
        flat = values.reshape(-1)
        plausible = (flat >= low[per_value]) & (flat <= high[per_value])
        corrected = torch.where(plausible, flat, torch.zeros_like(flat)).reshape(values.shape)
        replaced = digital_hit.clone()
        replaced[~analog_hit] = corrected
        digital[index] = replaced
    if packed_flips:
        fi.flip_bits(packed_data, np.concatenate(packed_flips))
        codes = fi.storage_to_ternary_parts(packed, ternary_counts)
        replaced = ternary_hit.clone()
        replaced[analog_hit] = codes.float().reshape(-1, *ternary_hit.shape[2:]).to(
            ternary_codes.device)
        ternary_codes[index] = replaced
    return digital, ternary_codes


class StackedDianaLayer(nn.Module):
    """K ``DianaLayer``s of the same shape; input and output (K N, ...)."""

    analog: torch.Tensor  # (K, cout) bool

    def __init__(self, layers: Sequence[DianaLayer], input_quantizer: StackedActivationQuantizer,
                 stored_copy: StackedStoredCopy) -> None:
        super().__init__()
        first = layers[0]
        self.kind = "linear" if isinstance(first.layer, nn.Linear) else "conv"
        conv = first.layer
        self.conv_args = ((conv.stride, conv.padding, conv.dilation, conv.groups)
                          if isinstance(conv, nn.Conv2d) else ())
        self.quantize_input = first.quantize_input
        self.weight = _stacked_parameter([m.layer.weight for m in layers])
        self.bias = (None if first.layer.bias is None else _stacked_parameter(
            [cast(torch.Tensor, m.layer.bias) for m in layers]))
        self.ternary_log_scale = _stacked_parameter([m.ternary_log_scale for m in layers])
        self.digital_scale = _stacked_parameter([m.digital_scale for m in layers])
        self.register_buffer("analog", torch.stack([m.analog for m in layers]).clone())
        self.input_quantizer = input_quantizer
        self.stored_copy = stored_copy
        self.errors: tuple[TensorErrors | None, ...] = (None,) * len(layers)
        self._frozen_weight: torch.Tensor | None = None

    @property
    def replicas(self) -> int:
        return self.weight.shape[0]

    def set_errors(self, errors: Sequence[TensorErrors | None]) -> None:
        self.errors = tuple(errors)
        self._frozen_weight = None

    def freeze_weight_errors(self) -> None:
        self._frozen_weight = self.quantized_weight().detach()

    def quantized_weight(self) -> torch.Tensor:
        """(K, cout, ...) weights as each replica's accelerators see them."""
        weight = self.weight
        dims = weight.dim()
        per_channel = _per_replica(torch.exp(self.ternary_log_scale), dims)
        per_layer = _per_replica(power_of_two_scale(self.digital_scale), dims)
        hit = [k for k, e in enumerate(self.errors) if e is not None and e.weight_ber > 0]

        def inject(digital: torch.Tensor, ternary_codes: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
            return _injected_weights(digital, ternary_codes, self.analog,
                                     [cast(TensorErrors, self.errors[k]) for k in hit], hit)
        analog_weight, digital_weight = quantized_weights(weight, per_channel, per_layer,
                                                          inject if hit else None, spread)
        return torch.where(_per_replica(self.analog, dims), analog_weight, digital_weight)

    def quantized_bias(self) -> torch.Tensor | None:
        """(K, cout) biases; float where the layer has no input quantiser."""
        if self.bias is None or not self.quantize_input:
            return self.bias
        ternary_step = torch.exp(self.ternary_log_scale) / TERNARY_LEVELS
        digital_step = (power_of_two_scale(self.digital_scale) / DIGITAL_LEVELS)[:, None]
        analog_bias, digital_bias = quantized_biases(
            self.bias, ternary_step, digital_step, self.input_quantizer.step(), spread)
        return torch.where(self.analog, analog_bias, digital_bias)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_input:
            return x
        bers = tuple(e.activation_ber if e is not None else 0.0 for e in self.errors)
        stored = any(b > 0 for b in bers)
        known = self.stored_copy.get(x, bers) if stored else None
        if known is not None:
            return known
        values = self.input_quantizer(x, bers, self.errors)
        if stored:
            self.stored_copy.keep(x, bers, values)
        return values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantized_input(x)
        weight = self._frozen_weight
        if weight is None:
            weight = self.quantized_weight()
        bias = self.quantized_bias()
        # unbind, not indexing: indexing's backward writes each replica's gradient into a
        # zero tensor of all replicas (K^2 work); unbind's stacks them once
        rows = _replica_view(x, self.replicas).unbind(0)
        weights = weight.unbind(0)
        biases = [None] * self.replicas if bias is None else bias.unbind(0)
        if self.kind == "linear":
            outputs = [F.linear(r, w, b) for r, w, b in zip(rows, weights, biases)]
        else:
            outputs = [F.conv2d(r, w, b, *self.conv_args)
                       for r, w, b in zip(rows, weights, biases)]
        return torch.cat(outputs)


class StackedQuantAdd(nn.Module):
    """K ``QuantAdd``s: ``main + shortcut``, both quantised, per replica."""

    def __init__(self, quantizer: StackedActivationQuantizer,
                 reader: StackedDianaLayer | None) -> None:
        super().__init__()
        self.quantizer = quantizer
        self._reader = () if reader is None else (reader,)  # not a submodule
        self.errors: tuple[TensorErrors | None, ...] = (None,) * quantizer.replicas

    def set_errors(self, errors: Sequence[TensorErrors | None]) -> None:
        self.errors = tuple(errors)

    def shortcut_value(self, shortcut: torch.Tensor) -> torch.Tensor:
        if self._reader:
            return self._reader[0].quantized_input(shortcut)
        bers = tuple(e.activation_ber if e is not None else 0.0 for e in self.errors)
        return self.quantizer(shortcut, bers, self.errors)

    def forward(self, main: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        return self.quantizer(main) + self.shortcut_value(shortcut)


class StackedModel(nn.Module):
    """K replicas of one ``DianaModel`` (module docstring)."""

    def __init__(self, models: Sequence[DianaModel]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a stacked model needs at least one replica")
        first = models[0]
        if not all(stackable(m) for m in models):
            raise ValueError("these models cannot be stacked (see stackable)")
        if any(m.layer_names != first.layer_names or m.add_names != first.add_names
               for m in models):
            raise ValueError("stacked replicas must be the same network")
        self.replicas = len(models)
        self.layer_names = first.layer_names
        self.add_names = first.add_names
        net = copy.deepcopy(first.net)
        quantizers: dict[int, StackedActivationQuantizer] = {}
        copies: dict[int, StackedStoredCopy] = {}

        def stacked_quantizer(quantizer: nn.Module, of: list[nn.Module]) -> \
                StackedActivationQuantizer:
            if id(quantizer) not in quantizers:
                quantizers[id(quantizer)] = StackedActivationQuantizer(
                    [cast(torch.Tensor, q.clip) for q in of])
            return quantizers[id(quantizer)]

        layers: dict[str, StackedDianaLayer] = {}
        for name in self.layer_names:
            replicas = [cast(DianaLayer, m.net.get_submodule(name)) for m in models]
            own = replicas[0]
            quantizer = stacked_quantizer(own.input_quantizer,
                                          [r.input_quantizer for r in replicas])
            stored = copies.setdefault(id(own.stored_copy), StackedStoredCopy())
            layers[name] = StackedDianaLayer(replicas, quantizer, stored)
            _replace(net, name, layers[name])
        for add_name, _ in self.add_names:
            adds = [cast(QuantAdd, m.net.get_submodule(add_name)) for m in models]
            own_add = adds[0]
            reader = None
            if own_add.reader is not None:
                reader_name = next(n for n in self.layer_names
                                   if first.net.get_submodule(n) is own_add.reader)
                reader = layers[reader_name]
                quantizer = reader.input_quantizer
            else:
                quantizer = stacked_quantizer(own_add.quantizer, [a.quantizer for a in adds])
            _replace(net, add_name, StackedQuantAdd(quantizer, reader))
        self.net = net

    def layers(self) -> list[StackedDianaLayer]:
        return [cast(StackedDianaLayer, self.net.get_submodule(n)) for n in self.layer_names]

    def adds(self) -> list[StackedQuantAdd]:
        return [cast(StackedQuantAdd, self.net.get_submodule(n)) for n, _ in self.add_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.net(x)
        finally:
            for layer in self.layers():
                layer.stored_copy.clear()

    def quantizer_parameters(self) -> list[nn.Parameter]:
        """Every clip and weight scale, each once (ODiMO's ``q_params``)."""
        found: dict[int, nn.Parameter] = {}
        for module in self.modules():
            if isinstance(module, StackedActivationQuantizer):
                found.setdefault(id(module.clip), module.clip)
            elif isinstance(module, StackedDianaLayer):
                for param in (module.ternary_log_scale, module.digital_scale):
                    found.setdefault(id(param), param)
        return list(found.values())

    def split_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(weights and biases, ``quantizer_parameters``)."""
        quantizer = self.quantizer_parameters()
        ids = {id(p) for p in quantizer}
        return [p for p in self.parameters() if id(p) not in ids], quantizer

    def set_errors(self, replicas: Sequence[ReplicaErrors | None], *, error_model: int,
                   params: ErrorModelParams, row_bytes: int) -> None:
        """Each replica's bit errors, as ``DianaModel.set_errors`` sets one model's (None:
        that replica error-free)."""
        layer_errors: list[list[TensorErrors | None]] = [[] for _ in self.layer_names]
        add_errors: list[list[TensorErrors | None]] = [[] for _ in self.add_names]
        for replica in replicas:
            if replica is None:
                found: tuple[list, list] = ([None] * len(self.layer_names),
                                            [None] * len(self.add_names))
            else:
                found = tensor_errors(self.layer_names, self.add_names, replica.weight_ber,
                                      replica.activation_ber, error_model=error_model,
                                      params=params, row_bytes=row_bytes, seed=replica.seed,
                                      shortcut_ber=replica.shortcut_ber)
            for column, errors in zip(layer_errors, found[0]):
                column.append(errors)
            for column, errors in zip(add_errors, found[1]):
                column.append(errors)
        for layer, errors in zip(self.layers(), layer_errors):
            layer.set_errors(errors)
        for add, errors in zip(self.adds(), add_errors):
            add.set_errors(errors)

    def clear_errors(self) -> None:
        none = (None,) * self.replicas
        for layer in self.layers():
            layer.set_errors(none)
        for add in self.adds():
            add.set_errors(none)

    def freeze_weight_errors(self) -> None:
        for layer in self.layers():
            layer.freeze_weight_errors()


class ReplicaErrors:
    """One replica's bit error rates (per layer, table order) and the seed of its masks."""

    __slots__ = ("weight_ber", "activation_ber", "shortcut_ber", "seed")

    def __init__(self, weight_ber: Sequence[float], activation_ber: Sequence[float],
                 shortcut_ber: Sequence[float] | None, seed: int) -> None:
        self.weight_ber = weight_ber
        self.activation_ber = activation_ber
        self.shortcut_ber = shortcut_ber
        self.seed = seed


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, module)
