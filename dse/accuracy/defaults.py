"""Default probe and training settings, importable without torch (the CLI's --help and the
search config read them; ``networks.probe.ProbeConfig`` takes its defaults from here)."""
from __future__ import annotations


class ProbeDefaults:
    steps = 20          # quick fine-tune steps
    seeds = 3           # evaluation error masks averaged
    error_model = 0     # EDEN error model 0..3 (0: uniform)


# baseline training epochs per dataset ("*": any other)
DEFAULT_EPOCHS: dict[str, int] = {"digits": 30, "synthetic": 8, "cifar10": 30, "*": 30}
