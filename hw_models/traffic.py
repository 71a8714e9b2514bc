"""DRAM traffic per layer: weights at their accelerator's precision, spilled activations.

Modelling assumption (README, "Approximate DRAM"): the SoC streams every layer's weights from DRAM
(int8 for digital output channels, 2-bit ternary codes for analog ones) unless the preset keeps
weights resident and the whole model fits in L2; a layer's activations (7-bit values in 8-bit
containers) go through DRAM when its input plus output do not fit the L1 activation memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models.soc import Soc
from hw_models.workload import LayerTable


@dataclass(frozen=True)
class LayerTraffic:
    """Bytes moved per inference; weight arrays have the mapping's shape, activation
    arrays shape (n_layers,).

    Attributes:
        weight_read_bytes: weights read from DRAM.
        activation_read_bytes: spilled input activations read back.
        activation_write_bytes: spilled output activations written.
        spilled: shape (n_layers,), whether the layer's activations go through DRAM.
    """

    weight_read_bytes: np.ndarray
    activation_read_bytes: np.ndarray
    activation_write_bytes: np.ndarray
    spilled: np.ndarray

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weight_read_bytes + self.activation_read_bytes + self.activation_write_bytes


def weight_bytes(table: LayerTable, soc: Soc, n_analog: np.ndarray) -> np.ndarray:
    """Stored weight bytes per layer for a mapping, shape of ``n_analog``."""
    weights_per_channel = table.weights / table.cout  # (n_layers,)
    digital_bits = (table.cout - n_analog) * weights_per_channel * soc.digital.weight_bits
    analog_bits = n_analog * weights_per_channel * soc.analog.weight_bits
    return (digital_bits + analog_bits) / 8


def layer_traffic(table: LayerTable, soc: Soc, n_analog: np.ndarray) -> LayerTraffic:
    """DRAM bytes per layer and inference for the mapping ``n_analog`` (n_layers,) or
    (n_candidates, n_layers)."""
    stored = weight_bytes(table, soc, n_analog)
    resident = soc.memory.weights_resident & (stored.sum(axis=-1, keepdims=True)
                                              <= soc.memory.l2_bytes)
    activation_bytes = soc.memory.activation_container_bits / 8
    spilled = ((table.input_elements + table.output_elements) * activation_bytes
               > soc.memory.l1_activation_bytes)
    return LayerTraffic(
        weight_read_bytes=np.where(resident, 0.0, stored),
        activation_read_bytes=np.where(spilled, table.input_elements * activation_bytes, 0.0),
        activation_write_bytes=np.where(spilled, table.output_elements * activation_bytes, 0.0),
        spilled=spilled,
    )
