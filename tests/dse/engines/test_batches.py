"""The Optuna engine asks and measures a batch of trials at a time when its estimator can
measure candidates together (``Batched``)."""
from __future__ import annotations

import dataclasses

import optuna
import pytest
from toy import toy_prepared

from dse.accuracy import AccuracyModel
from dse.commands.search import run_search
from dse.engines.testing import BatchedStub, StubEstimator
from dse.storage.storage import open_storage


def batched_prepared(toy_table, tmp_path, *, size, trials, signal_at=None, sampler="tpe"):
    prepared = toy_prepared(toy_table, tmp_path, trials=trials, sampler=sampler,
                            confirm=False)
    stub = BatchedStub(size, signal_at)
    accuracy = prepared.accuracy
    assert accuracy is not None
    return dataclasses.replace(prepared, accuracy=AccuracyModel(
        stub, accuracy.baseline_accuracy, accuracy.baseline)), stub


def trials_of(prepared):
    return optuna.load_study(study_name=prepared.study_name,
                             storage=open_storage(prepared.storage_url)).get_trials()


@pytest.mark.parametrize("sampler", ["tpe", pytest.param("nsga2", marks=pytest.mark.slow),
                                     pytest.param("random", marks=pytest.mark.slow)])
def test_trials_are_measured_a_batch_at_a_time(toy_table, tmp_path, sampler):
    """13 trials in batches of 4 (the baselines first, from the queue): exactly the budget,
    every trial complete, each batch's candidates measured in one call."""
    prepared, stub = batched_prepared(toy_table, tmp_path, size=4, trials=13,
                                      sampler=sampler)
    run_search(prepared)
    trials = trials_of(prepared)
    assert len(trials) == 13
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    measured = [t for t in trials if t.user_attrs["metrics"].get("accuracy") is not None]
    assert sum(stub.groups) == len(measured) and max(stub.groups) <= 4
    assert len(stub.groups) >= 4  # ceil(13 / 4) batches, a batch over budget measures none
    assert len({tuple(sorted(t.params.items())) for t in trials}) > 8  # not one proposal


def test_gp_proposes_one_at_a_time(toy_table, tmp_path):
    pytest.importorskip("scipy")
    prepared, stub = batched_prepared(toy_table, tmp_path, size=4, trials=6, sampler="gp")
    run_search(prepared)
    assert set(stub.groups) == {1}


def test_a_signal_inside_a_batch_fails_it_and_keeps_the_batches_before(toy_table, tmp_path):
    """SIGTERM inside the second batch: the first batch's trials stay complete, the second
    batch's are failed (none left running), its queued baselines are queued again, and a
    resumed search completes the budget."""
    from dse.commands.search import SearchInterrupted

    prepared, stub = batched_prepared(toy_table, tmp_path, size=3, trials=9, signal_at=5)
    with pytest.raises(SearchInterrupted):
        run_search(prepared)
    trials = trials_of(prepared)
    states = [t.state for t in trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert optuna.trial.TrialState.RUNNING not in states
    assert states[3:6] == [optuna.trial.TrialState.FAIL] * 3
    again, _ = batched_prepared(toy_table, tmp_path, size=3, trials=9)
    run_search(again)
    done = [t for t in trials_of(again) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 9
    baselines = [t.user_attrs.get("baseline") for t in done if t.user_attrs.get("baseline")]
    assert len(baselines) == len(set(baselines))  # each baseline once


def test_eden_characterises_its_data_in_lockstep(tmp_path):
    """EDEN's coarse and fine bisections are independent: a batched estimator gets one
    round of them per call, and the tolerances are those found one probe at a time."""
    from toy import toy_problem

    from dse.engines.eden import eden_for_split
    from dse.engines.testing import TOY_LAYERS
    from hw_models.layer_table import LayerTable
    from hw_models.soc import PRESET_DIR

    streaming = tmp_path / "streaming.toml"  # the toy's weights in DRAM: data to characterise
    streaming.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    problem = toy_problem(LayerTable.from_records(TOY_LAYERS), hw=str(streaming))
    alone = eden_for_split(problem, StubEstimator(), (0,) * 5, None, steps=3)
    batched = BatchedStub(size=64)
    together = eden_for_split(problem, batched, (0,) * 5, None, steps=3)
    assert together.coarse_ber == alone.coarse_ber and together.fine_ber == alone.fine_ber
    assert together.candidate == alone.candidate and together.probes == alone.probes
    searches = len(alone.fine_ber) + 1
    assert max(batched.groups) == searches  # the coarse and every datum's search at once
    assert sum(batched.groups) < alone.probes  # references and validation one at a time


def test_a_batch_holds_at_most_max_proposals(toy_table, tmp_path, monkeypatch):
    """The probe may measure 64 fine-tunes at once, but a batch's proposals do not learn
    from each other: the engine asks at most ``MAX_PROPOSALS`` trials at a time."""
    from dse.engines.optuna_engine import engine

    monkeypatch.setattr(engine, "MAX_PROPOSALS", 3)
    prepared, stub = batched_prepared(toy_table, tmp_path, size=8, trials=12)
    run_search(prepared)
    assert len(trials_of(prepared)) == 12
    assert max(stub.groups) == 3
