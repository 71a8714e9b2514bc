"""The fine-tune probe as an accuracy estimator (torch): checkpoints on demand, the probe's
fixed setup, the probe itself (its settings checked, its results cached by
``dse.accuracy.probe_cache``, measured by ``networks.finetune``), and the estimator a search
calls."""
from __future__ import annotations

import dataclasses
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import dse
from dse.accuracy import (
    AccuracyEstimator,
    AccuracyModel,
    ProbeCandidate,
    ProbeResult,
    error_free,
    probe_cache,
)
from dse.accuracy.abilities import (
    Batched,
    Characterising,
    Confirmable,
    Confirming,
    StartsFrom,
)
from dse.accuracy.defaults import MAX_PROBE_SEEDS, MAX_PROBE_STEPS, ProbeConfig, check_epochs
from dse.config import resolved_epochs
from dse.results.files import check_writable_folder
from hw_models import ConfigError
from hw_models.dram import DramDevice
from hw_models.error_models import ERROR_MODELS, ErrorModelParams
from networks.data_identity import DIGEST_CACHE_FILE, data_key, data_sha256
from networks.datasets import DataBundle, load_dataset
from networks.finetune import (
    FineTuneConfig,
    FineTuneSetup,
    StepProgress,
    fine_tuned_correctness,
    fine_tuned_correctness_many,
)
from networks.quantize import QUANTIZER_VERSION
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
WEIGHTS_FOLDER = "weights"  # delivered weights, beside the probe cache, by their SHA-256
_IN_MEMORY_WEIGHTS: dict[str, Checkpoint] = {}  # delivered without a results folder


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


def data_identity(bundle: DataBundle, results_dir: str | Path) -> str:
    """The SHA-256 of ``bundle``'s data (``networks.data_identity``; for data read from a
    folder, kept under ``results_dir`` until one of its files changes)."""
    return data_sha256(bundle, cache_file=Path(results_dir) / DIGEST_CACHE_FILE)


def request_data_sha256(request: DataRequest) -> str:
    """The SHA-256 of the request's data, loaded (and kept in memory) if need be."""
    bundle = load_dataset(request.dataset, request.data_dir, download=request.download)
    return data_identity(bundle, request.results_dir)


def obtain_checkpoint(request: DataRequest, *, progress: Progress | None = None,
                      retrain: bool = False) -> tuple[Checkpoint, Path, bool]:
    """The user's checkpoint, the cached one (for this data), or a freshly trained one;
    with its file and whether it was trained now."""
    config = train_config(request)  # checks the settings before any work
    device = resolve_device(request.device)  # --device cuda without CUDA: an error, always
    bundle = load_dataset(request.dataset, request.data_dir, download=request.download)
    if request.checkpoint is not None:
        path = Path(request.checkpoint)
        return load_checkpoint(path, network=request.network, spec=bundle.spec), path, False
    data_name = data_key(request.dataset, data_identity(bundle, request.results_dir))
    path = checkpoint_path(Path(request.results_dir), request.network, request.dataset, config,
                           data_name)
    if path.is_file() and not retrain:
        return load_checkpoint(path, network=request.network, spec=bundle.spec,
                               remedy=retrain_remedy(request, config)), path, False
    if data_name is not None and not retrain:
        check_no_unkeyed_checkpoint(request, config)
    check_checkpoint_path(path)  # before training, not when saving its result
    checkpoint = train_baseline(request.network, bundle, config, device=device,
                                progress=progress)
    return save_checkpoint(checkpoint, path), path, True


def check_no_unkeyed_checkpoint(request: DataRequest, config: TrainConfig) -> None:
    """Refuse to train beside a checkpoint cached by an earlier dse under the name alone of
    a dataset read from a folder: it may or may not have been trained on this data, which
    only the user knows."""
    unkeyed = checkpoint_path(Path(request.results_dir), request.network, request.dataset,
                              config)
    if unkeyed.is_file():
        raise ConfigError(f"checkpoint {unkeyed} was cached by an earlier dse without the "
                          f"identity of its data, so it may have been trained on other data: "
                          f"pass it with --checkpoint if it was trained on this data, or move "
                          f"it away to train one")


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
                progress: Progress | None = None, batch: int | None = None) -> ProbeSetup:
    """Everything the probes of one study share (this trains the checkpoint if needed)."""
    cache_dir = Path(data.results_dir) / "probe_cache"
    check_probe_cache(cache_dir)  # before training
    checkpoint, _, _ = obtain_checkpoint(data, progress=progress)
    bundle = load_dataset(data.dataset, data.data_dir)
    return ProbeSetup(
        checkpoint=checkpoint, bundle=bundle, config=config,
        error_params=device.error_params if device else ErrorModelParams(),
        row_bytes=device.row_bytes if device else DEFAULT_ROW_BYTES,
        device=resolve_device(data.device), cache_dir=cache_dir,
        data_sha256=data_identity(bundle, data.results_dir), batch=batch)


