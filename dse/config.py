"""``SearchConfig``: everything ``dse search`` takes, its validation and the study identity.

Field names carry their units. The CLI reads its defaults from here. ``identity`` is what a
study is bound to: a rerun with the same identity resumes the study, another one is refused.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.accuracy.defaults import (
    DEFAULT_EPOCHS,
    ConfirmDefaults,
    ProbeDefaults,
    check_epochs,
    check_probe_counts,
    retired_seeds_message,
)
from dse.accuracy.stats import check_level
from dse.metrics import parse_objectives
from dse.threads import validate_threads
from hw_models.dram import DEFAULT_BER_QUANTILE, DEFAULT_VENDOR, check_quantile
from hw_models.errors import ConfigError
from hw_models.soc import preset_sha256

HEARTBEAT_INTERVAL_S = 30   # a live worker refreshes its running trial this often
GRACE_PERIOD_S = 120        # a trial silent for this long belonged to a dead worker
MAX_SEED = 2**32


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``dse search`` takes (units in the field names)."""

    network: str = "resnet8"
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    hw: str = "diana"
    dram: str | None = None                   # None: the SoC's default device
    vendor: str = DEFAULT_VENDOR
    ber_quantile: str = DEFAULT_BER_QUANTILE   # which DIMM of the vendor's population
    partitions: int = 1                       # equal DRAM partitions (1: whole device)
    objectives: str = "accuracy,latency,energy"
    max_accuracy_drop_pp: float | None = 1.0  # below all-digital at nominal DRAM
    latency_budget_s: float | None = None
    energy_budget_j: float | None = None
    trials: int = 50
    engine: str = "optuna"                    # a name in the registry (dse.engines)
    engine_settings: Any = None               # that engine's settings (None: its defaults)
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    results_dir: str = "results"
    device: str = "auto"
    threads: int | None = None                # None: this host's CPUs shared among workers
    checkpoint: str | None = None
    epochs: int | None = None
    probe_steps: int = ProbeDefaults.steps
    finetune_epochs: float | None = None      # the probe's fine-tune in epochs of the train
    # split instead of probe_steps (prepare() converts; it then takes the place of
    # probe_steps)
    finetune_seeds: int = ProbeDefaults.finetune_seeds
    error_seeds: int = ProbeDefaults.error_seeds
    probe_seeds: int | None = None            # retired: split into the two above
    error_model: int = ProbeDefaults.error_model
    drop_rule: str = "mean"                   # mean | upper: what --max-accuracy-drop bounds
    interval_level: float = 0.95              # coverage of every accuracy interval
    confirm: bool = True                      # confirm the front on the test split at the end
    confirm_steps: int | None = None          # None: ConfirmDefaults.steps_factor x probe_steps
    confirm_seeds: int = ConfirmDefaults.finetune_seeds
    accuracy_estimator: str | None = None     # package.module:function replacing the probe
    trials_per_worker: int | None = None      # this worker's own count instead of the total
    worker: int | None = None                 # worker index for its seed stream
    heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S
    grace_period_s: int = GRACE_PERIOD_S

    def identity(self, dram: str, *, hw_path: str | Path | None = None,
                 dram_path: str | Path | None = None,
                 checkpoint_sha256: str | None = None) -> dict[str, Any]:
        """The settings a study is bound to; the hardware and DRAM presets also by the
        SHA-256 of their files, so that an edited file is noticed and the same file under
        another name (a preset by its path) is not; the baseline checkpoint likewise by the
        digest of its tensors (``networks.train.tensors_sha256``; None when no checkpoint is
        used), whether it is ``--checkpoint`` or the cached one. The other keys are those
        studies have always stored (``max_accuracy_drop`` in pp, budgets in s and J); a
        study made before the probe had two kinds of seeds (``probe_seeds``) is refused,
        since its accuracies mean something else."""
        return {"network": self.network, "dataset": self.dataset, "hw": self.hw,
                "vendor": self.vendor, "ber_quantile": self.ber_quantile,
                "partitions": self.partitions, "objectives": self.objectives,
                "max_accuracy_drop": self.max_accuracy_drop_pp,
                "latency_budget": self.latency_budget_s,
                "energy_budget": self.energy_budget_j,
                "checkpoint": self.checkpoint, "probe_steps": self.probe_steps,
                "finetune_seeds": self.finetune_seeds, "error_seeds": self.error_seeds,
                "drop_rule": self.drop_rule, "interval_level": self.interval_level,
                "error_model": self.error_model,
                "accuracy_estimator": self.accuracy_estimator, "dram": dram,
                "epochs": resolved_epochs(self.dataset, self.epochs),
                "hw_sha256": None if hw_path is None else preset_sha256(hw_path),
                "dram_sha256": sha256_of(dram_path),
                "checkpoint_sha256": checkpoint_sha256}


