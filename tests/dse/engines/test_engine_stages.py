"""What engines tell of the long work inside a trial (``EngineJob.stage``): ODiMO's DNAS
steps per lambda, EDEN's characterisation probes per split."""
from __future__ import annotations

from types import SimpleNamespace

from helpers import small_bundle, tiny_checkpoint
from toy import toy_problem

from dse.engines.eden import eden_for_split
from dse.engines.testing import TOY_LAYERS, StubEstimator
from hw_models import LayerTable
from hw_models.soc import PRESET_DIR


class Stages:
    """A stand-in for the display: records each stage opened and what it was told."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.told: list[tuple[int, int, str]] = []
        self.labelled: list[tuple[str, int, int, str]] = []

    def __call__(self, label: str, unit: str):
        self.opened.append((label, unit))

        def tell(done: int, total: int, status: str) -> None:
            self.told.append((done, total, status))
            self.labelled.append((label, done, total, status))
        return tell


def test_eden_tells_its_probes_before_each_and_when_mapped(tmp_path):
    streaming = tmp_path / "streaming.toml"  # the toy's weights in DRAM: data to characterise
    streaming.write_text((PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false"))
    problem = toy_problem(LayerTable.from_records(TOY_LAYERS), hw=str(streaming))
    stages = Stages()
    result = eden_for_split(problem, StubEstimator(), (0,) * 5, None, steps=2,
                            progress=stages("EDEN", "probe"))
    told = stages.told
    assert [done for done, _, _ in told] == list(range(result.probes + 1))
    assert told[-1] == (result.probes, result.probes, "mapped")
    # two references (characterisation and held-out images), six bisections at most, and
    # the validation with each tightening it may take
    planned = 2 + (5 + 1) * (2 + 2) + 1 + 3
    assert all(total == planned for _, total, _ in told[:-1]) and result.probes <= planned
    statuses = [status for _, _, status in told]
    assert statuses[0] == "the original split without errors"
    assert "characterising all 5 data" in statuses
    assert "characterising weights/big" in statuses
    assert statuses[-2] == "validating the mapping on held-out images"


def test_odimo_opens_a_dnas_and_a_finetune_stage_per_lambda(tmp_path):
    from dse.accuracy.defaults import ProbeConfig
    from dse.accuracy.probe_estimator import ProbeSetup
    from dse.engines.odimo import probe_searcher
    from dse.problem import build_problem
    from hw_models.error_models import ErrorModelParams
    from networks.train import load_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint(tmp_path / "tiny.pt"))
    setup = ProbeSetup(checkpoint, small_bundle("synthetic"), ProbeConfig(steps=0),
                       ErrorModelParams(), row_bytes=2048)
    problem = build_problem(network="resnet8", dataset="synthetic",
                            objectives="accuracy,latency")
    stages = Stages()
    job = SimpleNamespace(accuracy=SimpleNamespace(estimator=SimpleNamespace(setup=setup)),
                          problem=problem, seed=0, stage=stages)
    search = probe_searcher(job, dnas_epochs=1, target="latency", finetune_epochs=1)
    search(0.1)
    search(10.0)
    assert stages.opened == [("DNAS", "step"), ("ODiMO fine-tune", "step")] * 2
    dnas = [told[1:] for told in stages.labelled if told[0] == "DNAS"]
    steps = dnas[:len(dnas) // 2]
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1] > 0
    assert steps[0][2] == "lambda 0.1, epoch 1/1"
    assert steps[-1][2].startswith("lambda 0.1, epoch 1/1, tau ")
    assert dnas[len(steps)][:1] == (0,)  # the next lambda starts afresh
    tuned = [told[1:] for told in stages.labelled if told[0] == "ODiMO fine-tune"]
    assert tuned[-1][0] == tuned[-1][1] > 0
    assert tuned[-1][2] == "lambda 10, fine-tune epoch 1/1"
