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
TEXT = "a non-empty string"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read preset {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path} is not valid TOML: {exc}") from None


def checked_values(document: dict[str, Any], schema: dict[str, str], path: Path,
                   plain_keys: Iterable[str] = ("name", "description")
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """Values and source notes of every schema key; raise ConfigError on any fault."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, expected in schema.items():
        entry = lookup(document, key)
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
