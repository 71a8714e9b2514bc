"""Default probe and training settings, importable without torch (the CLI's --help and the
search config read them), and the probe's settings with their defaults (``ProbeConfig``)."""
from __future__ import annotations

from dataclasses import dataclass

from dse.accuracy.stats import LEVEL
from hw_models.errors import ConfigError


class ProbeDefaults:
    steps = 20          # quick fine-tune steps
    finetune_seeds = 2  # independent fine-tunes (their spread is part of every interval)
    error_seeds = 3     # error masks per fine-tuned model
    error_model = 0     # EDEN error model 0..3 (0: uniform)
    batch_size = 64     # images per fine-tune step


DEFAULT_MAX_ACCURACY_DROP_PP = 1.0  # --max-accuracy-drop: pp below all-digital at nominal DRAM


@dataclass(frozen=True)
class ProbeConfig:
    """The fine-tune probe's settings: all but ``interval_level`` are part of its cache key
    (``dse.accuracy.probe_cache``) and are what ``networks.finetune.FineTuneConfig`` holds."""

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


class ConfirmDefaults:
    steps_factor = 10   # the test-split confirmation fine-tunes 10x the probe's steps
    finetune_seeds = 3


# baseline training epochs per dataset ("*": any other)
DEFAULT_EPOCHS: dict[str, int] = {"digits": 30, "synthetic": 8, "cifar10": 30, "*": 30}

# Upper bounds: far above any useful setting; larger values only overflow an index deep in
# torch or numpy, or run for ever.
MAX_PROBE_STEPS = 10**7
MAX_PROBE_SEEDS = 10**4
MAX_EPOCHS = 10**4


def check_probe_counts(steps: int, seeds: dict[str, int], *, steps_option: str) -> None:
    """Fine-tune steps in [0, MAX_PROBE_STEPS]; each seed count (option -> value) in
    [1, MAX_PROBE_SEEDS]."""
    if steps < 0:
        raise ConfigError(f"{steps_option} must be >= 0 (got {steps})")
    if steps > MAX_PROBE_STEPS:
        raise ConfigError(f"{steps_option} must be <= {MAX_PROBE_STEPS:,} (got {steps}); "
                          f"a quick fine-tune takes tens of steps")
    for option, count in seeds.items():
        if count < 1:
            raise ConfigError(f"{option} must be >= 1 (got {count})")
        if count > MAX_PROBE_SEEDS:
            raise ConfigError(f"{option} must be <= {MAX_PROBE_SEEDS:,} (got {count}); "
                              "a few seeds give the mean and its spread")


def check_finetune_steps(epochs: float, steps: int, train_images: int) -> None:
    """``--finetune-epochs`` as steps (on ``train_images`` images): at most
    MAX_PROBE_STEPS, named by the option the user gave."""
    if steps > MAX_PROBE_STEPS:
        raise ConfigError(f"--finetune-epochs must give <= {MAX_PROBE_STEPS:,} fine-tune steps "
                          f"(got {epochs:g}: {steps:,} steps on {train_images:,} training "
                          "images); a quick fine-tune takes tens of steps")


RETIRED_SEEDS = ("{option} is retired: the probe now has two kinds of seeds; use "
                 "{finetune} (independent fine-tunes, default {f}) and {errors} (error masks "
                 "per fine-tune, default {e})")


def retired_seeds_message(option: str, finetune: str, errors: str) -> str:
    return RETIRED_SEEDS.format(option=option, finetune=finetune, errors=errors,
                                f=ProbeDefaults.finetune_seeds, e=ProbeDefaults.error_seeds)


def check_epochs(epochs: int) -> None:
    """Baseline training epochs in [1, MAX_EPOCHS]."""
    if epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    if epochs > MAX_EPOCHS:
        raise ConfigError(f"--epochs must be <= {MAX_EPOCHS:,} (got {epochs})")
