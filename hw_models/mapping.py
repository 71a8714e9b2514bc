"""Mapping specs: how many output channels of each layer run on the analog array.

A spec is a named heuristic (``HEURISTICS``) or a JSON file holding either an object
``{layer name: n_analog}`` (layers not named stay digital), a list of ``n_analog`` in layer
order, or the output of ``dse cost --json`` (its ``layers`` carry ``name`` and ``n_analog``).
Where a count is given, *which* channels go analog is the probe's rule (the least
ternarisation error); a list of channel indices instead of a count names them
(``{"conv1": [0, 5, 7]}``, or ``analog_channels`` in a ``layers`` entry): ODiMO's search
chooses channels, not only how many. The cost depends on the counts only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hw_models.diana import SPLIT_COLUMNS, check_mapping, split_cost
from hw_models.errors import ConfigError
from hw_models.layer_table import LayerTable
from hw_models.soc import Soc


def all_digital(table: LayerTable, soc: Soc) -> np.ndarray:
    return np.zeros(table.n_layers, dtype=np.int64)


def all_analog(table: LayerTable, soc: Soc) -> np.ndarray:
    """Every layer the analog array can run goes wholly analog; depthwise stays digital."""
    return np.where(table.analog_capable, table.cout, 0)


def diana_heuristic(table: LayerTable, soc: Soc) -> np.ndarray:
    """DIANA's own default: first and last layer, and layers with fewer than
    ``heuristic.min_channels_analog`` input or output channels, digital; the rest analog."""
    few_channels = np.minimum(table.cin, table.cout) < soc.heuristic_min_channels_analog
    digital = few_channels.copy()
    digital[[0, -1]] = True
    return np.where(digital, 0, all_analog(table, soc))


def min_latency(table: LayerTable, soc: Soc) -> np.ndarray:
    """Each layer wholly on whichever core runs it faster (digital on a tie)."""
    columns = {c: getattr(table, c) for c in SPLIT_COLUMNS}
    candidate = all_analog(table, soc)
    digital_c, _, _ = split_cost(np.zeros_like(candidate), soc=soc, **columns)
    _, analog_c, _ = split_cost(candidate, soc=soc, **columns)
    return np.where(table.analog_capable & (analog_c < digital_c), candidate, 0)


HEURISTICS: dict[str, Callable[[LayerTable, Soc], np.ndarray]] = {
    "all-digital": all_digital,
    "all-analog": all_analog,
    "diana-heuristic": diana_heuristic,
    "min-latency": min_latency,
}


Channels = tuple[tuple[int, ...] | None, ...]  # per layer: analog channel indices, or None


def resolve_mapping(spec: str, table: LayerTable, soc: Soc) -> np.ndarray:
    """Turn a spec (heuristic name or JSON file path) into ``n_analog``, shape (n_layers,)."""
    return resolve_split(spec, table, soc)[0]


def resolve_split(spec: str, table: LayerTable, soc: Soc) -> tuple[np.ndarray, Channels | None]:
    """``n_analog`` and, when the spec names channels, each layer's analog channel indices
    (None for the layers given as counts; None overall when no layer names any)."""
    if spec in HEURISTICS:
        return check_mapping(table, HEURISTICS[spec](table, soc)), None
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"mapping '{spec}' is neither a heuristic "
                          f"({', '.join(HEURISTICS)}) nor an existing JSON file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"),
                              object_pairs_hook=_no_duplicate_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read mapping file {path}: {exc}") from None
    return split_from_json(document, table, source=str(path))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise json.JSONDecodeError(f"layer '{repeated[0]}' appears twice", "", 0)
    return dict(pairs)


def mapping_from_json(document: Any, table: LayerTable, *, source: str = "mapping") -> np.ndarray:
    """Parse an already-loaded JSON mapping document; see the module docstring for forms."""
    return split_from_json(document, table, source=source)[0]


def split_from_json(document: Any, table: LayerTable, *, source: str = "mapping"
                    ) -> tuple[np.ndarray, Channels | None]:
    """``mapping_from_json`` with the named channels (see ``resolve_split``)."""
    if isinstance(document, dict) and isinstance(document.get("layers"), list):
        try:
            document = {row["name"]: (row["analog_channels"] if row.get("analog_channels")
                                      is not None else row["n_analog"])
                        for row in document["layers"]}
        except (TypeError, KeyError, AttributeError):
            raise ConfigError(f"{source}: each entry of 'layers' needs 'name' and 'n_analog'"
                              ) from None
    if isinstance(document, list):
        if len(document) != table.n_layers:
            raise ConfigError(f"{source}: the list has {len(document)} entries, the network "
                              f"has {table.n_layers} layers")
        named = dict(zip(table.name, document))
    elif isinstance(document, dict):
        named = document
    else:
        raise ConfigError(f"{source}: expected a JSON object or list, got "
                          f"{type(document).__name__}")
    n_analog = np.zeros(table.n_layers, dtype=np.int64)
    channels: list[tuple[int, ...] | None] = [None] * table.n_layers
    for layer_name, value in named.items():
        index = table.index_of(layer_name)
        cout = int(table.cout[index])
        if isinstance(value, list):
            if (not all(isinstance(c, int) and not isinstance(c, bool) for c in value)
                    or not all(0 <= c < cout for c in value) or len(set(value)) != len(value)):
                raise ConfigError(f"{source}: layer '{layer_name}': analog channels must be "
                                  f"distinct integers in [0, {cout - 1}]")
            channels[index] = tuple(sorted(value))
            count = len(value)
        elif isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: layer '{layer_name}': n_analog must be an integer "
                              f"or a list of channel indices, got {value!r}")
        else:
            count = value
        if not 0 <= count <= cout:
            raise ConfigError(f"{source}: layer '{layer_name}': n_analog must be in "
                              f"[0, {cout}], got {count}")
        n_analog[index] = count
    named_any = any(c is not None for c in channels)
    return check_mapping(table, n_analog), (tuple(channels) if named_any else None)
