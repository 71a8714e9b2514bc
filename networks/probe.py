"""The accuracy probe: a quick fine-tune of one candidate, then accuracy under DRAM errors.

``probe(candidate, setup=...)`` starts from the baseline checkpoint, puts each layer's
``n_analog`` least-ternarisation-error channels on the analog array, fine-tunes for
``steps`` steps while the bit error rate of every stored tensor ramps up geometrically from
1 % of its target to the target (EDEN's curricular retraining; fresh error masks on every
forward pass), then measures accuracy on the validation split under ``seeds`` independent
error masks (mean and standard deviation). Results are cached in memory and on disk, keyed by
everything that determines them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

import dse
from dse.accuracy import ProbeCandidate, ProbeResult
from dse.accuracy.defaults import MAX_PROBE_SEEDS, MAX_PROBE_STEPS, ProbeDefaults
from hw_models.error_models import ERROR_MODELS, ErrorModelParams
from hw_models.errors import ConfigError
from networks.datasets import DataBundle
from networks.diana_model import DianaModel
from networks.train import Checkpoint, evaluate, lr_at

RAMP_START = 0.01  # curricular BER starts at 1 % of the target


@dataclass(frozen=True)
class ProbeConfig:
    """Quick fine-tune settings (part of the cache key)."""

    steps: int = ProbeDefaults.steps  # fine-tune steps (0: evaluate the checkpoint as it is)
    batch_size: int = 64
    lr: float = 3e-4              # Adam peak learning rate, cosine decay to 0 (1e-3 disturbs
                                  # a converged baseline more than 20 steps can repair)
    ramp_fraction: float = 0.5    # BER reaches its target after this share of the steps
    seeds: int = ProbeDefaults.seeds  # evaluation error masks averaged
    error_model: int = ProbeDefaults.error_model  # EDEN error model 0..3
    split: str = "val"            # the search only ever sees validation accuracy
    seed: int = 0


@dataclass(frozen=True)
class ProbeSetup:
    """What stays fixed across the probes of one study."""

    checkpoint: Checkpoint
    bundle: DataBundle
    config: ProbeConfig
    error_params: ErrorModelParams
    row_bytes: int
    device: str = "cpu"
    cache_dir: Path | None = None


_MEMORY_CACHE: dict[str, ProbeResult] = {}


def probe(candidate: ProbeCandidate, *, setup: ProbeSetup) -> ProbeResult:
    """Accuracy of ``candidate`` after a quick fine-tune (cached)."""
    _check(candidate, setup)
    key = cache_key(candidate, setup)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    on_disk = _read_cache(setup.cache_dir, key, seeds=setup.config.seeds)
    if on_disk is not None:
        _MEMORY_CACHE[key] = on_disk
        return on_disk
    start = time.perf_counter()
    model = setup.checkpoint.build().to(setup.device)
    model.set_split(candidate.n_analog)
    _fine_tune(model, candidate, setup)
    per_seed = _evaluate_seeds(model, candidate, setup)
    result = ProbeResult(accuracy_mean=float(np.mean(per_seed)),
                         accuracy_std=float(np.std(per_seed)),
                         accuracy_per_seed=tuple(per_seed),
                         seconds=time.perf_counter() - start, cached=False)
    _write_cache(setup.cache_dir, key, result)
    _MEMORY_CACHE[key] = ProbeResult(**{**asdict(result), "cached": True})
    return result


def cache_key(candidate: ProbeCandidate, setup: ProbeSetup) -> str:
    """Hash of the split counts, per-tensor BERs, error model, settings, checkpoint and the
    dse version (a cache written by another version is recomputed, not misread)."""
    document = {
        "version": dse.__version__,
        "n_analog": list(candidate.n_analog),
        "weight_ber": [float(f"{b:.6g}") for b in candidate.weight_ber],
        "activation_ber": [float(f"{b:.6g}") for b in candidate.activation_ber],
        "config": asdict(setup.config),
        "error_params": asdict(setup.error_params),
        "row_bytes": setup.row_bytes,
        "checkpoint": setup.checkpoint.digest,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:24]


def _check(candidate: ProbeCandidate, setup: ProbeSetup) -> None:
    n_layers = len(setup.checkpoint.layer_names)
    if not (len(candidate.n_analog) == len(candidate.weight_ber)
            == len(candidate.activation_ber) == n_layers):
        raise ConfigError(f"a probe candidate needs one entry per layer ({n_layers})")
    config = setup.config
    if config.steps < 0 or config.seeds < 1 or config.batch_size < 1:
        raise ConfigError("probe steps must be >= 0, seeds and batch size >= 1")
    if config.steps > MAX_PROBE_STEPS or config.seeds > MAX_PROBE_SEEDS:
        raise ConfigError(f"probe steps must be <= {MAX_PROBE_STEPS:,} and seeds "
                          f"<= {MAX_PROBE_SEEDS:,}")
    if config.error_model not in ERROR_MODELS:
        raise ConfigError(f"error model must be one of {ERROR_MODELS}")


def _fine_tune(model: DianaModel, candidate: ProbeCandidate, setup: ProbeSetup) -> None:
    config = setup.config
    if config.steps == 0:
        return
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    ramp_steps = max(1, round(config.steps * config.ramp_fraction))
    batches = _endless_batches(setup)
    model.train()
    for step in range(config.steps):
        ramp = RAMP_START ** max(0.0, 1 - step / ramp_steps)  # 1 % -> 100 % geometrically
        _set_errors(model, candidate, setup, scale=ramp, seed=config.seed * 7919 + step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr)
        images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.clear_errors()


def _endless_batches(setup: ProbeSetup):
    epoch = 0
    while True:
        yield from setup.bundle.batches("train", setup.config.batch_size, shuffle=True,
                                        seed=setup.config.seed * 1_000_003 + epoch,
                                        augment=True, device=setup.device)
        epoch += 1


def _evaluate_seeds(model: DianaModel, candidate: ProbeCandidate,
                    setup: ProbeSetup) -> list[float]:
    error_free = not any(candidate.weight_ber) and not any(candidate.activation_ber)
    seeds = 1 if error_free else setup.config.seeds  # without errors every seed agrees
    accuracies = []
    for seed in range(seeds):
        model.eval()
        _set_errors(model, candidate, setup, scale=1.0, seed=10_000 + seed)
        _freeze_weight_errors(model)
        accuracies.append(evaluate(model, setup.bundle, setup.config.split,
                                   device=setup.device))
        model.clear_errors()
    return accuracies * (setup.config.seeds if error_free else 1)


def _set_errors(model: DianaModel, candidate: ProbeCandidate, setup: ProbeSetup, *,
                scale: float, seed: int) -> None:
    model.set_errors([b * scale for b in candidate.weight_ber],
                     [b * scale for b in candidate.activation_ber],
                     model=setup.config.error_model, params=setup.error_params,
                     row_bytes=setup.row_bytes, seed=seed)


def _freeze_weight_errors(model: DianaModel) -> None:
    """One weight mask per evaluation seed: draw it once, reuse it for every batch."""
    for layer in model.layers():
        layer.freeze_weight_errors()


def _read_cache(cache_dir: Path | None, key: str, *, seeds: int) -> ProbeResult | None:
    """The cached result, or None when absent, unreadable or not a valid result (it is then
    measured again and the file replaced); a folder in the entry's place is refused before
    the probe's work, not after it."""
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{key}.json"
    if path.is_dir():
        raise ConfigError(f"probe cache entry {path} is a folder, not a file; remove it")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return valid_result(document, seeds=seeds)


