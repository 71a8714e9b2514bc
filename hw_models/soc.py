"""DIANA-class SoC parameters, read from a preset file with a source note per number.

A preset is a TOML file (see ``presets/diana.toml``). Every numeric entry is a table
``{value = ..., source = "..."}``; keys carry their unit. ``load_soc`` validates the file
against ``_SCHEMA`` and returns frozen dataclasses; nothing is computed on construction.

A preset may start from another: ``extends = "diana"`` (a preset name, or a file path
relative to the preset) takes every entry of that preset, and the file's own entries replace
them one by one (see ``presets/diana-streamed.toml``). ``preset_sha256`` fingerprints the
whole chain, so editing the base is noticed too.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw_models.errors import ConfigError
from hw_models.presets import (
    DEFAULT_IDLE_DRAM,
    IDLE_DRAM,
    INT_LIST,
    POSITIVE,
    POSITIVE_INT,
    RESIDENCY,
    SAME_COSTS_KEY,
    checked_values,
    plain_string,
    read_toml,
    same_costs_as,
)

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class DigitalCore:
    """The 8-bit digital PE array: ``pe_output_channels`` x ``pe_output_pixels`` PEs."""

    pe_output_channels: int
    pe_output_pixels: int
    activations_per_cycle: float
    weight_bits: int
    peak_tops_per_w: float


@dataclass(frozen=True)
class AnalogCore:
    """The ternary analog in-memory-computing array (``array_rows`` x ``array_columns``)."""

    array_rows: int
    array_columns: int
    input_channels_per_mvm: int
    unroll_min_input_channels: int
    ox_unroll_choices: tuple[int, ...]
    mvm_time_ns: float
    weight_load_cycles_per_row: float
    weight_bits: int
    adc_output_bits: int
    peak_tops_per_w: float


@dataclass(frozen=True)
class PowerModes:
    """Whole-SoC power with the digital core, the analog core, or both active."""

    digital_mw: float
    analog_mw: float
    both_mw: float


@dataclass(frozen=True)
class OnChipMemory:
    """L1 (activations of the running layer) and L2 (resident weights, then activations
    that do not fit L1); DRAM holds only what fits neither.

    Attributes:
        weights_resident: "auto" keeps the model's weights in L2 when they fit (loaded once
            at start-up, no per-inference DRAM traffic); False streams them every inference.
        idle_dram: what the DRAM costs during an inference that has none of its tensors in
            DRAM (``IDLE_DRAM_MODES``): "active-standby" (active standby and refresh),
            "power-down" (precharge power-down and refresh), "self-refresh" (the device's
            self-refresh power) or "off" (nothing: the SoC powers it down, contents lost).
    """

    l1_activation_bytes: int
    l2_bytes: int
    digital_weight_bytes: int
    analog_weight_bytes: int
    activation_container_bits: int
    weights_resident: str | bool
    idle_dram: str = DEFAULT_IDLE_DRAM


@dataclass(frozen=True)
class Soc:
    """A DIANA-class SoC: one digital and one analog accelerator sharing on-chip memory."""

    name: str
    description: str
    default_dram: str
    source_path: str
    clock_hz: float
    digital: DigitalCore
    analog: AnalogCore
    power: PowerModes
    memory: OnChipMemory
    activation_bits: int
    technology_nm: float
    heuristic_min_channels_analog: int
    sources: dict[str, str]
    sha256: str = ""  # the preset's fingerprint (``preset_sha256``), from the files it read


_SCHEMA: dict[str, str] = {
    "clock_hz": POSITIVE,
    "digital.pe_output_channels": POSITIVE_INT,
    "digital.pe_output_pixels": POSITIVE_INT,
    "digital.activations_per_cycle": POSITIVE,
    "digital.weight_bits": POSITIVE_INT,
    "digital.peak_tops_per_w": POSITIVE,
    "analog.array_rows": POSITIVE_INT,
    "analog.array_columns": POSITIVE_INT,
    "analog.input_channels_per_mvm": POSITIVE_INT,
    "analog.unroll_min_input_channels": POSITIVE_INT,
    "analog.ox_unroll_choices": INT_LIST,
    "analog.mvm_time_ns": POSITIVE,
    "analog.weight_load_cycles_per_row": POSITIVE,
    "analog.weight_bits": POSITIVE_INT,
    "analog.adc_output_bits": POSITIVE_INT,
    "analog.peak_tops_per_w": POSITIVE,
    "activation_bits": POSITIVE_INT,
    "power.digital_mw": POSITIVE,
    "power.analog_mw": POSITIVE,
    "power.both_mw": POSITIVE,
    "memory.l1_activation_bytes": POSITIVE_INT,
    "memory.l2_bytes": POSITIVE_INT,
    "memory.digital_weight_bytes": POSITIVE_INT,
    "memory.analog_weight_bytes": POSITIVE_INT,
    "technology_nm": POSITIVE,
    "heuristic.min_channels_analog": POSITIVE_INT,
    "memory.activation_container_bits": POSITIVE_INT,
    "memory.weights_resident": RESIDENCY,
    "memory.idle_dram": IDLE_DRAM,
}
_OPTIONAL = ("memory.idle_dram",)  # absent: DEFAULT_IDLE_DRAM, the model of earlier dse


def list_soc_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_soc(name_or_path: str | Path = "diana") -> Soc:
    """Load a preset by name (``diana``) or from a TOML file path; raise ConfigError if invalid."""
    path = _resolve(name_or_path)
    chain = _chain(path)
    document = _merged_document(chain)
    values, sources = checked_values(document, _SCHEMA, path,
                                     plain_keys=("name", "description", "default_dram",
                                                 SAME_COSTS_KEY),
                                     optional=_OPTIONAL)
    same_costs_as(path)  # a malformed list fails here, not when a study is resumed
    return dataclasses.replace(_build(document, values, sources, path),
                               sha256=_fingerprint([each for each, _ in chain]))


def preset_sha256(name_or_path: str | Path) -> str:
    """SHA-256 of a preset file; for one that ``extends`` another, of its own bytes and its
    base's fingerprint (a preset without ``extends`` keeps the plain file digest)."""
    return _fingerprint([path for path, _ in _chain(_resolve(name_or_path))])


