"""EDEN as its authors run it: retrain once per split (cached), characterise the retrained
network on one half of the validation images, map coarse (one partition) or fine (several)
tolerances with Algorithm 1, validate on the other half; the trial names the weights."""
from __future__ import annotations

import pytest
from toy import toy_problem as search_problem

from dse.accuracy import AccuracyModel, ProbeCandidate, ProbeResult
from dse.engines import Budget, EngineJob
from dse.engines.eden import (
    DEFAULT_RETRAIN_EPOCHS,
    RETRAIN_INDEX,
    DataType,
    EdenEngine,
    EdenSettings,
    OdimoEdenEngine,
    assign,
    data_in_dram,
    eden_for_split,
    retrain_target_ber,
)
from dse.engines.testing import TOY_LAYERS, StubEstimator, StubRetrainer
from dse.problem import most_aggressive_point, point_ber
from dse.results.ledger import (
    DELIVERED_WEIGHTS_ATTR,
    EDEN_ATTR,
    ENGINE_LABEL_ATTR,
    Ledger,
    open_ledger,
)
from dse.signals import SignalGuard
from hw_models import ConfigError, LayerTable
from hw_models.soc import PRESET_DIR


@pytest.fixture()
def streaming(tmp_path):
    """DIANA with its weights streamed from DRAM: the toy's five weight tensors live there."""
    preset = tmp_path / "streaming.toml"
    preset.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    return str(preset)


def problem_with(streaming: str, partitions: int = 1, quantile: str = "max"):
    return search_problem(LayerTable.from_records(TOY_LAYERS), partitions=partitions,
                          hw=streaming, ber_quantile=quantile)


# ---- Algorithm 1 ----------------------------------------------------------------------

def datum(name: str, size_bytes: float) -> DataType:
    return DataType(name, "weights", 0, size_bytes)


def test_algorithm_1_places_by_tolerance_in_the_most_aggressive_partition_with_room():
    data = [datum("tolerant", 10), datum("fragile", 10), datum("also-tolerant", 10),
            datum("intolerant", 5)]
    tolerance = {"tolerant": 1e-3, "fragile": 1e-5, "also-tolerant": 1e-3, "intolerant": 0.0}
    points = [(1.1, 13.75), (1.0, 13.0), (0.9, 12.0)]  # safe, moderate, aggressive
    bers = [0.0, 1e-4, 1e-2]
    capacity = [100.0, 15.0, 100.0]
    # intolerant and fragile tolerate only the safe partition; the aggressive one's BER is
    # beyond everyone; the moderate one has room for one of the two tolerant data: the
    # first in sorted order (ties by name), the other goes to the safe partition
    assert assign(data, tolerance, bers, points, capacity) == [0, 0, 1, 0]
    assert assign(data, tolerance, bers, points, [100.0, 100.0, 100.0]) == [1, 0, 1, 0]
    assert assign(data, {**tolerance, "intolerant": 0.05}, bers, points,
                  [100.0, 15.0, 100.0]) == [0, 0, 1, 2]
    assert assign([datum("huge", 200)], {"huge": 1.0}, bers, points, capacity) is None


class Sensitive:
    """Accuracy falls with each weight tensor's BER times its own sensitivity: the fine
    tolerances differ by tensor, and the coarse one is below them all."""

    SENSITIVITY = (200.0, 1.0, 20.0, 2.0, 2000.0)  # first, dw, mid, big, fc

    def __init__(self, split: str = "val-a") -> None:
        import numpy as np
        self.split = split
        self.draws = np.random.default_rng(7).random(2000)
        self.calls = 0

    def __call__(self, candidate: ProbeCandidate) -> ProbeResult:
        self.calls += 1
        loss = sum(s * b for s, b in zip(self.SENSITIVITY, candidate.weight_ber))
        return ProbeResult.from_correct((self.draws < 0.95 - loss)[None, None], seconds=0.0)


@pytest.mark.slow
def test_one_partition_maps_the_coarse_tolerance_several_the_fine_ones(streaming):
    one = problem_with(streaming, 1)
    result = eden_for_split(one, Sensitive(), (0,) * 5, None, validate=Sensitive("val-b"),
                            steps=6)
    assert result.used == "coarse" and result.tightened == 0
    assert result.coarse_ber < min(result.fine_ber.values())
    assert (result.candidate.vdd_v[0], result.candidate.trcd_ns[0]) == most_aggressive_point(
        one, result.coarse_ber)
    assert result.tolerance_record()["mapped_with"] == "coarse"

    # vendor B's mean DIMM: the grid's tRCDs below 13.375 ns give BERs from 1e-5 up
    four = problem_with(streaming, 4, "mean")
    result = eden_for_split(four, Sensitive(), (0,) * 5, None, validate=Sensitive("val-b"),
                            steps=6)
    assert result.used == "fine"
    candidate = result.candidate
    where = {d.name: candidate.weight_partition[d.layer] for d in result.data}
    for name, k in where.items():  # each datum within its own (tightened) tolerance
        assert result.partition_ber[k] <= result.fine_ber[name] / 10 ** result.tightened
    # the tolerant depthwise weights sit at a more aggressive point (lower VDD, then
    # shorter tRCD) than the fragile classifier's
    point = {name: (candidate.vdd_v[k], candidate.trcd_ns[k]) for name, k in where.items()}
    assert point["weights/dw"] < point["weights/fc"]
    assert result.partition_ber[where["weights/dw"]] > result.partition_ber[where["weights/fc"]]
    assert len(set(where.values())) > 1  # the fine mapping uses several partitions
    for k, ber in enumerate(result.partition_ber):
        assert ber == point_ber(four, candidate.vdd_v[k], candidate.trcd_ns[k])


