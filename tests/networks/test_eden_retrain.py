"""EDEN's retraining for a device: a curricular BER (1 % of the target, rising
geometrically to it by the last epoch), weights derived from the checkpoint."""
from __future__ import annotations

import pytest
from helpers import tiny_checkpoint

from dse.accuracy import ProbeCandidate
from hw_models.error_models import ErrorModelParams
from networks.datasets import load_dataset
from networks.diana_model import DianaModel
from networks.eden_retrain import RetrainConfig, eden_retrain, ramp_scale
from networks.train import load_checkpoint


def test_the_ramp_rises_geometrically_from_one_percent_to_the_target():
    assert ramp_scale(0, 100) == pytest.approx(0.01)
    assert ramp_scale(50, 100) == pytest.approx(0.1)
    assert ramp_scale(100, 100) == ramp_scale(150, 100) == 1.0


@pytest.mark.slow
def test_retraining_ramps_the_ber_over_the_epochs_and_derives_the_weights(tmp_path,
                                                                         monkeypatch):
    import torch
    torch.set_num_threads(1)
    base = load_checkpoint(tiny_checkpoint(tmp_path / "base.pt"))
    bundle = load_dataset("synthetic")  # 512 training images: 8 batches of 64 an epoch
    n = len(base.layer_names)
    target = 1e-3
    candidate = ProbeCandidate((0,) * n, (target,) * n, (0.0,) * n)
    seen: list[float] = []
    original = DianaModel.set_errors

    def recorded(self, weight_ber, activation_ber, **kwargs):
        seen.append(max(weight_ber))
        return original(self, weight_ber, activation_ber, **kwargs)
    monkeypatch.setattr(DianaModel, "set_errors", recorded)
    config = RetrainConfig(epochs=3, error_model=0, error_params=ErrorModelParams(),
                           row_bytes=2048)
    weights, report = eden_retrain(base, bundle, candidate, config)
    assert len(seen) == 3 * 8  # one mask setting per batch
    assert seen[0] == pytest.approx(target / 100)
    assert all(a < b for a, b in zip(seen[:16], seen[1:16]))  # rising over two epochs
    assert seen[16:] == [pytest.approx(target)] * 8  # the last epoch at the target
    assert report.samples == 3 * 512
    assert weights.train_config["derived_from"] == base.tensors_sha256
    assert weights.train_config["trained_by"]["method"] == "eden-retrain"
    assert weights.tensors_sha256 != base.tensors_sha256
    again, _ = eden_retrain(base, bundle, candidate, config)
    assert again.tensors_sha256 == weights.tensors_sha256  # the same seed, the same weights