@dataclass(frozen=True)
class ProbeSetup:
    """What stays fixed across the probes of one study; ``data_sha256`` is the identity of
    the bundle's data (``networks.data_identity``; None: not known, keyed as fixed data)."""

    checkpoint: Checkpoint
    bundle: DataBundle
    config: ProbeConfig
    error_params: ErrorModelParams
    row_bytes: int
    device: str = "cpu"
    cache_dir: Path | None = None
    data_sha256: str | None = None
    batch: int | None = None  # fine-tunes stacked into one model (None: from free memory)


def probe(candidate: ProbeCandidate, *, setup: ProbeSetup,
          on_step: StepProgress | None = None) -> ProbeResult:
    """Accuracy of ``candidate`` after a quick fine-tune (cached). ``on_step`` is told
    (steps done, steps in all, status) as the fine-tunes run (not for a cached result)."""
    check_probe(candidate, setup)
    key = probe_key(candidate, setup)
    level = setup.config.interval_level
    known = probe_cache.remembered(key, level=level)
    if known is not None:
        return known
    on_disk = probe_cache.read_cache(setup.cache_dir, key, shape=result_shape(setup),
                                     level=level)
    if on_disk is not None:
        probe_cache.remember(key, on_disk)
        return on_disk
    start = time.perf_counter()
    correct = fine_tuned_correctness(candidate, fine_tune_setup(setup), on_step)
    result = ProbeResult.from_correct(correct, seconds=time.perf_counter() - start,
                                      level=level)
    probe_cache.write_cache(setup.cache_dir, key, result)
    probe_cache.remember(key, result)
    return result


