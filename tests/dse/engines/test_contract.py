"""Every engine passes the engine contract; engines are picked by name."""
from __future__ import annotations

import pytest

from dse.engines import engine_names, make_engine
from dse.engines.optuna_engine import OptunaEngine
from dse.engines.testing import EngineContract
from hw_models import ConfigError


class TestOptunaEngine(EngineContract):
    samples_candidates = True

    def make_engine(self, problem, study) -> OptunaEngine:
        return make_engine("optuna", sampler="random", problem=problem, study=study)


@pytest.mark.slow
class TestOptunaEngineTpe(EngineContract):
    samples_candidates = True

    def make_engine(self, problem, study) -> OptunaEngine:
        return make_engine("optuna", sampler="tpe", problem=problem, study=study)


def test_engines_by_name():
    assert engine_names() == ("optuna", "odimo", "eden", "odimo+eden", "frontier")
    assert isinstance(make_engine("optuna", sampler="nsga2"), OptunaEngine)
    with pytest.raises(ConfigError, match="unknown engine 'annealing'"):
        make_engine("annealing")
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_engine("optuna", sampler="nope")


def stub_searcher(weight: float):
    """A stand-in for the supernet search on the toy network: a larger lambda puts a larger
    share of every layer's channels on the analog array (counts off the 16-channel grid)."""
    from dse.engines.odimo import SplitChoice
    from dse.engines.testing import TOY_LAYERS
    counts, channels = [], []
    for layer in TOY_LAYERS:
        capable = layer["kind"] in ("conv", "linear")
        count = round(layer["cout"] * weight / (1 + weight)) if capable else 0
        counts.append(count)
        channels.append(tuple(range(count)) if capable else None)
    return SplitChoice(tuple(counts), tuple(channels), {"stub": True})


class TestOdimoEngine(EngineContract):
    def make_engine(self, problem, study):
        from dse.engines.odimo import OdimoEngine
        return OdimoEngine(cost_weights=(0.1, 1.0, 10.0), searcher=stub_searcher)


def test_odimo_records_one_trial_per_lambda_with_its_channels(tmp_path):
    from dse.engines.testing import toy_problem
    from dse.results.ledger import ODIMO_LAMBDA_ATTR as LAMBDA_ATTR
    from dse.results.ledger import trial_candidate
    contract = TestOdimoEngine()
    study, _ = contract._run(tmp_path, trials=11)  # 8 queued + 3 lambdas
    own = [t for t in contract._complete(study) if LAMBDA_ATTR in t.user_attrs]
    assert [t.user_attrs[LAMBDA_ATTR] for t in own] == [0.1, 1.0, 10.0]
    assert all(t.user_attrs["engine"] == "odimo" for t in contract._complete(study))
    space = toy_problem().space
    first = trial_candidate(own[0], space)
    assert first.n_analog == (1, 0, 3, 6, 1)  # round(cout / 11): off the 16-channel grid
    assert first.analog_channels[3] == tuple(range(6)) and first.analog_channels[1] is None
    assert first.vdd_v == (1.1,)  # ODiMO does not model DRAM: nominal
    study, _ = contract._run(tmp_path, trials=11)  # a rerun measures nothing again
    assert len(contract._complete(study)) == 11
    assert all("engine_label" not in t.user_attrs for t in own)  # ODiMO's own schedule
    assert all("delivered_weights" not in t.user_attrs for t in own)  # the stub trains none


def test_the_default_lambdas_are_odimos_per_cycle_grid_on_resnet20():
    """ODiMO's ResNet20 grid per cycle times ResNet20's all-digital cycles in this cost
    model: if the model's ResNet20 changes, the grid must be derived again."""
    from click.testing import CliRunner

    from cli import cli
    from dse.engines.odimo import (
        DEFAULT_LAMBDAS,
        ODIMO_LAMBDAS_PER_CYCLE,
        RESNET20_ALL_DIGITAL_CYCLES,
    )
    result = CliRunner().invoke(cli, ["cost", "--network", "resnet20", "--dataset", "cifar10",
                                      "--mapping", "all-digital", "--dram", "none", "--json"])
    import json
    cycles = json.loads(result.stdout)["total"]["latency_cycles"]
    assert round(cycles) == RESNET20_ALL_DIGITAL_CYCLES
    assert DEFAULT_LAMBDAS == pytest.approx([v * cycles for v in ODIMO_LAMBDAS_PER_CYCLE],
                                            rel=2e-3)


