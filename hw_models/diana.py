"""DIANA compute cost: ODiMO's analytical cycle and power model, vectorised with numpy.

For a layer with ``n_digital`` output channels on the digital PE array and ``n_analog`` on
the AIMC array (docs/model.md, "The DIANA model"; ODiMO models/model_diana.py):

* digital cycles = cdiv(n_d / groups, K_pe) * cin * cdiv(ox, OX_pe) * oy * kx * ky
  + ox * oy * (n_d + cin) / act_per_cycle, and 0 when n_d = 0;
* analog cycles = n_mvm * t_mvm * f + w_row * cin * kx * ky, and 0 when n_a = 0, with
  n_mvm = cdiv(n_a, cols) * cdiv(cin, cin_mvm) * ox * oy / u and u the largest output
  unrolling with n_a * u <= cols and (kx + u - 1) * max(cin_min, cin) * ky <= rows;
* both cores run in parallel: latency = max(t_d, t_a); energy = P_both * min(t_d, t_a)
  + P_ana * (t_a - min) + P_dig * (t_d - min).

Every function broadcasts: layer columns have shape (n_layers,) and channel counts shape
(n_layers,) or (n_candidates, n_layers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.soc import AnalogCore, DigitalCore, PowerModes, Soc


def cdiv(a: np.ndarray, b: float) -> np.ndarray:
    """Ceiling division as ODiMO writes it: floor((a + b - 1) / b); valid for float a."""
    return np.floor((a + b - 1) / b)


def digital_cycles(n_digital, cin, kx, ky, ox, oy, groups, core: DigitalCore) -> np.ndarray:
    """Cycles on the digital PE array; all arguments broadcast together."""
    compute = (cdiv(n_digital / groups, core.pe_output_channels) * cin
               * cdiv(ox, core.pe_output_pixels) * oy * kx * ky)
    load_store = ox * oy * (n_digital + cin) / core.activations_per_cycle
    return np.where(n_digital > 0, compute + load_store, 0.0)


def ox_unroll(n_analog, cin, kx, ky, core: AnalogCore) -> np.ndarray:
    """Output-pixel unrolling factor u of the AIMC array (1 when no choice fits)."""
    rows_per_tap = np.maximum(core.unroll_min_input_channels, cin) * ky
    unroll = np.ones(np.broadcast(n_analog, cin, kx, ky).shape)
    for choice in core.ox_unroll_choices:
        fits = ((n_analog * choice <= core.array_columns)
                & ((kx + choice - 1) * rows_per_tap <= core.array_rows))
        unroll = np.where(fits, choice, unroll)
    return unroll


def analog_cycles(n_analog, cin, kx, ky, ox, oy, clock_hz: float,
                  core: AnalogCore) -> np.ndarray:
    """Cycles on the AIMC array: array evaluations plus weight programming."""
    n_mvm = (cdiv(n_analog, core.array_columns) * cdiv(cin, core.input_channels_per_mvm)
             * ox * oy / ox_unroll(n_analog, cin, kx, ky, core))
    mvm_cycles = core.mvm_time_ns * clock_hz / 1e9
    weight_load = core.weight_load_cycles_per_row * cin * kx * ky
    return np.where(n_analog > 0, n_mvm * mvm_cycles + weight_load, 0.0)


def parallel_energy_j(digital_cycles_: np.ndarray, analog_cycles_: np.ndarray,
                      clock_hz: float, power: PowerModes) -> np.ndarray:
    """Energy when both cores start together: overlap at P_both, then the slower one alone."""
    overlap = np.minimum(digital_cycles_, analog_cycles_)
    power_cycles_mw = (power.both_mw * overlap
                       + power.analog_mw * (analog_cycles_ - overlap)
                       + power.digital_mw * (digital_cycles_ - overlap))
    return power_cycles_mw * 1e-3 / clock_hz


@dataclass(frozen=True)
class ComputeCost:
    """Per-layer DIANA compute cost; every array has the shape of the mapping given.

    Attributes:
        n_analog: output channels on the AIMC array.
        digital_cycles, analog_cycles: busy cycles of each core.
        latency_cycles: max of the two (the cores run in parallel).
        energy_j: whole-SoC energy of the layer in joules.
        clock_hz: the SoC clock that converts cycles to seconds.
    """

    n_analog: np.ndarray
    digital_cycles: np.ndarray
    analog_cycles: np.ndarray
    latency_cycles: np.ndarray
    energy_j: np.ndarray
    clock_hz: float

    @property
    def latency_s(self) -> np.ndarray:
        return self.latency_cycles / self.clock_hz

    def total_latency_cycles(self) -> np.ndarray:
        """Network latency, layers in sequence; shape mapping.shape[:-1]."""
        return self.latency_cycles.sum(axis=-1)

    def total_latency_s(self) -> np.ndarray:
        return self.total_latency_cycles() / self.clock_hz

    def total_energy_j(self) -> np.ndarray:
        return self.energy_j.sum(axis=-1)


def compute_cost(table: LayerTable, soc: Soc, n_analog: np.ndarray) -> ComputeCost:
    """Evaluate DIANA latency and energy for one or many channel splits.

    Args:
        table: the network's layer table (n_layers rows).
        soc: SoC parameters.
        n_analog: integer analog output channels per layer, shape (n_layers,) or
            (n_candidates, n_layers); the remaining ``cout - n_analog`` are digital.

    Returns:
        ComputeCost with arrays of the same shape as ``n_analog``.
    """
    n_analog = check_mapping(table, n_analog)
    columns = {c: getattr(table, c) for c in SPLIT_COLUMNS}
    digital, analog, energy = split_cost(n_analog, soc=soc, **columns)
    return ComputeCost(
        n_analog=n_analog,
        digital_cycles=digital,
        analog_cycles=analog,
        latency_cycles=np.maximum(digital, analog),
        energy_j=energy,
        clock_hz=soc.clock_hz,
    )


SPLIT_COLUMNS = ("cout", "cin", "kx", "ky", "ox", "oy", "groups")


def split_cost(n_analog, *, cout, cin, kx, ky, ox, oy, groups,
               soc: Soc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digital cycles, analog cycles and energy (J) of layers split ``n_analog`` / rest.

    Unchecked: all arguments broadcast together; ``compute_cost`` is the checked entry.
    """
    digital = digital_cycles(cout - n_analog, cin, kx, ky, ox, oy, groups, soc.digital)
    analog = analog_cycles(n_analog, cin, kx, ky, ox, oy, soc.clock_hz, soc.analog)
    return digital, analog, parallel_energy_j(digital, analog, soc.clock_hz, soc.power)


def check_mapping(table: LayerTable, n_analog: np.ndarray) -> np.ndarray:
    """Return ``n_analog`` as int64 after checking shape, range and analog capability."""
    array = np.asarray(n_analog)
    if array.ndim not in (1, 2) or array.shape[-1] != table.n_layers:
        raise ConfigError(
            f"mapping has shape {array.shape}; expected (n_layers,) or (n_candidates, n_layers) "
            f"with n_layers = {table.n_layers}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError("mapping channel counts must be integers")
    array = array.astype(np.int64, copy=False)
    bad = (array < 0) | (array > table.cout)
    if bad.any():
        layer = int(np.argwhere(bad)[0][-1])
        raise ConfigError(f"layer '{table.name[layer]}': n_analog must be in "
                          f"[0, {table.cout[layer]}]")
    digital_only = (array > 0) & ~table.analog_capable
    if digital_only.any():
        layer = int(np.argwhere(digital_only)[0][-1])
        raise ConfigError(f"layer '{table.name[layer]}' is {table.kind[layer]}: the analog "
                          "array cannot run it, n_analog must be 0")
    return array