def check_storage(storage: str | None) -> None:
    """``--storage ""`` (an unset ``$DB_URL``) is refused: taken as "not given", every
    worker of a cluster would search its own private SQLite study."""
    if storage is not None and not storage.strip():
        raise ConfigError("--storage is empty (is the variable holding the URL unset?): give "
                          "a storage URL, or leave --storage out")


def validate(config: SearchConfig) -> tuple[str, ...]:
    """Check every setting that needs no file or library; return the objectives."""
    check_storage(config.storage)
    if config.trials < 1:
        raise ConfigError("--trials must be >= 1")
    if config.seed < 0 or (config.worker or 0) < 0 or not 0 <= worker_seed(config) < MAX_SEED:
        raise ConfigError("--seed and --worker must be >= 0 (and the seed below 2**32)")
    if config.study is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
                                                     config.study):
        raise ConfigError(f"study name '{config.study}' may hold letters, digits, '_', '.' "
                          "and '-' only (it names a folder under --results-dir)")
    if config.trials_per_worker is not None and config.trials_per_worker < 1:
        raise ConfigError("--trials-per-worker must be >= 1")
    if not 0 < config.heartbeat_interval_s < config.grace_period_s:
        raise ConfigError("need 0 < --heartbeat-interval < --grace-period")
    if config.probe_seeds is not None:
        raise ConfigError(retired_seeds_message("--probe-seeds", "--finetune-seeds",
                                                "--error-seeds"))
    check_probe_counts(config.probe_steps, {"--finetune-seeds": config.finetune_seeds,
                                            "--error-seeds": config.error_seeds},
                       steps_option="--probe-steps")
    if config.finetune_epochs is not None and not (math.isfinite(config.finetune_epochs)
                                                   and config.finetune_epochs > 0):
        raise ConfigError(f"--finetune-epochs must be > 0 (got {config.finetune_epochs:g})")
    if config.confirm_steps is not None and config.confirm_steps < 1:
        raise ConfigError(f"--confirm-steps must be >= 1 (got {config.confirm_steps})")
    check_probe_counts(resolved_confirm_steps(config),
                       {"--confirm-seeds": config.confirm_seeds}, steps_option="--confirm-steps")
    check_level(config.interval_level)
    check_quantile(config.ber_quantile)
    if config.drop_rule not in DROP_RULES:
        raise ConfigError(f"--drop-rule must be one of {', '.join(DROP_RULES)} (got "
                          f"'{config.drop_rule}')")
    validate_threads(config.threads)
    if config.epochs is not None:
        check_epochs(config.epochs)
    for name, value in (("--latency-budget", config.latency_budget_s),
                        ("--energy-budget", config.energy_budget_j),
                        ("--max-accuracy-drop", config.max_accuracy_drop_pp)):
        if value is not None and not value >= 0:
            raise ConfigError(f"{name} must be >= 0")
    return parse_objectives(config.objectives)


DROP_RULES = ("mean", "upper")  # the paired drop's point estimate, or its interval's upper end


def steps_for_epochs(epochs: float, train_images: int) -> int:
    """Fine-tune steps that process ``epochs`` passes over ``train_images`` images in the
    probe's batches (at least one step)."""
    return max(1, math.ceil(epochs * train_images / ProbeDefaults.batch_size))


def resolved_confirm_steps(config: SearchConfig) -> int:
    """--confirm-steps, else 10x the probe's steps."""
    return (ConfirmDefaults.steps_factor * config.probe_steps if config.confirm_steps is None
            else config.confirm_steps)


def resolved_epochs(dataset: str, epochs: int | None) -> int:
    """--epochs, else the dataset's default."""
    return DEFAULT_EPOCHS.get(dataset, DEFAULT_EPOCHS["*"]) if epochs is None else epochs


def worker_index(config: SearchConfig) -> int:
    """--worker, else the scheduler's task index (SLURM, PBS), else 0."""
    if config.worker is not None:
        return config.worker
    for variable in ("SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "PBS_ARRAYID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def worker_seed(config: SearchConfig) -> int:
    """Each worker samples from its own stream; worker 0 keeps the plain --seed."""
    return config.seed + 1_000_003 * worker_index(config)


def default_study_name(network: str, dataset: str, hw: str, dram: str) -> str:
    """``NETWORK-DATASET-HW-DRAM``, preset files by their stem, safe as a folder name."""
    parts = [Path(part).stem if part.endswith(".toml") else part
             for part in (network, dataset, hw, dram)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def sha256_of(path: str | Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