def test_a_truncated_odimo_is_labelled_with_its_epochs(tmp_path):
    from dse.engines.odimo import OdimoEngine, odimo_label
    assert odimo_label(200, 200) == "odimo" and odimo_label(10, 200) == "odimo[10 ep]"
    assert odimo_label(10, 0) == "odimo[10 ep, ft 0 ep]"
    assert odimo_label(10, 5, "odimo+eden") == "odimo+eden[10 ep, ft 5 ep]"

    class Truncated(TestOdimoEngine):
        def make_engine(self, problem, study):
            return OdimoEngine(cost_weights=(0.1,), searcher=stub_searcher, dnas_epochs=10)
    contract = Truncated()
    study, _ = contract._run(tmp_path, trials=9)
    own = [t for t in contract._complete(study) if "odimo_lambda" in t.user_attrs]
    assert [t.user_attrs["engine_label"] for t in own] == ["odimo[10 ep]"]
    from dse.results.tables import trials_frame
    frame = trials_frame(study)  # what trials.csv, the summary and the plots show
    assert list(frame.loc[frame["trial"] == own[0].number, "engine"]) == ["odimo[10 ep]"]


def test_odimo_bad_settings_are_one_line():
    from dse.engines.odimo import OdimoEngine
    for settings, message in [({"cost_weights": ()}, "--lambdas is empty"),
                              ({"cost_weights": (-1.0,)}, ">= 0"),
                              ({"dnas_epochs": 0}, "--dnas-epochs must be in \\[1, 10,000\\]"),
                              ({"patience_epochs": 0}, "--odimo-patience-epochs must be in"),
                              ({"finetune_epochs": -1}, "--odimo-finetune-epochs must be in "
                                                        "\\[0, 10,000\\]"),
                              ({"cost_weights": (float("inf"),)}, "finite numbers >= 0")]:
        with pytest.raises(ConfigError, match=message):
            OdimoEngine(**settings)


class TestEdenEngine(EngineContract):
    def make_engine(self, problem, study):
        from dse.engines.eden import EdenEngine
        from dse.engines.testing import StubRetrainer
        return EdenEngine(bisection_steps=2, retrainer=StubRetrainer())

    def test_runs_without_accuracy(self, tmp_path):
        """EDEN characterises by accuracy: without it, one line, before any trial."""
        with pytest.raises(ConfigError, match="needs accuracy among the objectives"):
            super().test_runs_without_accuracy(tmp_path)


def test_eden_characterises_maps_and_meets_the_target(tmp_path):
    """The stub's accuracy falls with the weight BER; the toy's weights are resident on
    DIANA, so a streaming SoC preset puts them in DRAM."""
    from toy import toy_problem as search_problem

    from dse.engines.eden import data_in_dram, eden_for_split
    from dse.engines.testing import TOY_LAYERS, StubEstimator
    from dse.space import at_point
    from hw_models import LayerTable

    preset = tmp_path / "streaming.toml"
    from hw_models.soc import PRESET_DIR
    text = (PRESET_DIR / "diana.toml").read_text().replace(
        '[memory.weights_resident]\nvalue = "auto"', "[memory.weights_resident]\nvalue = false")
    preset.write_text(text)
    for partitions in (1, 2):
        problem = search_problem(LayerTable.from_records(TOY_LAYERS), partitions=partitions,
                                 hw=str(preset))
        counts = (0, 0, 0, 0, 0)
        data = data_in_dram(problem, counts)
        # streamed weights leave L2 free: big's 512 kB working set fits there
        assert [d.name for d in data] == ["weights/first", "weights/dw", "weights/mid",
                                          "weights/big", "weights/fc"]
        result = eden_for_split(problem, StubEstimator(), counts, None, steps=4)
        assert result.met and 0 < result.coarse_ber < 0.5
        assert set(result.fine_ber) == {d.name for d in data}
        assert all(ber < 0.5 for ber in result.fine_ber.values())
        nominal = at_point(problem.space, counts, None)
        assert len(result.candidate.vdd_v) == partitions
        assert min(result.candidate.vdd_v) < nominal.vdd_v[0]  # something was undervolted


