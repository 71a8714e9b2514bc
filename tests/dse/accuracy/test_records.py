"""Accuracy records and defaults: plain data, the probe's own defaults."""
from __future__ import annotations

import dataclasses

from dse.accuracy import ProbeCandidate, error_free
from dse.accuracy.defaults import DEFAULT_EPOCHS, ProbeConfig, ProbeDefaults


def test_the_error_free_candidate_is_all_digital():
    assert error_free(3) == ProbeCandidate((0, 0, 0), (0.0,) * 3, (0.0,) * 3)


def test_defaults_are_the_probes_and_the_trainings():
    from networks.train import TrainConfig
    assert (ProbeConfig.steps, ProbeConfig.finetune_seeds, ProbeConfig.error_seeds,
            ProbeConfig.error_model) == (ProbeDefaults.steps, ProbeDefaults.finetune_seeds,
                                         ProbeDefaults.error_seeds, ProbeDefaults.error_model)
    assert DEFAULT_EPOCHS["*"] == TrainConfig.epochs


def test_the_fine_tune_reads_every_setting_of_the_cache_key_and_no_other():
    from networks.finetune import FineTuneConfig
    probe_settings = [f.name for f in dataclasses.fields(ProbeConfig)]
    assert [f.name for f in dataclasses.fields(FineTuneConfig)] == [
        name for name in probe_settings if name != "interval_level"]
