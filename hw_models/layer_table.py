"""The layer table: one row per costed (MAC-carrying) layer of a network.

The table is owned by the cost models that consume it; ``networks.extract`` produces it
from a torch model. Non-MAC operations (add, pooling, activations) have no row: the DIANA
model does not cost their compute, as in ODiMO. A residual add runs in the output stage of
the layer that produces its main operand (``shortcut_tensor``): the memory model counts the
stored shortcut it reads.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

import numpy as np

from hw_models.errors import ConfigError

LAYER_KINDS = ("conv", "depthwise", "grouped", "linear")

_INT_COLUMNS = (
    "cin", "cout", "kx", "ky", "stride", "groups", "ox", "oy",
    "macs", "weights", "input_elements", "output_elements", "input_tensor", "shortcut_tensor",
)


@dataclass(frozen=True)
class LayerTable:
    """Equal-length columns, one entry per layer in execution order.

    Attributes:
        name: qualified module name of each layer.
        kind: one of ``LAYER_KINDS``; a linear layer is a 1x1 conv with ox = oy = 1.
        cin, cout: input / output channels.
        kx, ky: kernel width / height.
        stride: horizontal stride.
        groups: convolution groups (1 for dense layers).
        ox, oy: output width / height in pixels.
        macs: multiply-accumulates for one input sample.
        weights: weight count (biases excluded).
        input_elements, output_elements: activation elements read / written per sample.
        input_tensor: which stored tensor the layer reads, named by the first layer (in
            table order) that reads it: ``input_tensor[i] == i`` for a layer with an input of
            its own; a block's shortcut conv reads the tensor of the block's first conv. One
            tensor is stored once, so all its readers see the same copy (and the same errors).
        shortcut_tensor: -1, or the stored shortcut tensor that a residual add in the layer's
            output stage reads (the layer is the block's conv2; its output is the add's main
            operand). Either a tensor some layer reads (``input_tensor[t] == t``, t not
            after the layer): an identity block's input, held from its first reader to the
            add; or the output of layer t, a shortcut conv that reads another layer's tensor
            (``input_tensor[t] != t``): a downsample block's shortcut, stored from that conv
            to the add. It has the layer's output size.
    """

    name: tuple[str, ...]
    kind: tuple[str, ...]
    cin: np.ndarray
    cout: np.ndarray
    kx: np.ndarray
    ky: np.ndarray
    stride: np.ndarray
    groups: np.ndarray
    ox: np.ndarray
    oy: np.ndarray
    macs: np.ndarray
    weights: np.ndarray
    input_elements: np.ndarray
    output_elements: np.ndarray
    input_tensor: np.ndarray
    shortcut_tensor: np.ndarray

    @property
    def n_layers(self) -> int:
        return len(self.name)

    @property
    def analog_capable(self) -> np.ndarray:
        """Boolean mask, shape (n_layers,): layers the AIMC array can run (dense only)."""
        return self.groups == 1

    def index_of(self, layer_name: str) -> int:
        try:
            return self.name.index(layer_name)
        except ValueError:
            raise ConfigError(f"unknown layer '{layer_name}'") from None

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per layer (Python ints), in table order."""
        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        return [
            {key: (value[i] if isinstance(value, tuple) else int(value[i]))
             for key, value in columns.items()}
            for i in range(self.n_layers)
        ]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> "LayerTable":
        """Build and validate a table from per-layer dicts with the column names as keys.

        ``macs``, ``weights``, ``input_elements`` and ``output_elements`` are derived when
        absent (input elements assume 'same' padding: ``cin * ox * stride * oy * stride``);
        ``input_tensor`` defaults to the layer's own index (every input its own tensor),
        ``shortcut_tensor`` to -1 (no residual add: tables written before it existed).
        """
        rows = [dict(r) for r in records]
        for index, row in enumerate(rows):
            row.setdefault("input_tensor", index)
            row.setdefault("shortcut_tensor", -1)
            for key in ("name", "kind", "cin", "cout", "kx", "ky", "ox", "oy"):
                if key not in row:
                    raise ConfigError(f"layer record {row.get('name', '?')!r} lacks '{key}'")
            row.setdefault("stride", 1)
            row.setdefault("groups", 1)
            weights = row["cout"] * (row["cin"] // row["groups"]) * row["kx"] * row["ky"]
            row.setdefault("weights", weights)
            row.setdefault("macs", weights * row["ox"] * row["oy"])
            row.setdefault("output_elements", row["cout"] * row["ox"] * row["oy"])
            row.setdefault(
                "input_elements",
                row["cin"] * row["ox"] * row["stride"] * row["oy"] * row["stride"],
            )
        table = cls(
            name=tuple(str(r["name"]) for r in rows),
            kind=tuple(str(r["kind"]) for r in rows),
            **{c: np.array([r[c] for r in rows], dtype=np.int64) for c in _INT_COLUMNS},
        )
        table.validate()
        return table

    def validate(self) -> None:
        """Check lengths, dtypes, kinds and value ranges; raise ConfigError on the first fault."""
        n = self.n_layers
        if n == 0:
            raise ConfigError("the network has no conv or linear layer to cost")
        if len(self.kind) != n or len(set(self.name)) != n:
            raise ConfigError("layer names must be unique and match the kinds in number")
        for column in _INT_COLUMNS:
            values = getattr(self, column)
            if values.shape != (n,) or values.dtype != np.int64:
                raise ConfigError(f"layer column '{column}' must be int64 of length {n}")
        for column in ("cin", "cout", "kx", "ky", "stride", "groups", "ox", "oy"):
            if (getattr(self, column) < 1).any():
                raise ConfigError(f"layer column '{column}' must be >= 1")
        first = self.input_tensor
        if ((first < 0) | (first > np.arange(n))).any() or (first[first] != first).any() \
                or (self.input_elements[first] != self.input_elements).any():
            raise ConfigError("layer column 'input_tensor' must name, for every layer, the "
                              "first layer reading the same input (same size, not later)")
        self._validate_shortcuts()
        for i, kind in enumerate(self.kind):
            if kind != kind_for(int(self.cin[i]), int(self.cout[i]), int(self.groups[i]),
                                linear=kind == "linear"):
                raise ConfigError(
                    f"layer '{self.name[i]}': kind '{kind}' contradicts groups={self.groups[i]}"
                )


    def _validate_shortcuts(self) -> None:
        n = self.n_layers
        used: set[int] = set()
        for i, t in enumerate(int(v) for v in self.shortcut_tensor):
            if t == -1:
                continue
            held = 0 <= t <= i and self.input_tensor[t] == t
            written = 0 <= t < n and t != i and self.input_tensor[t] != t and t not in used
            size = (self.input_elements[t] if held else self.output_elements[t]) \
                if 0 <= t < n else -1
            if not (held or written) or size != self.output_elements[i]:
                raise ConfigError(
                    f"layer '{self.name[i]}': 'shortcut_tensor' must be -1 or name the tensor "
                    "its residual add reads, of its output size: a stored input (its first "
                    "reader, not later) or the output of a shortcut layer that reads another "
                    "layer's tensor (one add each)")
            if written:
                used.add(t)

    def shortcut_writers(self) -> np.ndarray:
        """Boolean mask (n_layers,): layers whose output is a stored shortcut tensor (a
        downsample block's shortcut conv)."""
        writers = np.zeros(self.n_layers, dtype=bool)
        named = self.shortcut_tensor[self.shortcut_tensor >= 0]
        writers[named[self.input_tensor[named] != named]] = True
        return writers


def kind_for(cin: int, cout: int, groups: int, *, linear: bool = False) -> str:
    """The layer kind implied by its channel counts and groups."""
    if groups == 1:
        return "linear" if linear else "conv"
    return "depthwise" if groups == cin == cout else "grouped"
