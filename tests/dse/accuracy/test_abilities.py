"""The optional abilities of an estimator: the probe has them, a plain estimator and the
engines' stub do not, and the engines that need one refuse an estimator without it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dse.accuracy import CheckedEstimator, ProbeCandidate, ProbeResult
from dse.accuracy.abilities import Retrainable, TrainsOnProbeData
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


def test_the_probe_retrains_and_lends_its_data(probe_estimator):
    assert isinstance(probe_estimator, Retrainable)
    assert isinstance(probe_estimator, TrainsOnProbeData)
    longer = probe_estimator.retraining(70)
    assert longer.setup.config.steps == 70 and longer.setup.config.split == "val"
    confirming = probe_estimator.confirming(steps=200, finetune_seeds=3)
    assert confirming.settings()["split"] == "test" and confirming.settings()["steps"] == 200


@pytest.mark.parametrize("estimator", [plain, CheckedEstimator(plain, "plain"), StubEstimator()],
                         ids=["function", "checked", "stub"])
def test_other_estimators_have_neither_ability(estimator):
    assert not isinstance(estimator, Retrainable)
    assert not isinstance(estimator, TrainsOnProbeData)


def test_the_stub_confirms_on_the_test_images_as_the_probe_does():
    test = StubEstimator().confirming(steps=200, finetune_seeds=3)
    assert test.settings() == {"split": "test", "stub": True}
    assert StubEstimator().confirming(steps=1, finetune_seeds=1, split="val").split == "val"


def test_eden_retraining_needs_the_ability(probe_estimator):
    from dse.engines.eden import retraining
    assert retraining(probe_estimator, 9).setup.config.steps == 9
    assert retraining(plain, None) is plain
    with pytest.raises(ConfigError, match="this accuracy estimator has none"):
        retraining(CheckedEstimator(plain, "plain"), 9)


@pytest.mark.parametrize("accuracy", [None, SimpleNamespace(estimator=StubEstimator()),
                                      SimpleNamespace(estimator=plain)],
                         ids=["no accuracy", "stub", "function"])
def test_odimo_refuses_an_estimator_without_the_probes_data(accuracy):
    from dse.engines.odimo import probe_searcher
    job = SimpleNamespace(accuracy=accuracy)
    with pytest.raises(ConfigError, match="--engine odimo trains on the probe's data"):
        probe_searcher(job, dnas_epochs=1, target="latency")  # type: ignore[arg-type]
