"""What a study and the probe trust: the checkpoint's contents, cached values, finite costs."""
from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint

import dse
from cli import cli
from dse.evaluate import evaluate
from dse.problem import build_problem
from dse.results.ledger import CONFIG_ATTR
from dse.space import nominal_candidate
from dse.storage.storage import open_storage
from hw_models import ConfigError
from hw_models.soc import PRESET_DIR

PROBE = ["--dataset", "synthetic", "--probe-steps", "0", "--finetune-seeds", "1",
         "--error-seeds", "1", "--no-confirm"]
REFUSED = "exists with other settings (checkpoint)"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def stored_identity(results, study="s") -> dict:
    storage = open_storage(f"sqlite:///{results / study / 'study.db'}")
    return optuna.load_study(study_name=study, storage=storage).user_attrs[CONFIG_ATTR]


def set_identity(results, identity, study="s") -> None:
    storage = open_storage(f"sqlite:///{results / study / 'study.db'}")
    optuna.load_study(study_name=study, storage=storage).set_user_attr(CONFIG_ATTR, identity)


# ---- a study is bound to the probe's quantisers ----------------------------------------

def test_a_study_is_bound_to_the_probe_s_quantisers(toy_table, tmp_path):
    """Accuracies measured under other quantisers are not comparable: a study made under
    others, or before studies recorded theirs, is refused in one line; a study without
    the probe (cost only, a user's estimator) records none and is compared as before."""
    from toy import toy_problem

    from dse.config import SearchConfig
    from dse.results.ledger import check_identity, open_ledger
    from networks.quantize import QUANTIZER_VERSION
    problem = toy_problem(toy_table)
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = SearchConfig()
    now = config.identity("lpddr4-3200", quantizer_version=QUANTIZER_VERSION)
    study, _ = open_ledger(name="now", storage=url, identity=now, problem=problem)
    check_identity(study, "now", now)
    with pytest.raises(ConfigError, match=r"other settings \(quantizer_version\)"):
        check_identity(study, "now", {**now, "quantizer_version": "odimo-2d9f139"})
    before = {k: v for k, v in now.items() if k != "quantizer_version"}
    study, _ = open_ledger(name="before", storage=url, identity=before, problem=problem)
    with pytest.raises(ConfigError, match="before studies were bound to the probe's"):
        check_identity(study, "before", now)
    cost_only = config.identity("lpddr4-3200")
    assert "quantizer_version" not in cost_only
    check_identity(study, "before", cost_only)


# ---- a study is bound to the checkpoint's contents -------------------------------------

@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    return tiny_checkpoint(folder / "a.pt", seed=0), tiny_checkpoint(folder / "b.pt", seed=1)


def test_check_identity_compares_checkpoints_by_digest(toy_table, tmp_path):
    from toy import toy_problem

    from dse.results.ledger import check_identity, open_ledger
    problem = toy_problem(toy_table)
    url = f"sqlite:///{tmp_path / 's.db'}"
    bound = {"a": 1, "checkpoint": "ck.pt", "checkpoint_sha256": "x"}
    study, _ = open_ledger(name="new", storage=url, identity=bound, problem=problem)
    check_identity(study, "new", {**bound, "checkpoint": "/abs/ck.pt"})
    with pytest.raises(ConfigError, match=r"other settings \(checkpoint\)"):
        check_identity(study, "new", {**bound, "checkpoint_sha256": "y"})
    old = {"a": 1, "checkpoint": "ck.pt"}  # a study from before: bound to the path
    study, _ = open_ledger(name="old", storage=url, identity=old, problem=problem)
    with pytest.raises(ConfigError, match=r"other settings \(checkpoint\)"):
        check_identity(study, "old", {**bound, "checkpoint": "./ck.pt"})
    check_identity(study, "old", bound)
    assert study.user_attrs[CONFIG_ATTR] == bound  # from now on bound to the contents
    with pytest.raises(ConfigError, match=r"other settings \(checkpoint\)"):
        check_identity(study, "old", {**bound, "checkpoint_sha256": "y"})
    unused = {"a": 1, "checkpoint": None, "checkpoint_sha256": None}  # e.g. cost only
    study, _ = open_ledger(name="cost", storage=url, identity={"a": 1, "checkpoint": None},
                           problem=problem)
    check_identity(study, "cost", unused)
    assert "checkpoint_sha256" not in study.user_attrs[CONFIG_ATTR]


