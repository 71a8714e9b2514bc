"""The probe's adapter: settings checked before any work, and the fine-tune given exactly
the probe's settings."""
from __future__ import annotations

import dataclasses

import pytest

from dse.accuracy import ProbeCandidate
from dse.accuracy.defaults import ProbeConfig
from dse.accuracy.probe_estimator import ProbeSetup, check_probe, fine_tune_setup
from hw_models import ConfigError
from hw_models.error_models import ErrorModelParams


class NoLayers:
    """A checkpoint of no layers (the counts are what is checked)."""

    layer_names = ()


def setup_with(**settings) -> ProbeSetup:
    return ProbeSetup(checkpoint=NoLayers(), bundle=None,  # type: ignore[arg-type]
                      config=dataclasses.replace(ProbeConfig(), **settings),
                      error_params=ErrorModelParams(), row_bytes=2048)


@pytest.mark.parametrize("field, value", [("steps", 10**30), ("finetune_seeds", 10**30),
                                          ("error_seeds", 10**30)])
def test_probe_refuses_counts_too_large(field, value):
    with pytest.raises(ConfigError, match="must be <= 10,000,000 and seeds <= 10,000"):
        check_probe(ProbeCandidate((), (), ()), setup_with(**{field: value}))


def test_the_fine_tune_gets_the_probes_settings_but_the_interval_level():
    setup = setup_with(steps=7, batch_size=16, lr=1e-3, ramp_fraction=0.25, finetune_seeds=3,
                       error_seeds=4, error_model=2, interval_level=0.9, split="test", seed=5)
    fine_tune = fine_tune_setup(setup)
    assert dataclasses.asdict(fine_tune.config) == {
        key: value for key, value in dataclasses.asdict(setup.config).items()
        if key != "interval_level"}
    assert (fine_tune.checkpoint, fine_tune.row_bytes, fine_tune.device) == (
        setup.checkpoint, 2048, "cpu")
