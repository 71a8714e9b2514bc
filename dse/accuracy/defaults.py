"""Default probe and training settings, importable without torch (the CLI's --help and the
search config read them; ``networks.probe.ProbeConfig`` takes its defaults from here)."""
from __future__ import annotations

from hw_models.errors import ConfigError


class ProbeDefaults:
    steps = 20          # quick fine-tune steps
    seeds = 3           # evaluation error masks averaged
    error_model = 0     # EDEN error model 0..3 (0: uniform)


# baseline training epochs per dataset ("*": any other)
DEFAULT_EPOCHS: dict[str, int] = {"digits": 30, "synthetic": 8, "cifar10": 30, "*": 30}

# Upper bounds: far above any useful setting; larger values only overflow an index deep in
# torch or numpy, or run for ever.
MAX_PROBE_STEPS = 10**7
MAX_PROBE_SEEDS = 10**4
MAX_EPOCHS = 10**4


def check_probe_counts(steps: int, seeds: int, *, steps_option: str,
                       seeds_option: str) -> None:
    """Fine-tune steps in [0, MAX_PROBE_STEPS] and error seeds in [1, MAX_PROBE_SEEDS]."""
    if steps < 0 or seeds < 1:
        raise ConfigError(f"{steps_option} must be >= 0 and {seeds_option} >= 1")
    if steps > MAX_PROBE_STEPS:
        raise ConfigError(f"{steps_option} must be <= {MAX_PROBE_STEPS:,} (got {steps}); "
                          f"a quick fine-tune takes tens of steps")
    if seeds > MAX_PROBE_SEEDS:
        raise ConfigError(f"{seeds_option} must be <= {MAX_PROBE_SEEDS:,} (got {seeds}); "
                          f"a few error seeds give the mean")


def check_epochs(epochs: int) -> None:
    """Baseline training epochs in [1, MAX_EPOCHS]."""
    if epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    if epochs > MAX_EPOCHS:
        raise ConfigError(f"--epochs must be <= {MAX_EPOCHS:,} (got {epochs})")