CACHE_TOLERANCE = 1e-9  # mean and std against the per-seed values (JSON keeps 17 digits)


def valid_result(document: object, *, seeds: int) -> ProbeResult | None:
    """``document`` as a cached ``ProbeResult`` if it is one: accuracies finite fractions in
    [0, 1], one per evaluation seed, their mean and standard deviation as stored, seconds
    finite and >= 0; None otherwise."""
    if not isinstance(document, dict):
        return None
    per_seed = document.get("accuracy_per_seed")
    if not isinstance(per_seed, list) or len(per_seed) != seeds:
        return None
    accuracies = [_number(value, 0, 1) for value in per_seed]
    mean = _number(document.get("accuracy_mean"), 0, 1)
    std = _number(document.get("accuracy_std"), 0, 1)
    seconds = _number(document.get("seconds"), 0, math.inf)
    if mean is None or std is None or seconds is None or None in accuracies:
        return None
    values = [value for value in accuracies if value is not None]
    if (abs(mean - float(np.mean(values))) > CACHE_TOLERANCE
            or abs(std - float(np.std(values))) > CACHE_TOLERANCE):
        return None
    return ProbeResult(accuracy_mean=mean, accuracy_std=std, accuracy_per_seed=tuple(values),
                       seconds=seconds, cached=True)


def _number(value: object, low: float, high: float) -> float | None:
    """``value`` if it is a finite JSON number in [low, high] (``true`` is not one)."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high):
        return float(value)
    return None


def _write_cache(cache_dir: Path | None, key: str, result: ProbeResult) -> None:
    if cache_dir is None:
        return
    path = Path(cache_dir) / f"{key}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # workers may share the cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(asdict(result)))
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigError(f"cannot write probe cache entry {path}: {exc.strerror}") from None
