"""Accuracy records and defaults: plain data, the probe's own defaults."""
from __future__ import annotations

from dse.accuracy import ProbeCandidate, error_free
from dse.accuracy.defaults import DEFAULT_EPOCHS, ProbeDefaults


def test_the_error_free_candidate_is_all_digital():
    assert error_free(3) == ProbeCandidate((0, 0, 0), (0.0,) * 3, (0.0,) * 3)


def test_defaults_are_the_probes_and_the_trainings():
    from networks.finetune import ProbeCandidate as Reexported
    from networks.finetune import ProbeConfig
    from networks.train import TrainConfig
    assert Reexported is ProbeCandidate  # user estimators written for networks.finetune work
    assert (ProbeConfig.steps, ProbeConfig.finetune_seeds, ProbeConfig.error_seeds,
            ProbeConfig.error_model) == (ProbeDefaults.steps, ProbeDefaults.finetune_seeds,
                                         ProbeDefaults.error_seeds, ProbeDefaults.error_model)
    assert DEFAULT_EPOCHS["*"] == TrainConfig.epochs
