"""The accuracy probe: a quick fine-tune of one candidate, then accuracy under DRAM errors.

``probe(candidate, setup=...)`` starts from the baseline checkpoint, puts each layer's
``n_analog`` least-ternarisation-error channels on the analog array, fine-tunes for
``steps`` steps while the bit error rate of every stored tensor ramps up geometrically from
1 % of its target to the target (EDEN's curricular retraining; fresh error masks on every
forward pass), then records, image by image, whether the validation split is classified
correctly under ``error_seeds`` independent error masks. The whole is repeated for
``finetune_seeds`` fine-tunes (other batch orders and training masks), so the result holds a
(finetune_seeds, error_seeds, images) correctness array: its mean is the accuracy, and
``dse.accuracy.stats`` turns it into intervals and paired drops. Results are cached in memory
and on disk (the correctness bit-packed), keyed by everything that determines them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

import dse
from dse.accuracy import ProbeCandidate, ProbeResult, stats
from dse.accuracy.defaults import MAX_PROBE_SEEDS, MAX_PROBE_STEPS, ProbeDefaults
from dse.accuracy.stats import LEVEL
from hw_models.error_models import ERROR_MODELS, ErrorModelParams
from hw_models.errors import ConfigError
from networks.datasets import DataBundle
from networks.diana_model import DianaModel
from networks.train import Checkpoint, correctness, lr_at

RAMP_START = 0.01  # curricular BER starts at 1 % of the target
StepProgress = Callable[[int, int, str], None]  # (fine-tune steps done, in all, status)


@dataclass(frozen=True)
class ProbeConfig:
    """Quick fine-tune settings (part of the cache key)."""

    steps: int = ProbeDefaults.steps  # fine-tune steps (0: evaluate the checkpoint as it is)
    batch_size: int = ProbeDefaults.batch_size
    lr: float = 3e-4              # Adam peak learning rate, cosine decay to 0 (1e-3 disturbs
                                  # a converged baseline more than 20 steps can repair)
    ramp_fraction: float = 0.5    # BER reaches its target after this share of the steps
    finetune_seeds: int = ProbeDefaults.finetune_seeds  # independent fine-tunes
    error_seeds: int = ProbeDefaults.error_seeds  # error masks per fine-tuned model
    error_model: int = ProbeDefaults.error_model  # EDEN error model 0..3
    interval_level: float = LEVEL  # coverage of the accuracy's interval
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


def probe(candidate: ProbeCandidate, *, setup: ProbeSetup,
          on_step: StepProgress | None = None) -> ProbeResult:
    """Accuracy of ``candidate`` after a quick fine-tune (cached). ``on_step`` is told
    (steps done, steps in all, status) as the fine-tunes run (not for a cached result)."""
    _check(candidate, setup)
    key = cache_key(candidate, setup)
    if key in _MEMORY_CACHE:
        known = _MEMORY_CACHE[key]
        if known.level == setup.config.interval_level or known.correct is None:
            return known
        return ProbeResult.from_correct(known.correct, seconds=known.seconds, cached=True,
                                        level=setup.config.interval_level)
    on_disk = _read_cache(setup.cache_dir, key, shape=result_shape(setup),
                          level=setup.config.interval_level)
    if on_disk is not None:
        _MEMORY_CACHE[key] = on_disk
        return on_disk
    start = time.perf_counter()
    correct = _measure(candidate, setup, on_step)
    result = ProbeResult.from_correct(correct, seconds=time.perf_counter() - start,
                                      level=setup.config.interval_level)
    _write_cache(setup.cache_dir, key, result)
    _MEMORY_CACHE[key] = dataclasses.replace(result, cached=True)
    return result


def result_shape(setup: ProbeSetup) -> tuple[int, int, int]:
    """(finetune_seeds, error_seeds, images of the split) of every result of ``setup``."""
    config = setup.config
    return (config.finetune_seeds, config.error_seeds,
            len(setup.bundle.split(config.split).labels))


def derived_seed(*parts: int) -> int:
    """A 32-bit seed for one (base seed, fine-tune seed, ...) combination."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _measure(candidate: ProbeCandidate, setup: ProbeSetup,
             on_step: StepProgress | None = None) -> np.ndarray:
    """The (finetune_seeds, error_seeds, images) correctness of ``candidate``. Without
    errors every error seed agrees, and without fine-tune steps every fine-tune seed does:
    those are measured once and repeated."""
    config = setup.config
    error_free = not any(candidate.weight_ber) and not any(candidate.activation_ber)
    finetunes = 1 if config.steps == 0 else config.finetune_seeds
    masks = 1 if error_free else config.error_seeds
    rows = []
    for finetune in range(finetunes):
        seed = derived_seed(config.seed, finetune)
        model = setup.checkpoint.build().to(setup.device)
        model.set_split(candidate.n_analog, candidate.analog_channels)
        _fine_tune(model, candidate, setup, seed=seed,
                   on_step=_step_reporter(on_step, finetune, finetunes, config.steps, masks))
        rows.append([_correct_under_errors(model, candidate, setup,
                                           seed=derived_seed(config.seed, finetune, mask))
                     for mask in range(masks)])
    correct = np.array(rows, dtype=bool)
    return np.broadcast_to(correct, (config.finetune_seeds, config.error_seeds,
                                     correct.shape[2])).copy()


