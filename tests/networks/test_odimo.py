"""ODiMO's search (networks/odimo.py) against what its public code does (eml-eda/odimo)."""
from __future__ import annotations

import math

import pytest
from helpers import small_bundle, tiny_checkpoint

from dse.workload import load_workload
from hw_models import load_soc
from networks.odimo import OdimoConfig, odimo_finetune, odimo_search
from networks.train import load_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An untrained, calibrated resnet8 and a few of the synthetic images: what these tests
    check is the search's bookkeeping (epochs kept, tau, patience), not how well it
    trains."""
    path = tiny_checkpoint(tmp_path_factory.mktemp("odimo") / "tiny.pt")
    return load_checkpoint(path), small_bundle("synthetic", train=128, val=64)


@pytest.fixture(scope="module")
def searched(trained):
    checkpoint, bundle = trained
    table = load_workload("resnet8", "synthetic").table
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


def test_the_defaults_are_odimos_schedule_and_fewer_epochs_are_a_truncated_run():
    """run_ic_fulltest.sh: 200 search epochs, patience 50, 200 fine-tune epochs, batch 128."""
    config = OdimoConfig(cost_weight=0.0)
    assert (config.epochs, config.patience_epochs, config.finetune_epochs,
            config.batch_size) == (200, 50, 200, 128)
    assert not config.truncated
    assert OdimoConfig(cost_weight=0.0, epochs=10).truncated
    assert OdimoConfig(cost_weight=0.0, finetune_epochs=0).truncated


def test_the_search_stops_once_patience_epochs_pass_without_a_better_epoch(trained):
    checkpoint, bundle = trained
    table = load_workload("resnet8", "synthetic").table
    config = OdimoConfig(cost_weight=1.0, epochs=8, patience_epochs=1, batch_size=512)
    result = odimo_search(checkpoint, bundle, table, load_soc("diana"), config)
    accuracies = [row["val_accuracy"] for row in result.history]
    if len(accuracies) < config.epochs:  # stopped: the last epoch was not better
        assert len(accuracies) - result.best_epoch == config.patience_epochs
    assert all(later > earlier for earlier, later in zip(accuracies, accuracies[1:-1]))


def test_the_finetune_starts_from_the_searched_state_and_keeps_its_best_epoch(trained,
                                                                               searched):
    """ODiMO fine-tunes the kept search state on the frozen argmax split and keeps the
    epoch whose discrete network is most accurate on validation (the search's own state
    when none beats it)."""
    import dataclasses

    import torch

    from networks.odimo import _accuracy

    checkpoint, bundle = trained
    config, result = searched
    assert set(result.state_dict) == set(checkpoint.state_dict)
    tuned = odimo_finetune(checkpoint, bundle, result,
                           dataclasses.replace(config, finetune_epochs=2))
    assert len(tuned.history) == 2 and tuned.samples == 2 * len(bundle.split("train"))
    model = checkpoint.build()
    model.load_state_dict(tuned.state_dict)
    analog = [tuple(torch.nonzero(layer.analog).flatten().tolist()) for layer in model.layers()]
    assert tuple(len(a) for a in analog) == result.n_analog
    assert _accuracy(model, bundle, "cpu") == pytest.approx(tuned.val_accuracy)
    accuracies = [row["val_accuracy"] for row in tuned.history]
    if tuned.best_epoch:
        assert tuned.val_accuracy == max(accuracies)
        assert tuned.best_epoch == accuracies.index(max(accuracies)) + 1
    else:
        assert tuned.val_accuracy >= max(accuracies)
    nothing = odimo_finetune(checkpoint, bundle, result,
                             dataclasses.replace(config, finetune_epochs=0))
    assert nothing.best_epoch == 0 and nothing.samples == 0
