"""A network as DIANA runs it: BN folded, every costed layer a ``DianaLayer``.

``DianaModel`` keeps the layer names of the float model's layer table, so a mapping
(``n_analog`` per layer, in table order) and per-layer bit error rates apply directly.
"""
from __future__ import annotations

import copy
import operator
from typing import Sequence, cast

import numpy as np
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from hw_models.error_models import ErrorModelParams
from networks.quant_add import QuantAdd, calibrated_clip
from networks.quantize import DianaLayer, TensorErrors


class DianaModel(nn.Module):
    """Wraps a BN-folded network whose conv / linear layers are ``DianaLayer``s."""

    def __init__(self, net: nn.Module, layer_names: Sequence[str],
                 adds: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.net = net
        self.layer_names = tuple(layer_names)
        # (QuantAdd module name, name of the layer whose output is its main operand)
        self.add_names = tuple(adds)

    def layers(self) -> list[DianaLayer]:
        return [cast(DianaLayer, self.net.get_submodule(name)) for name in self.layer_names]

    def adds(self) -> list[QuantAdd]:
        """The quantised residual adds, in graph order."""
        return [cast(QuantAdd, self.net.get_submodule(name)) for name, _ in self.add_names]

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
                   model: int, params: ErrorModelParams, row_bytes: int, seed: int,
                   shortcut_ber: Sequence[float] | None = None) -> None:
        """Per-layer bit error rates of the stored weights and input activations, and
        (``shortcut_ber``, none when omitted) of the stored shortcut tensor that a residual
        add fused into the layer's output stage reads. An identity block's shortcut is the
        block input: it gets the errors its first reader draws, whatever ``shortcut_ber``
        says there (one tensor, one stored copy).

        Each layer draws from its own generator seeded by (seed, layer index), each add from
        one seeded by (seed, n_layers + its layer's index): every forward pass gets fresh
        masks, and the same seed replays the same masks.
        """
        layers, adds = tensor_errors(self.layer_names, self.add_names, weight_ber,
                                     activation_ber, error_model=model, params=params,
                                     row_bytes=row_bytes, seed=seed, shortcut_ber=shortcut_ber)
        for layer, errors in zip(self.layers(), layers):
            layer.set_errors(errors)
        for add, errors in zip(self.adds(), adds):
            add.set_errors(errors)

    def clear_errors(self) -> None:
        for layer in self.layers():
            layer.set_errors(None)
        for add in self.adds():
            add.set_errors(None)


def tensor_errors(layer_names: Sequence[str], add_names: Sequence[tuple[str, str]],
                  weight_ber: Sequence[float], activation_ber: Sequence[float], *,
                  error_model: int, params: ErrorModelParams, row_bytes: int, seed: int,
                  shortcut_ber: Sequence[float] | None = None
                  ) -> tuple[list[TensorErrors], list[TensorErrors]]:
    """The errors ``DianaModel.set_errors`` gives its layers and its adds (in their order):
    layer i draws from a generator seeded by (seed, i), the add fused into layer i's output
    stage from one seeded by (seed, n_layers + i)."""
    n_layers = len(layer_names)
    shortcut = [0.0] * n_layers if shortcut_ber is None else list(shortcut_ber)
    if len(shortcut) != n_layers:
        raise ValueError(f"shortcut_ber has {len(shortcut)} entries for {n_layers} layers")
    layers = [TensorErrors(weight_ber=float(w_ber), activation_ber=float(a_ber),
                           model=error_model, params=params, row_bytes=row_bytes,
                           rng=np.random.default_rng([seed, index]))
              for index, (w_ber, a_ber) in enumerate(zip(weight_ber, activation_ber,
                                                         strict=True))]
    if len(layers) != n_layers:
        raise ValueError(f"{len(layers)} bit error rates for {n_layers} layers")
    adds = []
    for _, layer_name in add_names:
        index = list(layer_names).index(layer_name)
        adds.append(TensorErrors(weight_ber=0.0, activation_ber=float(shortcut[index]),
                                 model=error_model, params=params, row_bytes=row_bytes,
                                 rng=np.random.default_rng([seed, n_layers + index])))
    return layers, adds