def cache_key(candidate: ProbeCandidate, setup: ProbeSetup) -> str:
    """Hash of the split counts, per-tensor BERs, error model, settings, checkpoint and the
    dse version (a cache written by another version is recomputed, not misread)."""
    document = {
        "version": dse.__version__,
        "n_analog": list(candidate.n_analog),
        "weight_ber": [float(f"{b:.6g}") for b in candidate.weight_ber],
        "activation_ber": [float(f"{b:.6g}") for b in candidate.activation_ber],
        **({} if candidate.analog_channels is None else
           {"analog_channels": [None if c is None else list(c)
                                for c in candidate.analog_channels]}),
        "config": {key: value for key, value in asdict(setup.config).items()
                   if key != "interval_level"},  # intervals are recomputed from the bits
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


def _step_reporter(on_step: StepProgress | None, finetune: int, finetunes: int, steps: int,
                   masks: int) -> Callable[[int], None] | None:
    """``on_step`` told the steps of fine-tune ``finetune`` counted over all of them (and,
    after its last step, that its error masks are evaluated); None without ``on_step``."""
    if on_step is None or steps == 0:
        return None
    report = on_step

    def told(step: int) -> None:
        status = (f"seed {finetune + 1}/{finetunes}, step {step}/{steps}" if step < steps
                  else f"seed {finetune + 1}/{finetunes}, evaluating under {masks} error "
                       f"mask{'s' if masks > 1 else ''}")
        report(finetune * steps + step, finetunes * steps, status)
    return told


def _fine_tune(model: DianaModel, candidate: ProbeCandidate, setup: ProbeSetup, *,
               seed: int, on_step: Callable[[int], None] | None = None) -> None:
    """``config.steps`` steps of Adam under ramping errors; ``on_step`` hears each step
    done (0 before the first)."""
    config = setup.config
    if config.steps == 0:
        return
    if on_step is not None:
        on_step(0)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    ramp_steps = max(1, round(config.steps * config.ramp_fraction))
    batches = _endless_batches(setup, seed)
    model.train()
    for step in range(config.steps):
        ramp = RAMP_START ** max(0.0, 1 - step / ramp_steps)  # 1 % -> 100 % geometrically
        _set_errors(model, candidate, setup, scale=ramp, seed=derived_seed(seed, step))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr)
        images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step + 1)
    model.clear_errors()


def _endless_batches(setup: ProbeSetup, seed: int):
    epoch = 0
    while True:
        yield from setup.bundle.batches("train", setup.config.batch_size, shuffle=True,
                                        seed=derived_seed(seed, epoch),
                                        augment=True, device=setup.device)
        epoch += 1


def _correct_under_errors(model: DianaModel, candidate: ProbeCandidate, setup: ProbeSetup,
                          *, seed: int) -> np.ndarray:
    """Per image of the split: right under the error masks of ``seed``."""
    model.eval()
    _set_errors(model, candidate, setup, scale=1.0, seed=seed)
    _freeze_weight_errors(model)
    correct = correctness(model, setup.bundle, setup.config.split, device=setup.device)
    model.clear_errors()
    return correct


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


def _read_cache(cache_dir: Path | None, key: str, *, shape: tuple[int, int, int],
                level: float = LEVEL) -> ProbeResult | None:
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
    return valid_result(document, shape=shape, level=level)


CACHE_TOLERANCE = 1e-9  # stored accuracies against the bits (JSON keeps 17 digits)


def valid_result(document: object, *, shape: tuple[int, int, int], level: float = LEVEL
                 ) -> ProbeResult | None:
    """``document`` as a cached ``ProbeResult`` if it is one: a correctness array of
    ``shape`` (fine-tune seeds, error seeds, images), the stored accuracies (finite
    fractions) equal to what its bits say, seconds finite and >= 0; None otherwise."""
    if not isinstance(document, dict):
        return None
    correct = stats.unpack(document.get("correct"))
    seconds = _number(document.get("seconds"), 0, math.inf)
    if correct is None or correct.shape != tuple(shape) or seconds is None:
        return None
    result = ProbeResult.from_correct(correct, seconds=seconds, cached=True, level=level)
    per_seed = document.get("accuracy_per_seed")
    if not isinstance(per_seed, list) or len(per_seed) != len(result.accuracy_per_seed):
        return None
    stored = [_number(value, 0, 1) for value in per_seed]
    mean = _number(document.get("accuracy_mean"), 0, 1)
    std = _number(document.get("accuracy_std"), 0, 1)
    if (mean is None or std is None or None in stored
            or abs(mean - result.accuracy_mean) > CACHE_TOLERANCE
            or abs(std - result.accuracy_std) > CACHE_TOLERANCE):
        return None
    if any(abs(value - expected) > CACHE_TOLERANCE  # type: ignore[operator]
           for value, expected in zip(stored, result.accuracy_per_seed)):
        return None
    return result


def _number(value: object, low: float, high: float) -> float | None:
    """``value`` if it is a finite JSON number in [low, high] (``true`` is not one)."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high):
        return float(value)
    return None


def cache_document(result: ProbeResult) -> dict[str, object]:
    """What a cache entry holds: the accuracies (for people reading it), the seconds and
    the bit-packed correctness (what is read back)."""
    assert result.correct is not None
    return {"accuracy_mean": result.accuracy_mean, "accuracy_std": result.accuracy_std,
            "accuracy_per_seed": list(result.accuracy_per_seed), "seconds": result.seconds,
            "correct": stats.pack(result.correct)}


def _write_cache(cache_dir: Path | None, key: str, result: ProbeResult) -> None:
    if cache_dir is None:
        return
    path = Path(cache_dir) / f"{key}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")  # workers may share the cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(cache_document(result)))
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigError(f"cannot write probe cache entry {path}: {exc.strerror}") from None
