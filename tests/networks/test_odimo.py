"""ODiMO's search (networks/odimo.py) against what its public code does (eml-eda/odimo)."""
from __future__ import annotations

import math

import pytest

from dse.workload import load_workload
from hw_models import load_soc
from networks.datasets import load_dataset
from networks.odimo import OdimoConfig, odimo_search
from networks.train import TrainConfig, train_baseline


@pytest.fixture(scope="module")
def searched():
    bundle = load_dataset("digits")
    checkpoint = train_baseline("resnet8", bundle, TrainConfig(epochs=2), device="cpu")
    table = load_workload("resnet8", "digits").table
    config = OdimoConfig(cost_weight=1.0, epochs=4, batch_size=128)
    return config, odimo_search(checkpoint, bundle, table, load_soc("diana"), config)


def test_the_kept_epoch_has_the_best_relaxed_validation_accuracy(searched):
    """search_r20.py keeps the epoch whose relaxed network is most accurate on validation,
    a later one only when strictly better; not the lowest cross-entropy + lambda * cost."""
    _, result = searched
    accuracies = [row["val_accuracy"] for row in result.history]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1


def test_each_epoch_is_validated_at_its_own_tau_before_annealing(searched):
    """ODiMO validates, then anneals: epoch e is validated at tau = exp(-0.045 (e - 1))."""
    config, result = searched
    for row in result.history:
        assert row["tau"] == pytest.approx(
            math.exp(-config.tau_decay_per_epoch * (row["epoch"] - 1)))
