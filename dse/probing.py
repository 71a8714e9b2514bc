"""``dse train`` and ``dse probe``: checkpoints on demand and one candidate's accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dse.reports import CostRequest, dram_setting
from dse.workload import load_workload
from hw_models import ConfigError, load_soc
from hw_models.error_models import ErrorModelParams
from hw_models.mapping import resolve_mapping
from hw_models.system import system_cost
from networks.datasets import load_dataset
from networks.probe import ProbeCandidate, ProbeConfig, ProbeSetup, probe
from networks.train import (Checkpoint, Progress, TrainConfig, checkpoint_path, load_checkpoint,
                            save_checkpoint, train_baseline)

DEFAULT_EPOCHS = {"digits": 30, "synthetic": 8, "cifar10": 30}
DEFAULT_ROW_BYTES = 2048  # without a DRAM device (errors are all zero then anyway)


@dataclass(frozen=True)
class DataRequest:
    network: str
    dataset: str
    data_dir: str | None = None
    download: bool = False
    results_dir: str = "results"
    checkpoint: str | None = None
    epochs: int | None = None
    device: str = "auto"


def resolve_device(device: str) -> str:
    """'auto' picks CUDA when present; asking for CUDA without it is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was given but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{device}' (cpu, cuda or auto)")
    return device


def resolved_epochs(dataset: str, epochs: int | None) -> int:
    """--epochs, else the dataset's default."""
    return DEFAULT_EPOCHS.get(dataset, TrainConfig.epochs) if epochs is None else epochs


def train_config(request: DataRequest) -> TrainConfig:
    epochs = resolved_epochs(request.dataset, request.epochs)
    if epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    return TrainConfig(epochs=epochs)


def obtain_checkpoint(request: DataRequest, *, progress: Progress | None = None,
                      retrain: bool = False) -> tuple[Checkpoint, Path, bool]:
    """The user's checkpoint, the cached one, or a freshly trained one; with its file and
    whether it was trained now."""
    config = train_config(request)  # checks the settings before any work
    device = resolve_device(request.device)  # --device cuda without CUDA: an error, always
    bundle = load_dataset(request.dataset, request.data_dir, download=request.download)
    if request.checkpoint is not None:
        path = Path(request.checkpoint)
        return load_checkpoint(path, network=request.network, spec=bundle.spec), path, False
    path = checkpoint_path(Path(request.results_dir), request.network, request.dataset, config)
    if path.is_file() and not retrain:
        return load_checkpoint(path, network=request.network, spec=bundle.spec), path, False
    checkpoint = train_baseline(request.network, bundle, config, device=device,
                                progress=progress)
    return save_checkpoint(checkpoint, path), path, True


def train_report(request: DataRequest, *, progress: Progress | None = None,
                 retrain: bool = False) -> dict[str, Any]:
    checkpoint, path, trained = obtain_checkpoint(request, progress=progress, retrain=retrain)
    return {"network": checkpoint.network, "dataset": checkpoint.dataset,
            "checkpoint": str(path), "trained": trained,
            "val_accuracy": checkpoint.val_accuracy,
            "float_val_accuracy": checkpoint.float_val_accuracy,
            "train_config": checkpoint.train_config}


@dataclass(frozen=True)
class ProbeRequest:
    data: DataRequest
    cost: CostRequest
    config: ProbeConfig


def probe_setup(request: ProbeRequest, checkpoint: Checkpoint, dram) -> ProbeSetup:
    device = resolve_device(request.data.device)
    bundle = load_dataset(request.data.dataset, request.data.data_dir)
    return ProbeSetup(
        checkpoint=checkpoint, bundle=bundle, config=request.config,
        error_params=dram.device.error_params if dram else ErrorModelParams(),
        row_bytes=dram.device.row_bytes if dram else DEFAULT_ROW_BYTES, device=device,
        cache_dir=Path(request.data.results_dir) / "probe_cache")


def probe_report(request: ProbeRequest, *, progress: Progress | None = None) -> dict[str, Any]:
    """Accuracy of one mapping at one DRAM operating point, with the all-digital baseline."""
    cost_request = request.cost
    soc = load_soc(cost_request.hw)
    table = load_workload(cost_request.network, cost_request.dataset).table
    n_analog = resolve_mapping(cost_request.mapping, table, soc)
    dram = dram_setting(cost_request, table, soc)
    cost = system_cost(table, soc, n_analog, dram)
    checkpoint, _, _ = obtain_checkpoint(request.data, progress=progress)
    setup = probe_setup(request, checkpoint, dram)
    candidate = ProbeCandidate(n_analog=tuple(int(n) for n in n_analog),
                               weight_ber=tuple(float(b) for b in cost.weight_ber),
                               activation_ber=tuple(float(b) for b in cost.activation_ber))
    result = probe(candidate, setup=setup)
    zeros = tuple(0.0 for _ in n_analog)
    baseline = probe(ProbeCandidate(tuple(0 for _ in n_analog), zeros, zeros), setup=setup)
    return {
        "network": cost_request.network, "dataset": request.data.dataset,
        "mapping": cost_request.mapping,
        "dram": None if dram is None else {"device": dram.device.name, "vendor": dram.vendor,
                                           "layout": dram.placement.layout},
        "max_weight_ber": float(np.max(cost.weight_ber)),
        "max_activation_ber": float(np.max(cost.activation_ber)),
        "error_model": request.config.error_model,
        "accuracy": result.accuracy_mean, "accuracy_std": result.accuracy_std,
        "baseline_accuracy": baseline.accuracy_mean,
        "steps": request.config.steps, "seeds": request.config.seeds,
        "seconds": result.seconds, "cached": result.cached,
    }
