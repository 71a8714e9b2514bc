"""The optional abilities of an estimator: the probe has them, a plain estimator does not
(the engines' stub has those EDEN needs), and the engines that need one refuse an estimator
without it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dse.accuracy import CheckedEstimator, ProbeCandidate, ProbeResult
from dse.accuracy.abilities import Characterising, StartsFrom, TrainsOnProbeData
from dse.accuracy.defaults import ProbeConfig
from dse.engines.testing import StubEstimator
from hw_models import ConfigError
from hw_models.error_models import ErrorModelParams


def plain(candidate: ProbeCandidate) -> ProbeResult:
    return ProbeResult.from_correct([[[True, False]]], seconds=0.0)


@pytest.fixture()
def probe_estimator():
    from dse.accuracy.probe_estimator import ProbeEstimator, ProbeSetup
    setup = ProbeSetup(checkpoint=None, bundle=None, config=ProbeConfig(steps=20),  # type: ignore
                       error_params=ErrorModelParams(), row_bytes=2048)
    return ProbeEstimator(setup)


def test_the_probe_characterises_as_it_is_and_lends_its_data(probe_estimator):
    assert isinstance(probe_estimator, Characterising)
    assert isinstance(probe_estimator, StartsFrom)
    assert isinstance(probe_estimator, TrainsOnProbeData)
    as_is = probe_estimator.characterising("val-a")
    assert as_is.setup.config.steps == 0 and as_is.setup.config.split == "val-a"
    assert as_is.setup.config.finetune_seeds == 1
    assert as_is.setup.config.error_seeds == probe_estimator.setup.config.error_seeds
    confirming = probe_estimator.confirming(steps=200, finetune_seeds=3)
    assert confirming.settings()["split"] == "test" and confirming.settings()["steps"] == 200


@pytest.mark.parametrize("estimator", [plain, CheckedEstimator(plain, "plain"), StubEstimator()],
                         ids=["function", "checked", "stub"])
def test_other_estimators_do_not_lend_the_probes_data(estimator):
    assert not isinstance(estimator, TrainsOnProbeData)
    assert isinstance(estimator, Characterising) == isinstance(estimator, StubEstimator)


def test_the_stub_confirms_on_the_test_images_as_the_probe_does():
    test = StubEstimator().confirming(steps=200, finetune_seeds=3)
    assert test.settings() == {"split": "test", "stub": True}
    assert StubEstimator().confirming(steps=1, finetune_seeds=1, split="val").split == "val"


def test_eden_refuses_an_estimator_that_cannot_start_from_its_weights(tmp_path):
    from dse.accuracy import AccuracyModel
    from dse.engines import Budget, EngineJob
    from dse.engines.eden import EdenEngine, probe_retrainer
    from dse.engines.testing import StubRetrainer, toy_problem
    problem = toy_problem()
    for estimator in (plain, CheckedEstimator(plain, "plain")):
        job = EngineJob(problem=problem, ledger=None, budget=Budget(1), seed=0,  # type: ignore
                        accuracy=AccuracyModel(estimator, 0.5))
        with pytest.raises(ConfigError, match="it needs the built-in probe"):
            EdenEngine(retrainer=StubRetrainer()).run(job)
    stub_job = EngineJob(problem=problem, ledger=None, budget=Budget(1), seed=0,  # type: ignore
                         accuracy=AccuracyModel(StubEstimator(), 0.5))
    with pytest.raises(ConfigError, match="retrains the network on the probe's data"):
        probe_retrainer(stub_job)


@pytest.mark.parametrize("accuracy", [None, SimpleNamespace(estimator=StubEstimator()),
                                      SimpleNamespace(estimator=plain)],
                         ids=["no accuracy", "stub", "function"])
def test_odimo_refuses_an_estimator_without_the_probes_data(accuracy):
    from dse.engines.odimo import probe_searcher
    job = SimpleNamespace(accuracy=accuracy)
    with pytest.raises(ConfigError, match="--engine odimo trains on the probe's data"):
        probe_searcher(job, dnas_epochs=1, target="latency")  # type: ignore[arg-type]