# ---- the engine -----------------------------------------------------------------------

def run_engine(tmp_path, problem, engine, estimator, *, study="s", trials=9):
    made, _ = open_ledger(name=study, storage=f"sqlite:///{tmp_path / 'study.db'}",
                          identity={"toy": 1}, problem=problem)
    with SignalGuard() as guard:
        engine.run(EngineJob(problem=problem, ledger=Ledger(made, problem),
                             budget=Budget(trials), seed=0,
                             accuracy=AccuracyModel(estimator, 0.95), guard=guard))
    return [t for t in made.get_trials() if EDEN_ATTR in t.user_attrs]


def test_characterises_and_validates_on_disjoint_images_and_measures_the_trial_as_usual(
        tmp_path, streaming):
    problem = problem_with(streaming, 2)
    estimator = StubEstimator(folder=tmp_path)
    retrainer = StubRetrainer(gain=10.0)
    [trial] = run_engine(tmp_path, problem, EdenEngine(
        mappings=("all-digital",), bisection_steps=3, retrainer=retrainer), estimator)
    own = [(split, tuned, gain) for split, tuned, gain, _ in estimator.measured[8:]]
    characterised = [entry for entry in own if entry[0] == "val-a"]
    validated = [entry for entry in own if entry[0] == "val-b"]
    assert len(characterised) >= 1 + 6 and validated  # reference, coarse and 5 fine at least
    # the reference is the original network (gain 1), first; every other measurement is
    # of the retrained one (gain 10), as it is (no fine-tune)
    assert (characterised[0], validated[0]) == (("val-a", False, 1.0), ("val-b", False, 1.0))
    assert set(characterised[1:]) == {("val-a", False, 10.0)}
    assert set(validated[1:]) == {("val-b", False, 10.0)}
    assert own[-1] == ("val", True, 10.0)  # the trial: the study's probe, retrained weights
    assert len(own) == len(characterised) + len(validated) + 1
    eden = trial.user_attrs[EDEN_ATTR]
    assert (eden["characterised_on"], eden["validated_on"]) == ("val-a", "val-b")
    assert eden["tolerance_used"] == "fine" and eden["target_met"]
    [(request, epochs)] = retrainer.calls
    assert epochs == DEFAULT_RETRAIN_EPOCHS
    target = retrain_target_ber(problem)
    assert 0 < target <= 1e-2 and max(request.weight_ber) == target  # every datum in DRAM
    assert sorted(set(request.weight_ber)) == [target]  # the toy streams all five


def test_the_trial_names_the_retrained_weights_and_their_samples(tmp_path, streaming):
    problem = problem_with(streaming)
    estimator = StubEstimator(folder=tmp_path)
    [trial] = run_engine(tmp_path, problem, EdenEngine(
        mappings=("all-digital",), bisection_steps=2, retrain_epochs=2,
        retrainer=StubRetrainer(samples_per_epoch=1000)), estimator)
    record = trial.user_attrs[DELIVERED_WEIGHTS_ATTR]
    assert record["samples"] == 2000 and record["epochs"] == 2
    assert trial.user_attrs[EDEN_ATTR]["samples"] == 2000
    assert trial.user_attrs[ENGINE_LABEL_ATTR] == "eden[2 ep]"  # below the default 5
    from dse.accuracy.abilities import delivered
    again = delivered(estimator.confirming(split="test"), record)  # as dse confirm does
    assert again.gain == 10.0 and again.split == "test"
    [default] = run_engine(tmp_path, problem, EdenEngine(
        mappings=("all-digital",), bisection_steps=2, retrainer=StubRetrainer()),
        StubEstimator(folder=tmp_path), study="default")
    assert ENGINE_LABEL_ATTR not in default.user_attrs