def earlier_fingerprints(name_or_path: str | Path) -> frozenset[str]:
    """Fingerprints of earlier versions of the preset (its file's ``same_costs_as_sha256``)
    that cost every mapping as it does: a study bound to one resumes under it."""
    return same_costs_as(_resolve(name_or_path))


def _fingerprint(chain: list[Path]) -> str:
    """The digest of an ``extends`` chain (nearest first): the base file's SHA-256, then each
    file's bytes with the digest beneath it."""
    digest = hashlib.sha256(chain[-1].read_bytes()).hexdigest()
    for path in reversed(chain[:-1]):
        digest = hashlib.sha256(path.read_bytes() + b"\0" + digest.encode()).hexdigest()
    return digest


MAX_EXTENDS_DEPTH = 8  # a chain longer than this is a cycle or a mistake


def _chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The preset and the presets it extends, nearest first, each with its document (less
    its ``extends``)."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    while True:
        document = read_toml(path)
        chain.append((path, document))
        base = document.pop("extends", None)
        if base is None:
            return chain
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: 'extends' must be a preset name or a file path")
        if len(chain) > MAX_EXTENDS_DEPTH:
            raise ConfigError(f"{chain[0][0]}: 'extends' chain longer than "
                              f"{MAX_EXTENDS_DEPTH} presets (a cycle?)")
        path = _resolve(base, relative_to=path.parent)


def _merged_document(chain: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """The preset's document over the documents it extends (entries replaced whole)."""
    merged = chain[-1][1]
    for _, document in reversed(chain[:-1]):
        merged = _overlay(merged, document)
    return merged


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        is_entry = isinstance(value, dict) and "value" in value
        if isinstance(value, dict) and not is_entry and isinstance(merged.get(key), dict):
            merged[key] = _overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    text = str(name_or_path)
    if text in list_soc_presets():
        return PRESET_DIR / f"{text}.toml"
    path = Path(text)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if not path.is_file():
        known = ", ".join(list_soc_presets())
        raise ConfigError(f"unknown hardware '{text}': not a preset ({known}) nor a file")
    return path


def _build(document: dict, values: dict[str, Any], sources: dict[str, str], path: Path) -> Soc:
    def group(prefix: str) -> dict[str, Any]:
        return {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(prefix + ".")}

    analog = group("analog")
    analog["ox_unroll_choices"] = tuple(sorted(analog["ox_unroll_choices"]))
    return Soc(
        name=plain_string(document, "name", path),
        default_dram=plain_string(document, "default_dram", path),
        description=str(document.get("description", "")),
        source_path=str(path),
        clock_hz=float(values["clock_hz"]),
        digital=DigitalCore(**group("digital")),
        analog=AnalogCore(**analog),
        power=PowerModes(**group("power")),
        memory=OnChipMemory(**{**group("memory"), "weights_resident": (
            "auto" if values["memory.weights_resident"] in ("auto", True) else False)}),
        activation_bits=values["activation_bits"],
        technology_nm=values["technology_nm"],
        heuristic_min_channels_analog=values["heuristic.min_channels_analog"],
        sources=sources,
    )