def probe_many(candidates: Sequence[ProbeCandidate], *, setup: ProbeSetup,
               on_step: StepProgress | None = None) -> list[ProbeResult]:
    """``probe`` of every candidate, those not cached measured together, as many fine-tunes
    at a time as ``setup.batch`` (or free memory) allows (``fine_tuned_correctness_many``:
    the same results, bit for bit, as one at a time). Each candidate's result is cached as
    soon as the fine-tunes of its group are done; ``on_step`` hears (fine-tune steps done,
    in all, status) over the candidates measured."""
    for candidate in candidates:
        check_probe(candidate, setup)
    level = setup.config.interval_level
    results: dict[int, ProbeResult] = {}
    todo: dict[str, list[int]] = {}  # key -> indices (a candidate given twice: once)
    for index, candidate in enumerate(candidates):
        key = probe_key(candidate, setup)
        known = probe_cache.remembered(key, level=level)
        if known is None:
            known = probe_cache.read_cache(setup.cache_dir, key, shape=result_shape(setup),
                                           level=level)
            if known is not None:
                probe_cache.remember(key, known)
        if known is not None:
            results[index] = known
        else:
            todo.setdefault(key, []).append(index)
    keys = list(todo)
    fine_tune = fine_tune_setup(setup)
    batch = setup.batch or default_batch(setup)
    finetunes = 1 if setup.config.steps == 0 else setup.config.finetune_seeds
    per_group = max(1, batch // finetunes)
    steps_each = finetunes * setup.config.steps
    for start in range(0, len(keys), per_group):
        group = keys[start:start + per_group]
        reporter = None
        if on_step is not None:
            report, before, total = on_step, start * steps_each, len(keys) * steps_each

            def reporter(done: int, _: int, status: str) -> None:
                report(before + done, total, status)
        began = time.perf_counter()
        measured = fine_tuned_correctness_many([candidates[todo[k][0]] for k in group],
                                               fine_tune, reporter, batch=batch)
        seconds = (time.perf_counter() - began) / len(group)
        for key, correct in zip(group, measured):
            result = ProbeResult.from_correct(correct, seconds=seconds, level=level)
            probe_cache.write_cache(setup.cache_dir, key, result)
            probe_cache.remember(key, result)
            for index in todo[key]:
                results[index] = result
    return [results[index] for index in range(len(candidates))]


# Bytes a fine-tune holds per image and per value of its layers' inputs and outputs (float32
# activations, the quantised copies and the autograd state): the peak RSS of one replica's
# step, and of each added one, was 4-34 bytes for ResNet8 (8x8 and 32x32 images) and ResNet20
# (``python bench/probe_throughput.py --memory``, 2026-12-05); 64 leaves room for the error
# masks and the allocator. And the share of free memory the batched probe may take.
BYTES_PER_ACTIVATION_VALUE = 64
MEMORY_SHARE = 0.25
# Beyond this, on 2 cores, little faster: ResNet8 on digits ran 158, 163 and 176 fine-tune
# steps/s at 32, 42 and 64 replicas with no errors (2 threads, 2026-12-05); a confirmation
# of the quick start's 14 points (42 fine-tunes) then runs as one batch
MAX_DEFAULT_BATCH = 64


def default_batch(setup: ProbeSetup) -> int:
    """How many fine-tunes to stack when ``--probe-batch`` is not given: as many as fit in
    ``MEMORY_SHARE`` of the free memory of the device the probe runs on (RAM, or GPU
    memory), at most ``MAX_DEFAULT_BATCH``."""
    per_replica = (BYTES_PER_ACTIVATION_VALUE * setup.config.batch_size
                   * activation_values(setup.checkpoint))
    free = free_memory_bytes(setup.device)
    return max(1, min(MAX_DEFAULT_BATCH, int(MEMORY_SHARE * free // max(per_replica, 1))))


def activation_values(checkpoint: Checkpoint) -> int:
    """Values of every layer's input and output for one image (the probe's working set)."""
    from networks.stacked import activation_values as measured

    return _ACTIVATION_VALUES.setdefault(checkpoint.tensors_sha256 or checkpoint.digest,
                                         measured(checkpoint.build(), checkpoint.input_shape))


_ACTIVATION_VALUES: dict[str, int] = {}


def free_memory_bytes(device: str) -> int:
    """Free memory of ``device``: the GPU's, or the RAM the kernel counts as available."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def probe_key(candidate: ProbeCandidate, setup: ProbeSetup) -> str:
    """The cache key of ``candidate`` probed with ``setup`` by this version of dse."""
    data = (None if setup.data_sha256 is None
            else data_key(setup.bundle.spec.name, setup.data_sha256))
    return probe_cache.cache_key(candidate, setup.config, error_params=setup.error_params,
                                 row_bytes=setup.row_bytes,
                                 checkpoint_digest=setup.checkpoint.digest,
                                 version=dse.__version__, data_key=data,
                                 quantizer=QUANTIZER_VERSION)


def result_shape(setup: ProbeSetup) -> tuple[int, int, int]:
    """(finetune_seeds, error_seeds, images of the split) of every result of ``setup``."""
    config = setup.config
    return (config.finetune_seeds, config.error_seeds,
            len(setup.bundle.split(config.split).labels))


def fine_tune_setup(setup: ProbeSetup) -> FineTuneSetup:
    """``setup`` as the fine-tune reads it: every setting of the cache key, no more."""
    settings = {setting.name: getattr(setup.config, setting.name)
                for setting in dataclasses.fields(FineTuneConfig)}
    return FineTuneSetup(checkpoint=setup.checkpoint, bundle=setup.bundle,
                         config=FineTuneConfig(**settings), error_params=setup.error_params,
                         row_bytes=setup.row_bytes, device=setup.device)


def check_probe(candidate: ProbeCandidate, setup: ProbeSetup) -> None:
    """A ``ConfigError`` unless ``candidate`` fits the checkpoint's layers and the settings
    are counts the fine-tune can run (before the cache or any work)."""
    n_layers = len(setup.checkpoint.layer_names)
    if not (len(candidate.n_analog) == len(candidate.weight_ber)
            == len(candidate.activation_ber) == n_layers) \
            or len(candidate.shortcut_ber) not in (0, n_layers):
        raise ConfigError(f"a probe candidate needs one entry per layer ({n_layers})")
    channels = candidate.analog_channels
    if channels is not None and (len(channels) != n_layers or any(
            chosen is not None and len(chosen) != count
            for chosen, count in zip(channels, candidate.n_analog))):
        raise ConfigError("a probe candidate's analog channels must name n_analog channels "
                          "per layer (or None)")
    config = setup.config
    seeds = (config.finetune_seeds, config.error_seeds)
    if config.steps < 0 or min(seeds) < 1 or config.batch_size < 1:
        raise ConfigError("probe steps must be >= 0, seeds and batch size >= 1")
    if config.steps > MAX_PROBE_STEPS or max(seeds) > MAX_PROBE_SEEDS:
        raise ConfigError(f"probe steps must be <= {MAX_PROBE_STEPS:,} and seeds "
                          f"<= {MAX_PROBE_SEEDS:,}")
    if config.error_model not in ERROR_MODELS:
        raise ConfigError(f"error model must be one of {ERROR_MODELS}")


@dataclass(frozen=True)
class ProbeEstimator(Batched, Characterising, Confirmable, Confirming, StartsFrom):
    """The probe as an ``AccuracyEstimator``; ``on_step`` hears its fine-tune steps (done,
    in all, status), so that a long probe visibly moves (the command line's display). It
    can also retrain and confirm, and names its settings (``dse.accuracy.abilities``);
    ``setup`` gives its checkpoint and data to ``--engine odimo`` (``TrainsOnProbeData``)."""

    setup: ProbeSetup
    on_step: StepProgress | None = field(default=None, compare=False)

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        return probe(candidate, setup=self.setup, on_step=self.on_step)

    def many(self, candidates: Sequence[ProbeCandidate]) -> list[ProbeResult]:
        return probe_many(candidates, setup=self.setup, on_step=self.on_step)

    def group_size(self) -> int:
        """Candidates per stacked model: the batch's fine-tunes over each candidate's."""
        setup = self.setup
        finetunes = 1 if setup.config.steps == 0 else setup.config.finetune_seeds
        return max(1, (setup.batch or default_batch(setup)) // finetunes)

    def confirming(self, *, steps: int, finetune_seeds: int, split: str = "test"
                   ) -> "ProbeEstimator":
        """The same probe with a longer fine-tune and more seeds, on ``split`` (the test
        split, which the search never sees)."""
        config = dataclasses.replace(self.setup.config, split=split, steps=steps,
                                     finetune_seeds=finetune_seeds)
        return dataclasses.replace(self, setup=dataclasses.replace(self.setup, config=config))

    def characterising(self, split: str) -> "ProbeEstimator":
        """The same probe measuring its checkpoint as it is (no fine-tune: 0 steps, one
        fine-tune seed, the same error seeds) on ``split``; the cache key holds both."""
        return self.confirming(steps=0, finetune_seeds=1, split=split)

    def starting_from(self, weights: Checkpoint) -> "ProbeEstimator":
        """The same probe, fine-tuning ``weights`` (trained from the study's checkpoint, or
        from weights trained from it) in place of the checkpoint; results are cached under
        the weights' own digest."""
        base = self.setup.checkpoint
        lineage = weights.train_config.get("lineage") or [
            weights.train_config.get("derived_from")]
        if base.tensors_sha256 not in lineage:
            raise ConfigError("delivered weights were not trained from this study's "
                              "checkpoint")
        return dataclasses.replace(self, setup=dataclasses.replace(self.setup,
                                                                   checkpoint=weights))

    def keep_weights(self, weights: Checkpoint) -> dict[str, object]:
        """Write ``weights`` to ``<results dir>/weights/<SHA-256>.pt`` (once: the name is
        the content) or, without a results folder, keep them in this process only."""
        record: dict[str, object] = {"tensors_sha256": weights.tensors_sha256,
                                     "trained_by": weights.train_config.get("trained_by")}
        folder = self.weights_dir()
        if folder is None:
            _IN_MEMORY_WEIGHTS[weights.tensors_sha256] = weights
            return record
        path = folder / f"{weights.tensors_sha256}.pt"
        if not path.is_file():
            save_checkpoint(weights, path)
        return {**record, "file": f"{WEIGHTS_FOLDER}/{path.name}"}

    def weights_of(self, record: dict[str, object]) -> Checkpoint:
        sha256 = record.get("tensors_sha256")
        if not isinstance(sha256, str):
            raise ConfigError("a trial's delivered-weights record names no weights")
        folder = self.weights_dir()
        if folder is None or "file" not in record:
            known = _IN_MEMORY_WEIGHTS.get(sha256)
            if known is None:
                raise ConfigError(f"delivered weights {sha256[:16]} were kept in memory by "
                                  "a run without a results folder and are gone")
            return known
        path = folder / f"{sha256}.pt"
        weights = load_checkpoint(path, network=self.setup.checkpoint.network,
                                  remedy="its trial cannot be measured again without it")
        if weights.tensors_sha256 != sha256:
            raise ConfigError(f"delivered weights {path} are not the ones their trial names "
                              "(their tensors differ)")
        return weights

    def weights_dir(self) -> Path | None:
        """Where delivered weights are kept: beside the probe cache (None: no folder)."""
        cache = self.setup.cache_dir
        return None if cache is None else cache.parent / WEIGHTS_FOLDER

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
