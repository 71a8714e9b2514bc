"""EDEN's retraining for a target device (torch): the DIANA network of one channel split
trained on for a few epochs over the training split with the device's DRAM errors injected,
at a bit error rate that rises over the epochs (curricular), so that the network tolerates
more errors before its tolerance is characterised.

EDEN (Koppula et al., MICRO 2019, arXiv 1910.05340) "retrain[s] the DNN for the target
approximate DRAM device to raise its error tolerance" (abstract) and reports an order of
magnitude more tolerable BER from it; the BER starts low and rises, because the full target
BER from the first epoch collapses accuracy (``../shared/research/eden_dram.md`` section
5.1, from secondary summaries). The paper's schedule (epochs, step sizes) and optimiser were
not retrieved; the choices here are labelled as such:

* schedule (chosen): the BER of every stored tensor rises geometrically, step by step, from
  ``RAMP_START`` (1 %) of its target to the target over the first ``epochs - 1`` epochs (the
  whole run for one epoch), then stays at the target for the last epoch: the shape the
  research notes suggest (a geometric ramp from target/100, then training at the target);
* optimiser (chosen): the baseline's quantisation-aware stage's (``networks.train``: SGD,
  Nesterov momentum 0.9, weight decay 5e-4, gradient norm clipped to 5, peak learning rate
  0.05 x 0.1 with cosine decay to 0, batches of 64, shuffled and augmented as that stage's):
  retraining continues that stage under the device's errors;
* fresh error masks on every batch, drawn by the device's error model (``set_errors``), as
  the probe's fine-tune does (``networks.finetune``).

The result is ``Checkpoint.derived``: the weights, identified by the SHA-256 of their
tensors, with what trained them. Caching them is the caller's (``dse.engines.eden``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from hw_models.error_models import ErrorModelParams
from networks.datasets import DataBundle
from networks.finetune import RAMP_START, FineTuneCandidate, derived_seed
from networks.train import Checkpoint, TrainConfig, _fit, evaluate

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, status)


@dataclass(frozen=True)
class RetrainConfig:
    """How one split is retrained (every value given by the caller)."""

    epochs: int          # passes over the training split
    error_model: int     # EDEN error model 0..3
    error_params: ErrorModelParams
    row_bytes: int       # the device's row, for the correlated error models
    seed: int = 0        # batch order, augmentation and error masks


@dataclass(frozen=True)
class RetrainReport:
    """What the retraining did: training samples processed (images, over every epoch),
    wall time, and the retrained split's error-free validation accuracy (fraction)."""

    samples: int
    seconds: float
    val_accuracy: float


def ramp_scale(step: int, ramp_steps: int) -> float:
    """The share of the target BER at ``step``: ``RAMP_START`` at step 0, rising
    geometrically to 1 at ``ramp_steps`` and staying there."""
    return float(RAMP_START ** max(0.0, 1 - step / max(ramp_steps, 1)))


def eden_retrain(checkpoint: Checkpoint, bundle: DataBundle, candidate: FineTuneCandidate,
                 config: RetrainConfig, *, device: str = "cpu",
                 progress: Progress | None = None) -> tuple[Checkpoint, RetrainReport]:
    """Retrain ``checkpoint`` for ``candidate``'s split with its per-layer BERs as the
    curriculum's targets (module docstring); the derived checkpoint and what it cost."""
    if config.epochs < 1:
        raise ValueError("retraining needs at least one epoch")
    start = time.perf_counter()
    train_config = TrainConfig(seed=config.seed)
    peak_lr = train_config.lr * train_config.qat_lr_scale
    steps_per_epoch = bundle.num_batches("train", train_config.batch_size)
    total = config.epochs * steps_per_epoch
    ramp_steps = (config.epochs - 1 if config.epochs > 1 else 1) * steps_per_epoch
    torch.manual_seed(config.seed)
    model = checkpoint.build().to(device)
    model.set_split(candidate.n_analog, candidate.analog_channels)

    def inject(model: Any, step: int) -> None:
        scale = ramp_scale(step, ramp_steps)
        model.set_errors([b * scale for b in candidate.weight_ber],
                         [b * scale for b in candidate.activation_ber],
                         model=config.error_model, params=config.error_params,
                         row_bytes=config.row_bytes, seed=derived_seed(config.seed, step))

    def told(model: Any, step: int, loss: float) -> None:
        if progress is not None:
            scale = ramp_scale(step, ramp_steps)
            progress(step, total, f"epoch {math.ceil(step / steps_per_epoch)}/"
                                  f"{config.epochs}, BER x{scale:.2g} of target, "
                                  f"loss {loss:.3f}")

    if progress is not None:
        progress(0, total, "retraining")
    _fit(model, bundle, train_config, epochs=config.epochs, peak_lr=peak_lr, device=device,
         on_step=told, before_step=inject)
    model.clear_errors()
    accuracy = evaluate(model, bundle, "val", device=device)
    samples = config.epochs * len(bundle.split("train"))
    weights = checkpoint.derived(
        model.state_dict(), val_accuracy=accuracy,
        trained_by={"method": "eden-retrain", "epochs": config.epochs, "seed": config.seed,
                    "error_model": config.error_model,
                    "weight_ber": list(candidate.weight_ber),
                    "activation_ber": list(candidate.activation_ber),
                    "n_analog": list(candidate.n_analog), "samples": samples})
    return weights, RetrainReport(samples, time.perf_counter() - start, accuracy)


__all__ = ["RetrainConfig", "RetrainReport", "eden_retrain", "ramp_scale"]
