"""What each command reports: one frozen record per command. Its text (``text.py``) and its
``--json`` (``to_json``) are both made from it, so the two cannot say different things.

Field names are the JSON keys, a unit in each name that has one; ``docs/json.md`` gives
every key its unit and meaning (a test holds the two together). Nested records that have
a home elsewhere (a trial's metrics, a layer's row, a front point) stay plain dicts. A
report made from another package's dict (``Report(**record)``) fails on a key it does not
declare, so the schema cannot grow unnoticed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Report:
    """A command's report; ``to_json`` is what ``--json`` prints."""

    def to_json(self) -> dict[str, Any]:
        """The fields by name, in order (JSON-ready: numbers, text, lists and dicts)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


# ---- catalogue: dse networks, layers, cost, dram ---------------------------------------

@dataclass(frozen=True, kw_only=True)
class NetworkRow(Report):
    """One zoo network on its reference dataset."""

    network: str
    dataset: str
    input_shape: list[int]          # (channels, height, width)
    num_classes: int
    parameters: int
    macs: int                       # multiply-accumulates per inference
    layers: int                     # layers in the layer table (convolutions, linear)
    description: str


@dataclass(frozen=True)
class NetworkCatalogue:
    """``dse networks``: a list, one row per zoo network."""

    networks: tuple[NetworkRow, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.networks]


@dataclass(frozen=True, kw_only=True)
class LayersReport(Report):
    """``dse layers``: a network's layer table on a dataset."""

    network: str
    dataset: str
    input_shape: list[int]
    num_classes: int
    layers: list[dict[str, Any]]    # the layer table's rows (``catalogue.LAYER_COLUMNS``)


@dataclass(frozen=True, kw_only=True)
class CostReport(Report):
    """``dse cost``: one mapping's latency and energy, per layer and in total."""

    network: str
    dataset: str
    hw: str
    mapping: str
    dram: dict[str, Any] | None     # device, error curves, partitions; None: compute only
    clock_hz: float
    layers: list[dict[str, Any]]
    total: dict[str, Any]
    note: str


@dataclass(frozen=True, kw_only=True)
class DramPointReport(Report):
    """``dse dram``: one operating point of a DRAM device
    (``hw_models.dram.operating_point``)."""

    device: str
    vendor: str
    ber_quantile: str
    vdd_v: float
    trcd_ns: float
    vdd_nominal_v: float
    trcd_nominal_ns: float
    ber_vdd: float                  # bit error rates: fractions of the bits read
    ber_trcd: float                 # added beyond the VDD curve's test tRCD
    ber: float
    ber_trcd_measured: float        # DIVA-DRAM's own BER at this tRCD
    vdd_test_trcd_ns: float         # the VDD curve's test tRCD on this device
    vdd_floor_v: dict[str, float]   # quantile -> lowest usable VDD for the vendor
    ber_vdd_dimms: int
    ber_trcd_dimms: int
    vdd_reference_v: float
    trcd_reference_ns: float
    energy_scale: float             # dimensionless, 1 at nominal VDD
    row_miss_ns: float
    ber_transfer: str
    trcd_error_model: dict[str, Any] | None  # region fit (hw_models.dram.trcd_error_model)


@dataclass(frozen=True, kw_only=True)
class DramDeviceRow(Report):
    """One DRAM preset with its nominal point and allowed ranges."""

    device: str
    description: str
    vdd_nominal_v: float
    trcd_nominal_ns: float
    vdd_min_v: dict[str, float]     # vendor -> lowest usable VDD at the shown quantile
    vdd_floor_v: dict[str, dict[str, float]]  # vendor -> quantile -> lowest usable VDD
    ber_quantile: str               # the quantile of vdd_min_v
    trcd_min_ns: float
    trcd_lowest_characterised_ns: float
    bandwidth_bytes_per_s: float
    capacity_bytes: int
    partition_unit: str
    partition_units: int
    ber_transfer: str
    default_vendor: str
    default_ber_quantile: str


@dataclass(frozen=True)
class DramCatalogue:
    """``dse dram --list``: a list, one row per DRAM preset."""

    devices: tuple[DramDeviceRow, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.devices]


# ---- training and probing: dse train, probe ---------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TrainReport(Report):
    """``dse train``: the baseline checkpoint found or trained."""

    network: str
    dataset: str
    checkpoint: str
    trained: bool
    tensors_sha256: str
    tensors_verified: bool
    val_accuracy: float             # fractions
    float_val_accuracy: float
    train_config: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ProbeReport(Report):
    """``dse probe``: one mapping's accuracy at one DRAM point, paired with the all-digital
    baseline. Accuracies are fractions, changes percentage points (negative: worse)."""

    network: str
    dataset: str
    mapping: str
    dram: dict[str, Any] | None
    max_weight_ber: float
    max_activation_ber: float
    error_model: int
    accuracy: float
    accuracy_std: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    baseline_accuracy: float
    baseline_accuracy_ci_low: float
    baseline_accuracy_ci_high: float
    accuracy_change_pp: float
    accuracy_change_ci_low_pp: float
    accuracy_change_ci_high_pp: float
    images: int | None
    split: str
    steps: int
    finetune_seeds: int
    error_seeds: int
    interval_level: float
    seconds: float
    cached: bool


