"""The fine-tune probe as an accuracy estimator (torch): checkpoints on demand, the probe's
fixed setup, and the estimator a search calls."""
from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dse.accuracy import AccuracyEstimator, AccuracyModel, ProbeCandidate, ProbeResult, error_free
from dse.accuracy.defaults import check_epochs
from dse.config import resolved_epochs
from dse.results.files import check_writable_folder
from hw_models import ConfigError
from hw_models.dram import DramDevice
from hw_models.error_models import ErrorModelParams
from networks.datasets import load_dataset
from networks.finetune import ProbeConfig, ProbeSetup, StepProgress, probe
from networks.train import (
    Checkpoint,
    Progress,
    TrainConfig,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    train_baseline,
)

DEFAULT_ROW_BYTES = 2048  # without a DRAM device (errors are all zero then anyway)


@dataclass(frozen=True)
class DataRequest:
    """Where the data and the baseline checkpoint come from."""

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


def train_config(request: DataRequest) -> TrainConfig:
    epochs = resolved_epochs(request.dataset, request.epochs)
    check_epochs(epochs)
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
        return load_checkpoint(path, network=request.network, spec=bundle.spec,
                               remedy=retrain_remedy(request, config)), path, False
    check_checkpoint_path(path)  # before training, not when saving its result
    checkpoint = train_baseline(request.network, bundle, config, device=device,
                                progress=progress)
    return save_checkpoint(checkpoint, path), path, True


def check_checkpoint_path(path: Path) -> None:
    """The cached checkpoint's file can be written: no folder in its place, and a folder
    for it that is (or can be made) writable."""
    if path.is_dir():
        raise ConfigError(f"checkpoint file {path} is a folder; remove it or pass another "
                          "--results-dir")
    check_writable_folder(path.parent, what="checkpoint folder",
                          hint="pass another --results-dir")


def check_probe_cache(cache_dir: Path) -> None:
    """The probe cache folder can be written and none of its entries is a folder (found
    now, not when a probe has done the work whose result it would store)."""
    check_writable_folder(cache_dir, what="probe cache folder",
                          hint="pass another --results-dir")
    if not cache_dir.is_dir():
        return
    try:
        folders = [entry.name for entry in os.scandir(cache_dir)
                   if entry.name.endswith(".json") and entry.is_dir()]
    except OSError as exc:
        raise ConfigError(f"cannot read probe cache folder {cache_dir}: {exc.strerror}"
                          ) from None
    if folders:
        raise ConfigError(f"probe cache entry {cache_dir / folders[0]} is a folder, not a "
                          "file; remove it")


def retrain_remedy(request: DataRequest, config: TrainConfig) -> str:
    """What to run when the cached checkpoint is damaged (search and probe have no
    --retrain: ``dse train`` replaces the file they read)."""
    command = ["dse", "train", "--network", request.network, "--dataset", request.dataset,
               "--epochs", str(config.epochs), "--results-dir", request.results_dir]
    if request.data_dir is not None:
        command += ["--data-dir", request.data_dir]
    return f"it is the cached checkpoint: train it again with {shlex.join(command)} --retrain"


def probe_setup(data: DataRequest, config: ProbeConfig, device: DramDevice | None, *,
                progress: Progress | None = None) -> ProbeSetup:
    """Everything the probes of one study share (this trains the checkpoint if needed)."""
    cache_dir = Path(data.results_dir) / "probe_cache"
    check_probe_cache(cache_dir)  # before training
    checkpoint, _, _ = obtain_checkpoint(data, progress=progress)
    return ProbeSetup(
        checkpoint=checkpoint, bundle=load_dataset(data.dataset, data.data_dir),
        config=config,
        error_params=device.error_params if device else ErrorModelParams(),
        row_bytes=device.row_bytes if device else DEFAULT_ROW_BYTES,
        device=resolve_device(data.device), cache_dir=cache_dir)


@dataclass(frozen=True)
class ProbeEstimator:
    """The probe as an ``AccuracyEstimator``; ``on_step`` hears its fine-tune steps (done,
    in all, status), so that a long probe visibly moves (the command line's display)."""

    setup: ProbeSetup
    on_step: StepProgress | None = field(default=None, compare=False)

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        return probe(candidate, setup=self.setup, on_step=self.on_step)

    def confirming(self, *, steps: int, finetune_seeds: int, split: str = "test"
                   ) -> "ProbeEstimator":
        """The same probe with a longer fine-tune and more seeds, on ``split`` (the test
        split, which the search never sees)."""
        config = dataclasses.replace(self.setup.config, split=split, steps=steps,
                                     finetune_seeds=finetune_seeds)
        return dataclasses.replace(self, setup=dataclasses.replace(self.setup, config=config))

    def retraining(self, steps: int) -> "ProbeEstimator":
        """The same probe (split, seeds) with a fine-tune of ``steps`` steps."""
        config = self.setup.config
        return self.confirming(steps=steps, finetune_seeds=config.finetune_seeds,
                               split=config.split)

    def reporting(self, on_step: StepProgress | None) -> "ProbeEstimator":
        """The same probe, telling ``on_step`` its fine-tune steps."""
        return dataclasses.replace(self, on_step=on_step)

    def settings(self) -> dict[str, object]:
        """What a confirmation's results are bound to."""
        config = self.setup.config
        return {"split": config.split, "steps": config.steps,
                "finetune_seeds": config.finetune_seeds, "error_seeds": config.error_seeds,
                "seed": config.seed}


def with_baseline(estimator: AccuracyEstimator, n_layers: int) -> AccuracyModel:
    """The estimator and its measurement of the all-digital, nominal-DRAM candidate."""
    baseline = estimator(error_free(n_layers))
    return AccuracyModel(estimator, baseline.accuracy_mean, baseline)
