"""A network as DIANA runs it: BN folded, every costed layer a ``DianaLayer``.

``DianaModel`` keeps the layer names of the float model's layer table, so a mapping
(``n_analog`` per layer, in table order) and per-layer bit error rates apply directly.
"""
from __future__ import annotations

import copy
from typing import Sequence, cast

import numpy as np
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from hw_models.error_models import ErrorModelParams
from networks.quantize import DianaLayer, TensorErrors

CALIBRATION_QUANTILE = 0.999  # initial activation clip: ignore the rarest outliers


class DianaModel(nn.Module):
    """Wraps a BN-folded network whose conv / linear layers are ``DianaLayer``s."""

    def __init__(self, net: nn.Module, layer_names: Sequence[str]) -> None:
        super().__init__()
        self.net = net
        self.layer_names = tuple(layer_names)

    def layers(self) -> list[DianaLayer]:
        return [cast(DianaLayer, self.net.get_submodule(name)) for name in self.layer_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.net(x)
        finally:  # the corrupted copies of this pass are not kept past it
            for layer in self.layers():
                layer.stored_copy.clear()

    def train(self, mode: bool = True) -> "DianaModel":
        super().train(mode)
        for module in self.modules():  # BN that could not be folded keeps its statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def set_split(self, n_analog: Sequence[int] | np.ndarray,
                  channels: Sequence[Sequence[int] | None] | None = None) -> None:
        """Put ``n_analog[i]`` output channels of layer i on the analog array (table order):
        those named in ``channels[i]`` when given, else the least-ternarisation-error
        ones under the layer's ternary scales (``DianaLayer.analog_channels``)."""
        named = channels if channels is not None else [None] * len(self.layer_names)
        for layer, count, chosen in zip(self.layers(), n_analog, named, strict=True):
            if chosen is None:
                mask = layer.analog_channels(int(count))
            else:
                mask = torch.zeros(layer.layer.weight.shape[0], dtype=torch.bool)
                mask[list(chosen)] = True
            layer.analog = mask.to(layer.analog.device)
            layer.set_errors(layer.errors)  # drops a frozen weight of the old split

    def set_errors(self, weight_ber: Sequence[float], activation_ber: Sequence[float], *,
                   model: int, params: ErrorModelParams, row_bytes: int, seed: int) -> None:
        """Per-layer bit error rates of the stored weights and input activations.

        Each layer draws from its own generator seeded by (seed, layer index): every forward
        pass gets fresh masks, and the same seed replays the same masks.
        """
        for index, (layer, w_ber, a_ber) in enumerate(
                zip(self.layers(), weight_ber, activation_ber, strict=True)):
            layer.set_errors(TensorErrors(
                weight_ber=float(w_ber), activation_ber=float(a_ber), model=model,
                params=params, row_bytes=row_bytes,
                rng=np.random.default_rng([seed, index])))

    def clear_errors(self) -> None:
        for layer in self.layers():
            layer.set_errors(None)


def to_diana(float_model: nn.Module, layer_names: Sequence[str]) -> DianaModel:
    """Fold BN and wrap the named layers; the first layer keeps its raw input. Layers that
    read the same tensor share its quantiser and its stored copy (``shared_inputs``)."""
    net = _fold_batchnorm(float_model)
    for index, name in enumerate(layer_names):
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, DianaLayer(getattr(parent, child), quantize_input=index > 0))
    for group in shared_inputs(net, layer_names):
        first = cast(DianaLayer, net.get_submodule(group[0]))
        for name in group[1:]:
            other = cast(DianaLayer, net.get_submodule(name))
            other.input_quantizer = first.input_quantizer
            other.stored_copy = first.stored_copy
    return DianaModel(net, layer_names)


def shared_inputs(net: nn.Module, layer_names: Sequence[str]) -> list[list[str]]:
    """Groups (two or more, in table order) of the named layers that read one tensor, from
    the torch.fx graph of the folded network; none for a network fx could not trace (its
    readers then quantise and corrupt their inputs each on their own)."""
    graph = getattr(net, "graph", None)
    if graph is None:
        return []
    readers: dict[object, list[str]] = {}
    wanted = set(layer_names)
    for node in graph.nodes:
        if node.op == "call_module" and node.target in wanted and node.args:
            readers.setdefault(node.args[0], []).append(str(node.target))
    order = {name: i for i, name in enumerate(layer_names)}
    return [sorted(group, key=order.__getitem__) for group in readers.values()
            if len(group) > 1]


def _fold_batchnorm(float_model: nn.Module) -> nn.Module:
    """conv -> BN pairs folded by torch.fx; a model fx cannot trace keeps frozen BN layers."""
    was_training = float_model.training
    float_model.eval()
    try:
        return fuse(float_model)  # a folded deep copy
    except Exception:  # not traceable by torch.fx: keep BN, frozen by DianaModel.train
        return copy.deepcopy(float_model)
    finally:
        float_model.train(was_training)


@torch.no_grad()
def calibrate(model: DianaModel, images: torch.Tensor) -> None:
    """Set every activation clip to a high quantile of the layer's input on ``images`` (ODiMO
    starts every clip at 6 instead, quant_module_pow2.py:531; the forward pass rounds the
    clip up to 127 / 2^k either way: ``ActivationQuantizer``)."""
    observed: dict[str, torch.Tensor] = {}

    def observe(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            values = inputs[0].detach().flatten()
            observed[name] = values[values > 0][:1_000_000]
        return hook

    layers = dict(zip(model.layer_names, model.layers()))
    hooks = [layer.register_forward_pre_hook(observe(name)) for name, layer in layers.items()]
    try:
        model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
    for name, layer in layers.items():
        values = observed.get(name)
        if values is not None and values.numel():
            clip = torch.quantile(values.float(), CALIBRATION_QUANTILE)
            layer.input_quantizer.clip.fill_(max(float(clip), 1e-3))