def searched_with_local_checkpoint(checkpoint, tmp_path, monkeypatch) -> list[str]:
    """One trial of study 's' under ./res with a copy of ``checkpoint`` as ./ck.pt (cwd:
    ``tmp_path``); the search command, for more runs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck.pt").write_bytes(checkpoint.read_bytes())
    search = ["search", *PROBE, "--study", "s", "--results-dir", "res"]
    assert run(*search, "--trials", "1", "--checkpoint", "ck.pt").exit_code == 0
    return search


@pytest.mark.slow
def test_the_same_file_by_another_path_resumes_another_file_is_refused(
        two_checkpoints, tmp_path, monkeypatch):
    first, second = two_checkpoints
    search = searched_with_local_checkpoint(first, tmp_path, monkeypatch)
    for trials, spelling in ((2, "./ck.pt"), (3, str(tmp_path / "ck.pt")), (4, str(first))):
        resumed = run(*search, "--trials", str(trials), "--checkpoint", spelling)
        assert resumed.exit_code == 0, (spelling, resumed.stderr)
    (tmp_path / "ck.pt").write_bytes(second.read_bytes())  # replaced at the same path
    before = (tmp_path / "res" / "s" / "trials.csv").read_bytes()
    refused = run(*search, "--trials", "5", "--checkpoint", "ck.pt")
    assert refused.exit_code == 2 and REFUSED in refused.stderr, refused.output
    assert (tmp_path / "res" / "s" / "trials.csv").read_bytes() == before


@pytest.mark.slow
def test_the_cached_checkpoint_is_bound_by_its_contents_too(two_checkpoints, tmp_path):
    _, second = two_checkpoints
    results = tmp_path / "res"
    cached = tiny_checkpoint(results_dir=results)
    search = ["search", *PROBE, "--epochs", "1", "--study", "s", "--results-dir", str(results)]
    assert run(*search, "--trials", "1").exit_code == 0
    assert stored_identity(results)["checkpoint_sha256"] is not None
    same = run(*search, "--trials", "2", "--checkpoint", str(cached))  # the file it used
    assert same.exit_code == 0, same.stderr
    cached.write_bytes(second.read_bytes())  # other weights at the cached path
    refused = run(*search, "--trials", "3")
    assert refused.exit_code == 2 and REFUSED in refused.stderr, refused.output


@pytest.mark.slow
def test_a_study_from_before_content_binding_resumes_by_path_then_by_contents(
        two_checkpoints, tmp_path, monkeypatch):
    first, second = two_checkpoints
    search = searched_with_local_checkpoint(first, tmp_path, monkeypatch)
    old = {k: v for k, v in stored_identity(tmp_path / "res").items()
           if k != "checkpoint_sha256"}  # what studies stored until now: the path
    set_identity(tmp_path / "res", old)
    other_spelling = run(*search, "--trials", "2", "--checkpoint", "./ck.pt")
    assert other_spelling.exit_code == 2 and REFUSED in other_spelling.stderr  # as before
    resumed = run(*search, "--trials", "2", "--checkpoint", "ck.pt")
    assert resumed.exit_code == 0, resumed.stderr
    upgraded = stored_identity(tmp_path / "res")
    assert upgraded["checkpoint_sha256"] is not None and upgraded["checkpoint"] == "ck.pt"
    (tmp_path / "ck.pt").write_bytes(second.read_bytes())
    refused = run(*search, "--trials", "3", "--checkpoint", "ck.pt")
    assert refused.exit_code == 2 and REFUSED in refused.stderr, refused.output
    assert run(*search, "--trials", "3", "--checkpoint", str(first)).exit_code == 0


# ---- probe-cache values are validated ----------------------------------------------------

CORRECT = [[[1, 1, 0, 0], [1, 1, 1, 0]], [[1, 0, 0, 0], [1, 1, 1, 1]]]  # 2 x 2 seeds, 4 images
SHAPE = (2, 2, 4)


def good_document():
    from dse.accuracy import ProbeResult
    from dse.accuracy.probe_cache import cache_document
    return cache_document(ProbeResult.from_correct(CORRECT, seconds=1.5))


def test_a_cache_document_holds_the_accuracies_its_bits_say():
    document = good_document()
    assert document["accuracy_per_seed"] == [0.5, 0.75, 0.25, 1.0]
    assert document["accuracy_mean"] == 0.625


@pytest.mark.parametrize("change", [
    {"accuracy_mean": 7.5}, {"accuracy_mean": -0.1}, {"accuracy_mean": math.nan},
    {"accuracy_mean": math.inf}, {"accuracy_mean": "0.5"}, {"accuracy_mean": True},
    {"accuracy_mean": None}, {"accuracy_mean": 0.6},  # not what the bits say
    {"accuracy_per_seed": [0.5, 0.75, 0.25, 1.75]}, {"accuracy_per_seed": [0.5]},
    {"accuracy_per_seed": [0.75, 0.5, 0.25, 1.0]},  # another order than the bits'
    {"accuracy_per_seed": "0.5,0.75"}, {"accuracy_per_seed": [0.5, None, 0.25, 1.0]},
    {"accuracy_std": 0.3}, {"accuracy_std": None},
    {"seconds": -1.0}, {"seconds": math.nan}, {"seconds": "1"},
    {"correct": None}, {"correct": {"shape": [2, 2, 4], "bits": "%%%"}},
    {"correct": {"shape": [2, 2, 5], "bits": "AAAA"}},  # another split size
    {"correct": {"shape": [2, 2, True], "bits": "AAAA"}},
])
def test_an_invalid_cached_result_is_not_a_result(change):
    from dse.accuracy.probe_cache import valid_result
    good = good_document()
    assert valid_result(good, shape=SHAPE) is not None
    assert valid_result({**good, **change}, shape=SHAPE) is None


def test_a_cached_result_with_flipped_bits_is_not_a_result():
    from dse.accuracy import stats
    from dse.accuracy.probe_cache import valid_result
    good = good_document()
    flipped = np.array(CORRECT, dtype=bool)
    flipped[0, 0, 3] = True  # the stored accuracies no longer match
    assert valid_result({**good, "correct": stats.pack(flipped)}, shape=SHAPE) is None


def test_a_cached_result_that_is_not_a_document_is_not_a_result():
    from dse.accuracy.probe_cache import valid_result
    for document in ([0.5], 0.5, None, "x", {}):
        assert valid_result(document, shape=SHAPE) is None
    missing = {k: v for k, v in good_document().items() if k != "seconds"}
    assert valid_result(missing, shape=SHAPE) is None


def test_a_cached_result_gives_back_the_correctness_and_its_interval():
    from dse.accuracy.probe_cache import valid_result
    result = valid_result(good_document(), shape=SHAPE)
    assert result.cached and result.accuracy_mean == 0.625
    assert np.array_equal(result.correct, np.array(CORRECT, dtype=bool))
    assert result.ci_low <= 0.625 <= result.ci_high


@pytest.fixture()
def probe_results(tmp_path):
    tiny_checkpoint(results_dir=tmp_path)
    return tmp_path


def probe_json(results):
    result = run("probe", "--dataset", "synthetic", "--epochs", "1", "--mapping", "all-analog",
                 "--vdd", "0.9", "--steps", "0", "--finetune-seeds", "1", "--error-seeds", "2",
                 "--results-dir", str(results),
                 "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [
    {"accuracy_mean": 7.5}, {"accuracy_per_seed": [0.5, "x"]}, {"seconds": -3},
    "NaN", "{not json",
])
def test_an_invalid_cache_file_is_measured_again_and_replaced(probe_results, damage,
                                                              monkeypatch):
    from dse.accuracy import probe_cache
    monkeypatch.setattr(probe_cache, "_MEMORY_CACHE", {})
    first = probe_json(probe_results)
    files = sorted((probe_results / "probe_cache").glob("*.json"))
    assert files and not first["cached"]
    for path in files:
        if isinstance(damage, dict):
            path.write_text(json.dumps({**json.loads(path.read_text()), **damage}))
        else:
            path.write_text(damage)
    monkeypatch.setattr(probe_cache, "_MEMORY_CACHE", {})
    again = probe_json(probe_results)
    assert not again["cached"] and again["accuracy"] == first["accuracy"]
    assert 0 <= again["accuracy"] <= 1
    for path in files:  # overwritten with the measured values
        stored = json.loads(path.read_text())
        assert probe_cache.valid_result(stored, shape=(1, 2, 128)) is not None
    monkeypatch.setattr(probe_cache, "_MEMORY_CACHE", {})
    assert probe_json(probe_results)["cached"]


def test_the_cache_key_holds_the_package_version(monkeypatch):
    from dse.accuracy import error_free
    from dse.accuracy.defaults import ProbeConfig
    from dse.accuracy.probe_estimator import ProbeSetup, probe_key
    from hw_models.error_models import ErrorModelParams
    from networks.train import Checkpoint

    checkpoint = Checkpoint("resnet8", "synthetic", (3, 16, 16), 4, ("a",), {}, {}, 0.5, 0.5,
                            digest="d")
    setup = ProbeSetup(checkpoint=checkpoint, bundle=None, config=ProbeConfig(),  # type: ignore
                       error_params=ErrorModelParams(), row_bytes=2048)
    key = probe_key(error_free(1), setup)
    assert probe_key(error_free(1), setup) == key
    monkeypatch.setattr(dse, "__version__", "0.0.1")
    assert probe_key(error_free(1), setup) != key


def test_the_cache_key_holds_the_quantizer_version(monkeypatch):
    """Results measured with other quantisers (dse 0.3's fixed-threshold ternary) are not
    read back: the probe's key names its quantisers, and differs from the key without."""
    from dse.accuracy import error_free, probe_cache, probe_estimator
    from dse.accuracy.defaults import ProbeConfig
    from hw_models.error_models import ErrorModelParams
    from networks.train import Checkpoint

    checkpoint = Checkpoint("resnet8", "synthetic", (3, 16, 16), 4, ("a",), {}, {}, 0.5, 0.5,
                            digest="d")
    setup = probe_estimator.ProbeSetup(checkpoint=checkpoint, bundle=None,  # type: ignore
                                       config=ProbeConfig(), error_params=ErrorModelParams(),
                                       row_bytes=2048)
    key = probe_estimator.probe_key(error_free(1), setup)
    old_quantizers = probe_cache.cache_key(error_free(1), setup.config,
                                           error_params=setup.error_params, row_bytes=2048,
                                           checkpoint_digest="d", version=dse.__version__)
    assert key != old_quantizers
    monkeypatch.setattr(probe_estimator, "QUANTIZER_VERSION", "another")
    assert probe_estimator.probe_key(error_free(1), setup) not in (key, old_quantizers)


# ---- totals that are not finite ----------------------------------------------------------

@pytest.fixture()
def slow_clock(tmp_path):
    text = (PRESET_DIR / "diana.toml").read_text()
    assert "[clock_hz]\nvalue = 260e6" in text, "the preset's clock is no longer written so"
    preset = tmp_path / "slow_clock.toml"
    preset.write_text(text.replace("[clock_hz]\nvalue = 260e6", "[clock_hz]\nvalue = 1e-300"))
    return preset


def test_a_cost_only_search_with_overflowing_costs_is_one_error(slow_clock, tmp_path):
    result = run("search", "--objectives", "latency,energy", "--hw", str(slow_clock),
                 "--trials", "3", "--results-dir", str(tmp_path / "res"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: error: hardware preset 'diana'")
    assert str(slow_clock) in lines[0] and "non-finite costs" in lines[0]
    assert "energy_j" in lines[0] and "inf µJ" in lines[0]
    assert not (tmp_path / "res").exists()  # refused before any study was made
    assert result.stdout == ""


def test_dse_cost_checks_the_totals(slow_clock):
    result = run("cost", "--network", "resnet8", "--mapping", "all-digital", "--hw",
                 str(slow_clock))
    assert result.exit_code == 2, result.output
    assert "non-finite costs" in result.stderr and "inf" not in result.stdout


def test_evaluate_refuses_a_non_finite_total(slow_clock):
    problem = build_problem(network="resnet8", dataset=None, hw=str(slow_clock),
                            objectives="latency,energy")
    candidate = nominal_candidate(problem.space, np.zeros(problem.table.n_layers, dtype=int))
    with pytest.raises(ConfigError, match="hardware preset 'diana' .* non-finite costs"):
        evaluate(candidate, problem)
    normal = build_problem(network="resnet8", dataset=None, objectives="latency,energy")
    candidate = nominal_candidate(normal.space, np.zeros(normal.table.n_layers, dtype=int))
    assert math.isfinite(evaluate(candidate, normal).metrics["energy_j"])
