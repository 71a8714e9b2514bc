"""Layer-table extraction: run a torch model once and record every conv / linear layer."""
from __future__ import annotations

import operator
from typing import Any, cast

import torch
from torch import nn

from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable, kind_for


def extract_layer_table(model: nn.Module, input_shape: tuple[int, int, int], *,
                        num_classes: int | None = None) -> LayerTable:
    """Trace ``model`` on one zero input of ``input_shape`` (C, H, W) with forward hooks.

    Each call of an ``nn.Conv2d`` or ``nn.Linear`` becomes one row, in execution order; a
    module called more than once gets ``#2``, ``#3``... after its name. Layers called on the
    same input tensor (a block's first conv and its shortcut conv) share ``input_tensor``.
    A block's residual add names the stored shortcut it reads in its conv2's
    ``shortcut_tensor`` (the block input, or the shortcut conv's output).
    The model is left unchanged (eval mode is restored to what it was). With
    ``num_classes``, the output must be one score per class (training and the probe compare
    it with the labels).
    """
    records: list[dict[str, Any]] = []
    names = {module: name for name, module in model.named_modules()}
    calls: dict[str, int] = {}
    inputs_seen: list[torch.Tensor] = []  # kept alive so that identity means the same tensor

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if calls[name] > 1:
            name = f"{name}#{calls[name]}"
        # the hooks below are registered on conv / linear layers only
        layer = cast("nn.Conv2d | nn.Linear", module)
        entry = _layer_record(name, layer, inputs[0], output)
        entry["input_tensor"] = next((i for i, seen in enumerate(inputs_seen)
                                      if seen is inputs[0]), len(inputs_seen))
        inputs_seen.append(inputs[0])
        records.append(entry)

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(1, *input_shape))
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"the model fails on input shape {tuple(input_shape)}: "
                          f"{type(exc).__name__}: {exc}") from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    if num_classes is not None:
        check_class_scores(output, num_classes)
    for row, shortcut in zip(records, _shortcut_tensors(model, records)):
        row["shortcut_tensor"] = shortcut
    return LayerTable.from_records(records)


_ADDS = (operator.add, operator.iadd, torch.add)
_LOOKED_THROUGH = (nn.Identity, nn.modules.batchnorm._BatchNorm)  # BN folds into its conv


def _shortcut_tensors(model: nn.Module, records: list[dict[str, Any]]) -> list[int]:
    """``shortcut_tensor`` per row, from the torch.fx graph of ``model``: an add of two
    tensors whose first is a layer's output (BN and ``nn.Identity`` looked through) is that
    layer's residual add; its second is a tensor some layer reads (identity block) or
    another layer's output (a shortcut conv). -1 everywhere for a network fx cannot trace."""
    shortcut = [-1] * len(records)
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # not traceable: its adds stay uncounted, as before
        return shortcut
    row = {str(r["name"]): i for i, r in enumerate(records)}

    def through(node: Any) -> Any:
        while (getattr(node, "op", None) == "call_module"
               and isinstance(model.get_submodule(str(node.target)), _LOOKED_THROUGH)):
            node = node.args[0]
        return node

    def layer_row(node: Any) -> int | None:
        if getattr(node, "op", None) == "call_module":
            return row.get(str(node.target))
        return None

    first_reader: dict[Any, int] = {}
    for node in graph.nodes:
        index = layer_row(node)
        if index is not None and node.args:
            first_reader.setdefault(node.args[0], int(records[index]["input_tensor"]))
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in _ADDS or len(node.args) != 2:
            continue
        main = layer_row(through(node.args[0]))
        source = through(node.args[1])
        if main is None:
            continue
        written = layer_row(source)
        if written is not None and records[written]["input_tensor"] != written:
            shortcut[main] = written
        elif written is None and source in first_reader:
            shortcut[main] = first_reader[source]
    return shortcut


def check_class_scores(output: object, num_classes: int) -> None:
    """One input's output must be ``(1, num_classes)`` scores: a classifier of another
    width trains on labels out of its range, or not at all."""
    if isinstance(output, torch.Tensor) and tuple(output.shape) == (1, num_classes):
        return
    shape = (f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor)
             else f"a {type(output).__name__}, not a tensor")
    raise ConfigError(f"the model's output for one input is {shape}; the dataset has "
                      f"{num_classes} classes, so it must be (1, {num_classes}): give its "
                      "last layer num_classes outputs")


def _layer_record(name: str, module: nn.Conv2d | nn.Linear, x: torch.Tensor,
                  y: torch.Tensor) -> dict[str, Any]:
    if isinstance(module, nn.Linear):
        pixels = x[0].numel() // module.in_features  # 1 for a (N, features) input
        return dict(name=name, kind="linear", cin=module.in_features,
                    cout=module.out_features, kx=1, ky=1, stride=1, groups=1, ox=pixels, oy=1,
                    input_elements=x[0].numel(), output_elements=y[0].numel())
    ky, kx = module.kernel_size
    return dict(
        name=name, kind=kind_for(module.in_channels, module.out_channels, module.groups),
        cin=module.in_channels, cout=module.out_channels, kx=kx, ky=ky,
        stride=module.stride[1], groups=module.groups, ox=y.shape[-1], oy=y.shape[-2],
        input_elements=x[0].numel(), output_elements=y[0].numel(),
    )