# ---- reading a study: dse show, status, tolerance, repair-journal -----------------------

@dataclass(frozen=True, kw_only=True)
class ShowReport(Report):
    """``dse show``: one complete trial in full (``dse.results.details.trial_details``)."""

    study: str
    trial: int
    baseline: str                   # the baseline's name, "" for a searched trial
    engine: str                     # what proposed it, a lighter run named: "odimo[10 ep]"
    delivered_weights: dict[str, Any] | None  # weights its engine trained (None: checkpoint)
    network: str
    dataset: str
    dram: str
    partitions: list[dict[str, Any]]
    metrics: dict[str, Any]
    constraints: dict[str, float]
    test: dict[str, Any] | None
    interval_level: float
    test_accuracy: float | None
    layers: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class StatusReport(Report):
    """``dse status``: trials by state and by worker, the running ones, the front's size."""

    study: str
    storage: str
    trials: dict[str, int]
    complete_by_worker: dict[str, int]
    threads_by_worker: dict[str, int]
    running: list[dict[str, Any]]
    front_size: int
    confirmed: int
    confirm_settings: dict[str, Any] | None
    last_completion: str | None     # ISO 8601 local time


@dataclass(frozen=True, kw_only=True)
class ToleranceReport(Report):
    """``dse tolerance``: what EDEN characterised, per split."""

    study: str
    splits: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class RepairReport(Report):
    """``dse repair-journal`` (``dse.storage.journal.repair_journal``)."""

    journal: str
    changed: bool
    backup: str | None
    removed_bytes: int
    torn_lines: list[dict[str, int]]
    salvaged_records: int
    completed_last_line: bool
    records: int
    studies: list[dict[str, Any]]


# ---- a study's results: dse pareto, search, confirm -------------------------------------

# present only when the study has accuracy among its objectives and a complete trial
ACCURACY_KEYS = ("method_metrics", "selected_on", "reported_on", "equivalence_margin_pp",
                 "holm_tests", "confirmed", "confirm_settings", "validation_to_test_shift")
# present only when there is something to say
NOTE_KEYS = ("claims_note", "front_note", "unusable_note", "model_agreement")


@dataclass(frozen=True, kw_only=True)
class StudySummary(Report):
    """A study's summary as ``summary.json`` holds it (``dse.results.outputs.write_outputs``).

    The accuracy keys (``ACCURACY_KEYS``) are printed only for a study with accuracy among
    its objectives and a complete trial, the notes only when there is one."""

    study: str
    objectives: list[str]
    trials: dict[str, int]          # trial state -> count
    front: list[dict[str, Any]]
    robust_front_size: int
    baselines: list[dict[str, Any]]
    interval_level: float
    drop_rule: str
    claims: list[dict[str, Any]]
    method_metrics: list[dict[str, Any]] | None = None
    selected_on: str | None = None          # the split the claimed points are chosen on
    reported_on: str | None = None          # the split their accuracy changes come from
    equivalence_margin_pp: float | None = None
    holm_tests: int | None = None           # the tests the verdicts are Holm-adjusted over
    confirmed: int | None = None
    confirm_settings: dict[str, Any] | None = None
    validation_to_test_shift: dict[str, Any] | None = None
    claims_note: str | None = None
    dram_notes: list[dict[str, Any]]
    front_note: str | None = None
    unusable_note: str | None = None        # trials below the usable VDD floor, left out
    model_agreement: dict[str, Any] | None = None  # an engine's drop model against the probe
    headline: list[dict[str, Any]]
    next_commands: list[dict[str, str]]
    plots: list[str]
    eden_files: list[str]
    report: str

    def to_json(self) -> dict[str, Any]:
        document = super().to_json()
        absent = [key for key in NOTE_KEYS if document[key] is None]
        if self.method_metrics is None:
            absent += ACCURACY_KEYS
        return {key: value for key, value in document.items() if key not in absent}


@dataclass(frozen=True, kw_only=True)
class StudyReport(StudySummary):
    """``dse pareto``: the study's summary and where its files and the study are."""

    results_dir: str
    storage: str                    # the storage URL, password masked


@dataclass(frozen=True, kw_only=True)
class ConfirmationReport(StudySummary):
    """``dse search`` and ``dse confirm``: the study's summary, what this run confirmed on
    the test split (points, measured, already, left_to_others; None: nothing to confirm
    or ``--no-confirm``), and where its files and the study are."""

    confirmation: dict[str, int] | None
    results_dir: str
    storage: str
