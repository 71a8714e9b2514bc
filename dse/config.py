"""``SearchConfig``: everything ``dse search`` takes, by concern, each part with its defaults
(defined once, here or in the module it belongs to) and its own validation.

Field names carry their units and are unique across the parts, so that the command line's
flat options map onto them (``SearchConfig.from_options``) and the provenance records them
flat as it always has (``SearchConfig.flat``). A field's metadata says where else it goes:
``identity`` (the study is bound to it, under that key: a rerun with the same identity
resumes the study, another one is refused) and ``probe`` (what ``dse confirm`` rebuilds the
search's probe from). ``dse.commands.search.resolve`` turns a config into the resolved
search once.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.accuracy.defaults import (
    DEFAULT_EPOCHS,
    DEFAULT_MAX_ACCURACY_DROP_PP,
    ConfirmDefaults,
    ProbeDefaults,
    check_epochs,
    check_probe_counts,
    retired_seeds_message,
)
from dse.accuracy.stats import LEVEL, check_level
from dse.accuracy.verdicts import check_margin
from dse.metrics import parse_objectives
from dse.threads import validate_threads
from hw_models.dram import DEFAULT_BER_QUANTILE, DEFAULT_VENDOR, check_quantile
from hw_models.errors import ConfigError

HEARTBEAT_INTERVAL_S = 30   # a live worker refreshes its running trial this often
GRACE_PERIOD_S = 120        # a trial silent for this long belonged to a dead worker
MAX_SEED = 2**32
# what --max-accuracy-drop bounds: the paired drop's estimate, or a one-sided 97.5 % upper
# bound on it (the upper end of its two-sided 95 % interval, at the default level)
DROP_RULES = ("mean", "upper")

_IDENTITY, _PROBE = "dse.identity", "dse.probe"


def _field(default: Any, *, identity: bool | str = False, probe: bool = False) -> Any:
    """A setting; ``identity``: part of the study's identity (under this key, or its own
    name when True); ``probe``: part of the probe settings stored in the study."""
    return dataclasses.field(default=default, metadata={_IDENTITY: identity, _PROBE: probe})


@dataclass(frozen=True)
class WorkloadConfig:
    """The network, its data and its baseline checkpoint."""

    network: str = _field("resnet8", identity=True, probe=True)
    dataset: str = _field("digits", identity=True, probe=True)
    data_dir: str | None = _field(None, probe=True)
    download: bool = _field(False)
    checkpoint: str | None = _field(None, identity=True, probe=True)
    epochs: int | None = _field(None, probe=True)  # None: the dataset's default

    def validate(self) -> None:
        if self.epochs is not None:
            check_epochs(self.epochs)

    def resolved_epochs(self) -> int:
        return resolved_epochs(self.dataset, self.epochs)


@dataclass(frozen=True)
class HardwareConfig:
    """The SoC, the DRAM device and its error curves, and its partitions."""

    hw: str = _field("diana", identity=True)
    dram: str | None = _field(None)            # None: the SoC's default device
    vendor: str = _field(DEFAULT_VENDOR, identity=True)
    ber_quantile: str = _field(DEFAULT_BER_QUANTILE, identity=True)  # which DIMM
    partitions: int = _field(1, identity=True)  # equal DRAM partitions (1: whole device)

    def validate(self) -> None:
        check_quantile(self.ber_quantile)


@dataclass(frozen=True)
class LimitsConfig:
    """What is optimised and what must hold."""

    objectives: str = _field("accuracy,latency,energy", identity=True)
    # below all-digital at nominal DRAM
    max_accuracy_drop_pp: float | None = _field(DEFAULT_MAX_ACCURACY_DROP_PP,
                                                identity="max_accuracy_drop")
    latency_budget_s: float | None = _field(None, identity="latency_budget")
    energy_budget_j: float | None = _field(None, identity="energy_budget")
    drop_rule: str = _field("mean", identity=True)  # what --max-accuracy-drop bounds
    # the equivalence tests' margin in pp (None: the limit, else 1 pp); reporting only
    equivalence_margin_pp: float | None = _field(None)

    def validate(self) -> tuple[str, ...]:
        """Check the limits; return the objectives."""
        if self.drop_rule not in DROP_RULES:
            raise ConfigError(f"--drop-rule must be one of {', '.join(DROP_RULES)} (got "
                              f"'{self.drop_rule}')")
        for name, value in (("--latency-budget", self.latency_budget_s),
                            ("--energy-budget", self.energy_budget_j),
                            ("--max-accuracy-drop", self.max_accuracy_drop_pp)):
            if value is not None and not value >= 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.equivalence_margin_pp is not None:
            check_margin(self.equivalence_margin_pp)
        return parse_objectives(self.objectives)


MAX_PROBE_BATCH = 4096  # far beyond any memory: a typo, not a setting


def check_probe_batch(batch: int | None) -> None:
    """--probe-batch: None (from free memory) or 1..MAX_PROBE_BATCH."""
    if batch is not None and not 1 <= batch <= MAX_PROBE_BATCH:
        raise ConfigError(f"--probe-batch must be between 1 and {MAX_PROBE_BATCH} (got "
                          f"{batch}); leave it out to size it from free memory")


@dataclass(frozen=True)
class AccuracyConfig:
    """How each candidate's accuracy is measured: the probe (or the user's estimator)."""

    probe_steps: int = _field(ProbeDefaults.steps, identity=True, probe=True)
    # the probe's fine-tune in epochs of the train split instead of probe_steps (resolving
    # the search converts it; it then takes the place of probe_steps)
    finetune_epochs: float | None = _field(None)
    finetune_seeds: int = _field(ProbeDefaults.finetune_seeds, identity=True, probe=True)
    error_seeds: int = _field(ProbeDefaults.error_seeds, identity=True, probe=True)
    probe_seeds: int | None = _field(None)     # retired: split into the two above
    error_model: int = _field(ProbeDefaults.error_model, identity=True, probe=True)
    interval_level: float = _field(LEVEL, identity=True, probe=True)  # every interval's
    # package.module:function replacing the probe
    accuracy_estimator: str | None = _field(None, identity=True, probe=True)
    device: str = _field("auto")               # the torch device: auto, cpu, cuda
    # fine-tunes the probe stacks into one model (None: as many as free memory allows); the
    # results are the same at any value, so it is no part of the study's identity
    probe_batch: int | None = _field(None)

    def validate(self) -> None:
        check_probe_batch(self.probe_batch)
        if self.probe_seeds is not None:
            raise ConfigError(retired_seeds_message("--probe-seeds", "--finetune-seeds",
                                                    "--error-seeds"))
        check_probe_counts(self.probe_steps, {"--finetune-seeds": self.finetune_seeds,
                                              "--error-seeds": self.error_seeds},
                           steps_option="--probe-steps")
        if self.finetune_epochs is not None and not (math.isfinite(self.finetune_epochs)
                                                     and self.finetune_epochs > 0):
            raise ConfigError(f"--finetune-epochs must be > 0 (got {self.finetune_epochs:g})")
        check_level(self.interval_level)


@dataclass(frozen=True)
class ConfirmationConfig:
    """The test-split confirmation at the end of a search."""

    confirm: bool = _field(True)
    confirm_steps: int | None = _field(None)   # None: steps_factor x the probe's steps
    confirm_seeds: int = _field(ConfirmDefaults.finetune_seeds)

    def steps(self, probe_steps: int) -> int:
        """--confirm-steps, else 10x the probe's steps."""
        return (ConfirmDefaults.steps_factor * probe_steps if self.confirm_steps is None
                else self.confirm_steps)

    def validate(self, probe_steps: int) -> None:
        if self.confirm_steps is not None and self.confirm_steps < 1:
            raise ConfigError(f"--confirm-steps must be >= 1 (got {self.confirm_steps})")
        check_probe_counts(self.steps(probe_steps), {"--confirm-seeds": self.confirm_seeds},
                           steps_option="--confirm-steps")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the study lives and how this worker joins it."""

    study: str | None = _field(None)
    storage: str | None = _field(None)
    results_dir: str = _field("results")
    threads: int | None = _field(None)        # None: this host's CPUs shared among workers
    trials_per_worker: int | None = _field(None)  # this worker's own count, not the total
    worker: int | None = _field(None)         # worker index for its seed stream
    heartbeat_interval_s: int = _field(HEARTBEAT_INTERVAL_S)
    grace_period_s: int = _field(GRACE_PERIOD_S)

    def validate(self) -> None:
        check_storage(self.storage)
        if self.study is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                                                       self.study):
            raise ConfigError(f"study name '{self.study}' may hold letters, digits, '_', '.' "
                              "and '-' only (it names a folder under --results-dir)")
        if self.trials_per_worker is not None and self.trials_per_worker < 1:
            raise ConfigError("--trials-per-worker must be >= 1")
        if not 0 < self.heartbeat_interval_s < self.grace_period_s:
            raise ConfigError("need 0 < --heartbeat-interval < --grace-period")
        validate_threads(self.threads)

    def index(self) -> int:
        """--worker, else the scheduler's task index (SLURM, PBS), else 0."""
        if self.worker is not None:
            return self.worker
        for variable in ("SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "PBS_ARRAYID"):
            if os.environ.get(variable, "").isdigit():
                return int(os.environ[variable])
        return 0


@dataclass(frozen=True)
class EngineConfig:
    """What proposes candidates, how many, from which seed."""

    engine: str = _field("optuna")            # a name in the registry (dse.engines)
    engine_settings: Any = _field(None)       # that engine's settings (None: its defaults)
    trials: int = _field(50)
    seed: int = _field(0, probe=True)         # the sampler's and the probe's

    def validate(self) -> None:
        if self.trials < 1:
            raise ConfigError("--trials must be >= 1")


PARTS = {"workload": WorkloadConfig, "hardware": HardwareConfig, "limits": LimitsConfig,
         "accuracy": AccuracyConfig, "confirmation": ConfirmationConfig,
         "cluster": ClusterConfig, "search": EngineConfig}


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``dse search`` takes, by concern (units in the field names)."""

    workload: WorkloadConfig = dataclasses.field(default_factory=WorkloadConfig)
    hardware: HardwareConfig = dataclasses.field(default_factory=HardwareConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)
    accuracy: AccuracyConfig = dataclasses.field(default_factory=AccuracyConfig)
    confirmation: ConfirmationConfig = dataclasses.field(default_factory=ConfirmationConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    search: EngineConfig = dataclasses.field(default_factory=EngineConfig)

    @classmethod
    def from_options(cls, **options: Any) -> SearchConfig:
        """The config from flat settings by field name (the command line's options); an
        unknown name is a TypeError, as a dataclass's constructor would raise."""
        unknown = set(options) - set(OWNER)
        if unknown:
            raise TypeError(f"SearchConfig has no setting {', '.join(sorted(unknown))}")
        parts = {part: kind(**{name: value for name, value in options.items()
                               if OWNER[name] == part})
                 for part, kind in PARTS.items()}
        return cls(**parts)

    def replace(self, **options: Any) -> SearchConfig:
        """A copy with flat settings changed (by field name)."""
        changed: dict[str, dict[str, Any]] = {}
        for name, value in options.items():
            if name not in OWNER:
                raise TypeError(f"SearchConfig has no setting {name}")
            changed.setdefault(OWNER[name], {})[name] = value
        return dataclasses.replace(self, **{part: dataclasses.replace(getattr(self, part),
                                                                      **values)
                                            for part, values in changed.items()})

    def flat(self) -> dict[str, Any]:
        """Every setting by its field name (config.json's ``config``; an engine's settings
        as a dict)."""
        return {field.name: _plain(getattr(getattr(self, part), field.name))
                for part in PARTS for field in dataclasses.fields(PARTS[part])}

    def validate(self) -> tuple[str, ...]:
        """Check every setting that needs no file or library; return the objectives."""
        self.cluster.validate()
        self.search.validate()
        if self.search.seed < 0 or (self.cluster.worker or 0) < 0 \
                or not 0 <= self.worker_seed() < MAX_SEED:
            raise ConfigError("--seed and --worker must be >= 0 (and the seed below 2**32)")
        self.accuracy.validate()
        self.confirmation.validate(self.accuracy.probe_steps)
        self.hardware.validate()
        self.workload.validate()
        return self.limits.validate()

    def worker_seed(self) -> int:
        """Each worker samples from its own stream; worker 0 keeps the plain --seed."""
        return self.search.seed + 1_000_003 * self.cluster.index()

    def identity(self, dram: str, *, hw_sha256: str | None = None,
                 dram_sha256: str | None = None,
                 checkpoint_sha256: str | None = None,
                 data_sha256: str | None = None,
                 ber_model_sha256: str | None = None,
                 quantizer_version: str | None = None) -> dict[str, Any]:
        """The settings a study is bound to: the fields marked ``identity``, the resolved
        DRAM device and baseline epochs, and the presets, checkpoint and data by their
        contents (the SHA-256 of the preset files, or of an ``extends`` chain; the digest of
        the checkpoint's tensors, ``networks.train.tensors_sha256``, and of the data the
        probe reads, ``networks.data_identity``, None when no checkpoint or data is used),
        so that an edited file is noticed and the same file under another name is not; with
        DRAM, the error model too (``hw_models.dram.ber_model_sha256``: its BER tables and
        version), so that a study never mixes trials costed under two error models; with the
        probe, its quantisers (``networks.quantize.QUANTIZER_VERSION``), so that a study
        never mixes accuracies measured under two. The
        keys are those studies have always stored (``max_accuracy_drop`` in pp, budgets in s
        and J); a study made before the probe had two kinds of seeds (``probe_seeds``) is
        refused, since its accuracies mean something else."""
        found = self._marked(_IDENTITY)
        return {**found, "dram": dram, "epochs": self.workload.resolved_epochs(),
                "hw_sha256": hw_sha256, "dram_sha256": dram_sha256,
                "checkpoint_sha256": checkpoint_sha256, "data_sha256": data_sha256,
                "ber_model_sha256": ber_model_sha256,
                # only with the probe: a study without it is compared as before
                **({} if quantizer_version is None else
                   {"quantizer_version": quantizer_version})}

    def probe_settings(self) -> dict[str, Any]:
        """What ``dse confirm`` needs to rebuild the search's probe (stored in the study)."""
        return self._marked(_PROBE)

    def _marked(self, key: str) -> dict[str, Any]:
        found = {}
        for part in PARTS:
            for field in dataclasses.fields(PARTS[part]):
                mark = field.metadata.get(key)
                if mark:
                    found[mark if isinstance(mark, str) else field.name] = getattr(
                        getattr(self, part), field.name)
        return found


OWNER = {field.name: part for part, kind in PARTS.items()
         for field in dataclasses.fields(kind)}
assert len(OWNER) == sum(len(dataclasses.fields(kind)) for kind in PARTS.values()), \
    "a setting's name is in two parts of SearchConfig"


def default_settings() -> dict[str, Any]:
    """Every setting's default by its field name (the command line's defaults)."""
    return SearchConfig().flat()


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(
        value, type) else value


def check_storage(storage: str | None) -> None:
    """``--storage ""`` (an unset ``$DB_URL``) is refused: taken as "not given", every
    worker of a cluster would search its own private SQLite study."""
    if storage is not None and not storage.strip():
        raise ConfigError("--storage is empty (is the variable holding the URL unset?): give "
                          "a storage URL, or leave --storage out")


def steps_for_epochs(epochs: float, train_images: int) -> int:
    """Fine-tune steps that process ``epochs`` passes over ``train_images`` images in the
    probe's batches (at least one step)."""
    return max(1, math.ceil(epochs * train_images / ProbeDefaults.batch_size))


def resolved_epochs(dataset: str, epochs: int | None) -> int:
    """--epochs, else the dataset's default."""
    return DEFAULT_EPOCHS.get(dataset, DEFAULT_EPOCHS["*"]) if epochs is None else epochs


def default_study_name(network: str, dataset: str, hw: str, dram: str) -> str:
    """``NETWORK-DATASET-HW-DRAM``, preset files by their stem, safe as a folder name."""
    parts = [Path(part).stem if part.endswith(".toml") else part
             for part in (network, dataset, hw, dram)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def sha256_of(path: str | Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