def test_a_split_with_nothing_in_dram_is_not_retrained(tmp_path):
    on_chip = search_problem(LayerTable.from_records(
        [layer for layer in TOY_LAYERS if layer["name"] != "big"]))
    assert data_in_dram(on_chip, (0,) * 4) == []
    retrainer = StubRetrainer()
    [trial] = run_engine(tmp_path, on_chip, EdenEngine(
        mappings=("all-digital",), retrainer=retrainer), StubEstimator(), trials=9)
    assert retrainer.calls == [] and DELIVERED_WEIGHTS_ATTR not in trial.user_attrs
    assert trial.user_attrs[EDEN_ATTR]["samples"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("folder", [True, False], ids=["results folder", "in memory"])
def test_retraining_is_done_once_per_split_and_read_back(tmp_path, streaming, folder):
    problem = problem_with(streaming)
    where = tmp_path / "weights" if folder else None
    first = StubEstimator(folder=where)
    retrainer = StubRetrainer()
    engine = EdenEngine(mappings=("all-digital", "min-latency"), bisection_steps=2,
                        retrainer=retrainer)
    trials = run_engine(tmp_path, problem, engine, first, trials=10)
    assert len(retrainer.calls) == 2 and len(trials) == 2  # one per split
    assert not any(t.user_attrs[DELIVERED_WEIGHTS_ATTR]["cached"] for t in trials)
    if folder:
        assert len(list((where / RETRAIN_INDEX).glob("*.json"))) == 2
    # another study (or worker) over the same results: the weights are read back
    second = StubEstimator(folder=where, shared=first.shared)
    again = run_engine(tmp_path, problem, engine, second, study="other", trials=10)
    assert len(retrainer.calls) == 2
    assert all(t.user_attrs[DELIVERED_WEIGHTS_ATTR]["cached"] for t in again)
    assert [t.user_attrs[DELIVERED_WEIGHTS_ATTR]["tensors_sha256"] for t in again] == \
        [t.user_attrs[DELIVERED_WEIGHTS_ATTR]["tensors_sha256"] for t in trials]
    # other epochs are another retraining
    run_engine(tmp_path, problem, EdenEngine(mappings=("all-digital",), bisection_steps=2,
                                             retrain_epochs=1, retrainer=retrainer),
               StubEstimator(folder=where, shared=first.shared), study="light", trials=9)
    assert len(retrainer.calls) == 3


def test_weights_that_are_gone_are_retrained(tmp_path, streaming):
    problem = problem_with(streaming)
    retrainer = StubRetrainer()
    engine = EdenEngine(mappings=("all-digital",), bisection_steps=2, retrainer=retrainer)
    run_engine(tmp_path, problem, engine, StubEstimator(folder=tmp_path))
    run_engine(tmp_path, problem, engine, StubEstimator(folder=tmp_path), study="other")
    assert len(retrainer.calls) == 2  # the index names weights this process no longer has


def test_odimo_eden_retrains_each_odimo_split(tmp_path):
    from test_contract import stub_searcher

    from dse.engines.testing import toy_problem
    retrainer = StubRetrainer()
    trials = run_engine(tmp_path, toy_problem(), OdimoEdenEngine(
        cost_weights=(0.1, 1.0), searcher=stub_searcher, bisection_steps=2, retrain_epochs=1,
        retrainer=retrainer), StubEstimator(), trials=10)
    assert len(retrainer.calls) == 2
    assert [t.user_attrs[ENGINE_LABEL_ATTR] for t in trials] == ["odimo+eden[retrain 1 ep]"] * 2
    assert all(DELIVERED_WEIGHTS_ATTR in t.user_attrs for t in trials)


@pytest.mark.parametrize("epochs", [0, -1, 10_001, 2.5, True])
def test_bad_retrain_epochs_are_one_line(epochs):
    with pytest.raises(ConfigError, match="--eden-retrain-epochs must be an integer in "
                                          "\\[1, 10,000\\]"):
        EdenSettings(retrain_epochs=epochs)
    with pytest.raises(ConfigError, match="--eden-retrain-epochs"):
        EdenEngine(retrain_epochs=epochs)


def test_odimo_eden_names_each_methods_lighter_settings():
    from dse.engines.eden import pipeline_label
    assert pipeline_label("odimo+eden", 200, 200, 5) is None
    assert pipeline_label("odimo+eden", 10, 200, 5) == "odimo+eden[10 ep]"
    assert pipeline_label("odimo+eden", 10, 0, 2) == "odimo+eden[10 ep, ft 0 ep, retrain 2 ep]"
    assert pipeline_label("odimo+eden", 200, 200, 2) == "odimo+eden[retrain 2 ep]"


def test_the_retraining_key_names_the_quantisers_and_the_data():
    """Weights retrained under other quantisers, or on other data, are other weights."""
    from types import SimpleNamespace

    from dse.engines.eden import _ProbeRetrainer
    from hw_models.error_models import ErrorModelParams
    from networks.quantize import QUANTIZER_VERSION
    setup = SimpleNamespace(checkpoint=SimpleNamespace(tensors_sha256="c" * 64),
                            data_sha256="d" * 64, bundle=SimpleNamespace(
                                spec=SimpleNamespace(name="digits")),
                            config=SimpleNamespace(error_model=0),
                            error_params=ErrorModelParams(), row_bytes=2048)
    identity = _ProbeRetrainer(setup).identity
    assert identity["quantizer"] == QUANTIZER_VERSION and identity["data"] == "d" * 64