class TestOdimoEdenEngine(EngineContract):
    def make_engine(self, problem, study):
        from dse.engines.eden import OdimoEdenEngine
        from dse.engines.testing import StubRetrainer
        return OdimoEdenEngine(cost_weights=(0.1, 1.0), searcher=stub_searcher,
                               bisection_steps=2, retrainer=StubRetrainer())

    def test_runs_without_accuracy(self, tmp_path):
        with pytest.raises(ConfigError, match="needs accuracy among the objectives"):
            super().test_runs_without_accuracy(tmp_path)


def test_odimo_eden_maps_each_odimo_split(tmp_path):
    from dse.results.ledger import ODIMO_LAMBDA_ATTR, eden_tolerances
    contract = TestOdimoEdenEngine()
    study, _ = contract._run(tmp_path, trials=10)  # 8 queued + 2 lambdas
    own = [t for t in contract._complete(study) if ODIMO_LAMBDA_ATTR in t.user_attrs]
    assert [t.user_attrs[ODIMO_LAMBDA_ATTR] for t in own] == [0.1, 1.0]
    assert [t.user_attrs["eden"]["mapping"] for t in own] == ["odimo lambda 0.1",
                                                              "odimo lambda 1"]
    assert set(eden_tolerances(study.user_attrs)) == {"odimo lambda 0.1", "odimo lambda 1"}
    assert own[1].params["n_analog:big"] == 32  # the stub's split at lambda 1


def test_eden_on_a_split_with_nothing_in_dram_has_no_tolerance_to_report():
    from toy import toy_problem as search_problem

    from dse.engines.eden import eden_for_split
    from dse.engines.testing import TOY_LAYERS, StubEstimator
    from hw_models import LayerTable
    on_chip = search_problem(LayerTable.from_records(
        [layer for layer in TOY_LAYERS if layer["name"] != "big"]))
    result = eden_for_split(on_chip, StubEstimator(), (0, 0, 0, 0), None, steps=2)
    assert result.coarse_ber is None and result.fine_ber == {} and result.met
    # nothing to corrupt, but the DRAM still has to work: the lowest error-free point, not
    # the bottom of the grid (0.85 V, 9.125 ns: BER 0.44)
    assert result.candidate.vdd_v == (0.95,) and result.candidate.trcd_ns == (13.375,)


def test_a_diverged_odimo_search_is_a_failed_trial_and_is_not_run_again(tmp_path, caplog):
    from dse.engines.odimo import OdimoEngine
    from dse.engines.units import UnitFailed
    from dse.results.ledger import ODIMO_LAMBDA_ATTR, UNIT_FAILED_ATTR

    def diverging(weight: float):
        if weight == 10.0:
            raise UnitFailed("ODiMO's search at lambda 10 diverged")
        return stub_searcher(weight)

    class Diverging(TestOdimoEngine):
        def make_engine(self, problem, study):
            return OdimoEngine(cost_weights=(0.1, 1.0, 10.0), searcher=diverging)

    contract = Diverging()
    with caplog.at_level("WARNING", logger="dse"):
        study, _ = contract._run(tmp_path, trials=11)
    assert "lambda 10 diverged" in caplog.text
    [failed] = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed.user_attrs[UNIT_FAILED_ATTR] and "diverged" in failed.user_attrs[
        "fail_reason"]
    measured = [t.user_attrs[ODIMO_LAMBDA_ATTR] for t in contract._complete(study)
                if ODIMO_LAMBDA_ATTR in t.user_attrs]
    assert measured == [0.1, 1.0] and len(contract._complete(study)) == 10
    study, _ = contract._run(tmp_path, trials=11)  # a rerun does not search it again
    assert [t.state.name for t in study.trials].count("FAIL") == 1


class TestFrontierEngine(EngineContract):
    def make_engine(self, problem, study):
        from dse.engines.frontier import FrontierEngine
        from dse.engines.testing import StubRetrainer
        return FrontierEngine(verify=3, retrainer=StubRetrainer())
