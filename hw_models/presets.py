"""Reading preset files: TOML where every number is ``{value = ..., source = "..."}``.

A schema maps dotted keys to the kind of value expected; plain (unsourced) keys such as
``name`` are listed separately. Missing, mistyped, unsourced or unknown entries raise
ConfigError naming the file and the key.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Iterable

from hw_models.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

POSITIVE = "a positive number"
NON_NEGATIVE = "a number >= 0"
POSITIVE_INT = "a positive integer"
INT_LIST = "a list of positive integers"
FRACTION = "a number in [0, 1]"
BOOLEAN = "true or false"
RESIDENCY = '"auto" or false'
IDLE_DRAM = 'one of "active-standby", "power-down", "self-refresh", "off"'
IDLE_DRAM_MODES = ("active-standby", "power-down", "self-refresh", "off")
# what a DRAM holding none of the inference's tensors costs when a preset does not say:
# precharge power-down and refresh, the only model of dse before the setting existed
DEFAULT_IDLE_DRAM = "power-down"
# a preset's digests of its earlier versions that cost every mapping the same
SAME_COSTS_KEY = "same_costs_as_sha256"
TEXT = "a non-empty string"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read preset {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path} is not valid TOML: {exc}") from None


def checked_values(document: dict[str, Any], schema: dict[str, str], path: Path,
                   plain_keys: Iterable[str] = ("name", "description"),
                   optional: Iterable[str] = ()
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """Values and source notes of every schema key; raise ConfigError on any fault. Keys in
    ``optional`` may be absent (then they are in neither dict)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    optional = set(optional)
    for key, expected in schema.items():
        entry = lookup(document, key)
        if entry is None and key in optional:
            continue
        if not isinstance(entry, dict) or set(entry) != {"value", "source"}:
            raise ConfigError(f"{path}: '{key}' must be a table with 'value' and 'source'")
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise ConfigError(f"{path}: '{key}' needs a non-empty source note")
        if not has_kind(entry["value"], expected):
            raise ConfigError(f"{path}: '{key}' must be {expected}, got {entry['value']!r}")
        values[key], sources[key] = entry["value"], entry["source"]
    stray = sorted(set(_leaf_keys(document)) - set(schema) - set(plain_keys))
    if stray:
        raise ConfigError(f"{path}: unknown key '{stray[0]}'")
    return values, sources


def plain_string(document: dict[str, Any], key: str, path: Path) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: '{key}' must be a non-empty string")
    return value


def lookup(document: dict[str, Any], dotted: str) -> Any:
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _leaf_keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and not {"value", "source"} & set(value):
            keys += _leaf_keys(value, dotted + ".")
        else:
            keys.append(dotted)
    return keys


def has_kind(value: Any, expected: str) -> bool:
    if expected == BOOLEAN:
        return isinstance(value, bool)
    if expected == TEXT:
        return isinstance(value, str) and bool(value.strip())
    if expected == IDLE_DRAM:
        return value in IDLE_DRAM_MODES
    if expected == RESIDENCY:  # true (the older spelling) means "auto"
        return isinstance(value, bool) or value == "auto"
    if expected == INT_LIST:
        return (isinstance(value, list) and len(value) > 0
                and all(has_kind(v, POSITIVE_INT) for v in value))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if expected == POSITIVE_INT:
        return isinstance(value, int) and value > 0
    if expected == NON_NEGATIVE:
        return value >= 0
    if expected == FRACTION:
        return 0 <= value <= 1
    return value > 0


def same_costs_as(path: Path) -> frozenset[str]:
    """The digests (SHA-256) of earlier versions of the preset file ``path`` that its own
    ``same_costs_as_sha256`` lists: versions that give every mapping the same costs, so a
    study bound to one of them resumes under this one. Only the file's own list counts
    (not one of a preset it extends)."""
    listed = read_toml(path).get(SAME_COSTS_KEY, [])
    if not isinstance(listed, list) or not all(isinstance(each, str) for each in listed):
        raise ConfigError(f"{path}: '{SAME_COSTS_KEY}' must be a list of SHA-256 digests")
    return frozenset(listed)