def to_diana(float_model: nn.Module, layer_names: Sequence[str]) -> DianaModel:
    """Fold BN and wrap the named layers; the first layer keeps its raw input. Layers that
    read the same tensor share its quantiser and its stored copy (``shared_inputs``); the
    residual adds become ``QuantAdd``s (``quantize_adds``)."""
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
    return DianaModel(net, layer_names, quantize_adds(net, layer_names))


_ADD_TARGETS = (operator.add, operator.iadd, torch.add)


def quantize_adds(net: nn.Module, layer_names: Sequence[str]) -> list[tuple[str, str]]:
    """Replace, in the torch.fx graph of the folded network, every residual add by a
    ``QuantAdd`` module (ODiMO's quantised add); returns (add module name, main layer name)
    pairs in graph order.

    A residual add is an add of two tensors whose first operand is a named layer's output
    (the main path, conv2) and whose second (the shortcut; ``nn.Identity`` modules looked
    through) is either another named layer's output (a downsample block's shortcut conv:
    the add gets a quantiser of its own) or a tensor some named layer reads (an identity
    block's input: the add shares its first reader's quantiser and stored copy). The graph
    is rewritten rather than the blocks because folding BN already made the network an fx
    graph, and it works for any traced network, not only the zoo's ``BasicBlock``. Other
    adds, and networks fx could not trace, are left as they are.
    """
    graph = getattr(net, "graph", None)
    if graph is None:
        return []
    wanted = set(layer_names)
    order = {name: i for i, name in enumerate(layer_names)}
    readers: dict[object, list[str]] = {}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in wanted and node.args:
            readers.setdefault(node.args[0], []).append(str(node.target))

    def layer_output(node: object) -> str | None:
        if getattr(node, "op", None) == "call_module" and getattr(node, "target", None) in wanted:
            return str(getattr(node, "target"))
        return None

    def look_through_identity(node: object) -> object:
        while (getattr(node, "op", None) == "call_module"
               and isinstance(net.get_submodule(str(getattr(node, "target"))), nn.Identity)):
            node = getattr(node, "args")[0]
        return node

    adds: list[tuple[str, str]] = []
    for node in list(graph.nodes):
        if (node.op != "call_function" or node.target not in _ADD_TARGETS
                or len(node.args) != 2 or node.kwargs):
            continue
        main_layer = layer_output(node.args[0])
        shortcut = look_through_identity(node.args[1])
        if main_layer is None or not hasattr(shortcut, "op"):
            continue
        if layer_output(shortcut) is not None:
            add = QuantAdd()
        elif shortcut in readers:
            reader = cast(DianaLayer, net.get_submodule(
                min(readers[shortcut], key=order.__getitem__)))
            add = QuantAdd.identity(reader) if reader.quantize_input else QuantAdd()
        else:
            continue
        name = f"quant_{node.name}"
        cast(torch.fx.GraphModule, net).add_submodule(name, add)
        with graph.inserting_before(node):
            quantised = graph.call_module(name, (node.args[0], shortcut))
        node.replace_all_uses_with(quantised)
        graph.erase_node(node)
        adds.append((name, main_layer))
    if adds:
        graph.lint()
        cast(torch.fx.GraphModule, net).recompile()
    return adds


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
    """Set every activation clip to a high quantile of the layer's input on ``images``; an
    add with a quantiser of its own, to that of both its operands together (ODiMO starts
    every clip at 6 instead, quant_module_pow2.py:531; the forward pass rounds the clip up to
    127 / 2^k either way: ``ActivationQuantizer``)."""
    observed: dict[str, torch.Tensor] = {}

    def observe(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            observed[name] = torch.cat([x.detach().flatten() for x in inputs[:2]
                                        if isinstance(x, torch.Tensor)])
        return hook

    quantizers = {name: layer.input_quantizer
                  for name, layer in zip(model.layer_names, model.layers())}
    modules: dict[str, nn.Module] = dict(zip(model.layer_names, model.layers()))
    for (name, _), add in zip(model.add_names, model.adds()):
        if add.reader is None:  # an identity block's add has its reader's clip
            quantizers[name] = add.quantizer
            modules[name] = add
    hooks = [module.register_forward_pre_hook(observe(name))
             for name, module in modules.items()]
    try:
        model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
    for name, quantizer in quantizers.items():
        values = observed.get(name)
        if values is not None and (values > 0).any():
            quantizer.clip.fill_(calibrated_clip(values))
