"""Mapping specs: how many output channels of each layer run on the analog array.

A spec is a named heuristic (``HEURISTICS``) or a JSON file holding either an object
``{layer name: n_analog}`` (layers not named stay digital), a list of ``n_analog`` in layer
order, or the output of ``dse cost --json`` (its ``layers`` carry ``name`` and ``n_analog``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hw_models.diana import SPLIT_COLUMNS, check_mapping, split_cost
from hw_models.errors import ConfigError
from hw_models.soc import Soc
from hw_models.workload import LayerTable


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


def resolve_mapping(spec: str, table: LayerTable, soc: Soc) -> np.ndarray:
    """Turn a spec (heuristic name or JSON file path) into ``n_analog``, shape (n_layers,)."""
    if spec in HEURISTICS:
        return check_mapping(table, HEURISTICS[spec](table, soc))
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"mapping '{spec}' is neither a heuristic "
                          f"({', '.join(HEURISTICS)}) nor an existing JSON file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"),
                              object_pairs_hook=_no_duplicate_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read mapping file {path}: {exc}") from None
    return mapping_from_json(document, table, source=str(path))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise json.JSONDecodeError(f"layer '{repeated[0]}' appears twice", "", 0)
    return dict(pairs)


def mapping_from_json(document: Any, table: LayerTable, *, source: str = "mapping") -> np.ndarray:
    """Parse an already-loaded JSON mapping document; see the module docstring for forms."""
    if isinstance(document, dict) and isinstance(document.get("layers"), list):
        try:
            document = {row["name"]: row["n_analog"] for row in document["layers"]}
        except (TypeError, KeyError):
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
    for layer_name, count in named.items():
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"{source}: layer '{layer_name}': n_analog must be an integer, "
                              f"got {count!r}")
        index = table.index_of(layer_name)
        if not 0 <= count <= table.cout[index]:
            raise ConfigError(f"{source}: layer '{layer_name}': n_analog must be in "
                              f"[0, {table.cout[index]}], got {count}")
        n_analog[index] = count
    return check_mapping(table, n_analog)
