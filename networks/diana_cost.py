"""A differentiable twin of the DIANA compute cost (``hw_models.diana``), for ODiMO's search.

The formulas are ``hw_models.diana``'s, evaluated in torch at *effective* (continuous)
channel counts, as ODiMO does (Risso et al., ISLPED 2023; eml-eda/odimo
``models/model_diana.py`` and ``quant_module_pow2.py``):

* ceiling divisions and the "core in use" gates are straight-through: their exact value in
  the forward pass, the gradient of the unrounded value (of 1 for the gate) backward;
* the AIMC output unrolling is chosen on the detached counts (piecewise constant);
* a layer's latency is the slower core's: ``max(t_d, t_a)`` forward, and backward the
  gradient of ODiMO's softmax-weighted max ``sum(softmax(t) * t)``; its energy is the
  parallel-mode energy with the overlap ``min(t_d, t_a)`` (softmin-weighted backward).

At integer splits the forward values equal ``hw_models.diana.split_cost`` (tested), so the
search optimises exactly what the cost model later reports. ``hw_models`` stays numpy-only;
this twin lives with the torch code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hw_models.layer_table import LayerTable
from hw_models.soc import Soc


def straight_through(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` forward (exactly: ``value - value.detach()`` is 0), the gradient of
    ``value`` backward."""
    return target.detach() + (value - value.detach())


def cdiv(a: torch.Tensor, b: float) -> torch.Tensor:
    """ODiMO's ceiling division floor((a + b - 1) / b), straight-through."""
    exact = (a + b - 1) / b
    return straight_through(exact, torch.floor(exact))


def gate(count: torch.Tensor) -> torch.Tensor:
    """1 where a core has channels (count > 0), else 0; gradient 1 (ODiMO's GateSTE)."""
    return straight_through(count, (count > 0).to(count.dtype))


def _smooth_max(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pair = torch.stack([a, b])
    return (torch.softmax(pair, dim=0) * pair).sum(dim=0)


def _smooth_min(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    pair = torch.stack([a, b])
    return (torch.softmax(-pair, dim=0) * pair).sum(dim=0)


@dataclass(frozen=True)
class LayerColumns:
    """The layer table's columns as float tensors, shape (n_layers,)."""

    cout: torch.Tensor
    cin: torch.Tensor
    kx: torch.Tensor
    ky: torch.Tensor
    ox: torch.Tensor
    oy: torch.Tensor
    groups: torch.Tensor

    @classmethod
    def of(cls, table: LayerTable, device: str | torch.device = "cpu") -> "LayerColumns":
        return cls(**{name: torch.tensor(getattr(table, name).astype(np.float64),
                                         dtype=torch.float64, device=device)
                      for name in ("cout", "cin", "kx", "ky", "ox", "oy", "groups")})


def split_cost(n_analog: torch.Tensor, layers: LayerColumns, soc: Soc
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Latency (cycles) and energy (J) per layer at effective analog channel counts
    ``n_analog`` (float, shape (n_layers,)); the rest of each layer's channels are digital.
    """
    n_analog = n_analog.to(torch.float64)
    n_digital = layers.cout - n_analog
    digital, analog = soc.digital, soc.analog
    compute = (cdiv(n_digital / layers.groups, digital.pe_output_channels) * layers.cin
               * cdiv(layers.ox, digital.pe_output_pixels) * layers.oy * layers.kx * layers.ky)
    load_store = layers.ox * layers.oy * (n_digital + layers.cin) / digital.activations_per_cycle
    t_digital = gate(n_digital) * (compute + load_store)
    unroll = _ox_unroll(n_analog.detach(), layers, soc)
    n_mvm = (cdiv(n_analog, analog.array_columns) * cdiv(layers.cin, analog.input_channels_per_mvm)
             * layers.ox * layers.oy / unroll)
    mvm_cycles = analog.mvm_time_ns * soc.clock_hz / 1e9
    weight_load = analog.weight_load_cycles_per_row * layers.cin * layers.kx * layers.ky
    t_analog = gate(n_analog) * (n_mvm * mvm_cycles + weight_load)
    latency = straight_through(_smooth_max(t_digital, t_analog),
                               torch.maximum(t_digital, t_analog))
    overlap = straight_through(_smooth_min(t_digital, t_analog),
                               torch.minimum(t_digital, t_analog))
    power = soc.power
    energy_mw_cycles = (power.both_mw * overlap + power.analog_mw * (t_analog - overlap)
                        + power.digital_mw * (t_digital - overlap))
    return latency, energy_mw_cycles * 1e-3 / soc.clock_hz


def _ox_unroll(n_analog: torch.Tensor, layers: LayerColumns, soc: Soc) -> torch.Tensor:
    core = soc.analog
    rows_per_tap = torch.clamp(layers.cin, min=core.unroll_min_input_channels) * layers.ky
    unroll = torch.ones_like(n_analog)
    for choice in core.ox_unroll_choices:
        fits = ((n_analog * choice <= core.array_columns)
                & ((layers.kx + choice - 1) * rows_per_tap <= core.array_rows))
        unroll = torch.where(fits, torch.full_like(unroll, float(choice)), unroll)
    return unroll
