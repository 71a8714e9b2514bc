"""Checkpoints, probe results and studies are bound to their data: two tiny VWW trees, the
second the first with its class folders swapped (the same images, the other labels), share
none of them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from helpers import tiny_checkpoint
from PIL import Image

from cli import cli
from dse.results.ledger import CONFIG_ATTR
from dse.storage.storage import open_storage
from hw_models import ConfigError

QUICK = ["--network", "resnet8", "--dataset", "vww", "--epochs", "1"]
PROBE = [*QUICK, "--mapping", "all-digital", "--steps", "0", "--finetune-seeds", "1",
         "--error-seeds", "1", "--json"]
SEARCH = [*QUICK, "--probe-steps", "0", "--finetune-seeds", "1", "--error-seeds", "1",
          "--no-confirm", "--threads", "1", "--study", "s"]
OTHER_DATA = "study 's' exists with other settings (data_sha256)"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


pytestmark = pytest.mark.usefixtures("fresh_data_caches")


@pytest.fixture
def trees(tmp_path):
    """Tree A (4 training and 2 test images per class, random pixels) and tree B, A with
    its class folders swapped."""
    rng = np.random.default_rng(0)
    first = tmp_path / "a"
    for split, count in (("train", 4), ("val", 2)):
        for name in ("non-person", "person"):
            (first / split / name).mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(first / split / name / f"{index}.png")
    second = shutil.copytree(first, tmp_path / "b")
    for split in ("train", "val"):
        (second / split / "person").rename(second / split / "kept")
        (second / split / "non-person").rename(second / split / "person")
        (second / split / "kept").rename(second / split / "non-person")
    return str(first), str(second)


def checkpoints(results) -> list[str]:
    return sorted(path.name for path in (results / "checkpoints").glob("*.pt"))


def test_other_data_trains_its_own_checkpoint_and_probes_afresh(trees, tmp_path):
    first, second = trees
    results = ["--results-dir", str(tmp_path / "res")]
    probed = run("probe", *PROBE, "--data-dir", first, *results)
    assert probed.exit_code == 0, probed.stderr
    assert json.loads(probed.stdout)["cached"] is False
    trained = run("train", *QUICK, "--data-dir", second, *results, "--json")
    assert trained.exit_code == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["trained"] is True and len(checkpoints(tmp_path / "res")) == 2
    other = run("probe", *PROBE, "--data-dir", second, *results)
    assert other.exit_code == 0, other.stderr
    assert json.loads(other.stdout)["cached"] is False
    again = run("probe", *PROBE, "--data-dir", first, *results)
    assert json.loads(again.stdout)["cached"] is True  # each data keeps its own results
    found = run("train", *QUICK, "--data-dir", second, *results, "--json")
    assert json.loads(found.stdout)["trained"] is False
    assert json.loads(found.stdout)["checkpoint"] == report["checkpoint"]


def test_a_study_resumed_on_other_data_is_refused_before_any_training(trees, tmp_path):
    first, second = trees
    results = tmp_path / "res"
    search = ["search", *SEARCH, "--results-dir", str(results)]
    assert run(*search, "--data-dir", first, "--trials", "1").exit_code == 0
    before = (checkpoints(results), (results / "s" / "trials.csv").read_bytes())
    refused = run(*search, "--data-dir", second, "--trials", "2")
    assert refused.exit_code == 2 and OTHER_DATA in refused.stderr, refused.output
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (checkpoints(results), (results / "s" / "trials.csv").read_bytes()) == before
    confirmed = run("confirm", str(results / "s"), "--data-dir", second,
                    "--confirm-steps", "1", "--confirm-seeds", "1")
    assert confirmed.exit_code == 2 and "is not the data study 's' was searched with" in \
        confirmed.stderr, confirmed.output
    assert checkpoints(results) == before[0]
    resumed = run(*search, "--data-dir", first, "--trials", "2")
    assert resumed.exit_code == 0, resumed.stderr


def stored_identity(results) -> dict:
    storage = open_storage(f"sqlite:///{results / 's' / 'study.db'}")
    return optuna.load_study(study_name="s", storage=storage).user_attrs[CONFIG_ATTR]


def test_a_study_made_before_it_was_bound_to_its_data_is_bound_when_resumed(trees, tmp_path):
    first, second = trees
    results = tmp_path / "res"
    search = ["search", *SEARCH, "--results-dir", str(results)]
    assert run(*search, "--data-dir", first, "--trials", "1").exit_code == 0
    bound = stored_identity(results)
    storage = open_storage(f"sqlite:///{results / 's' / 'study.db'}")
    optuna.load_study(study_name="s", storage=storage).set_user_attr(
        CONFIG_ATTR, {k: v for k, v in bound.items() if k != "data_sha256"})  # as before
    resumed = run(*search, "--data-dir", first, "--trials", "2")
    assert resumed.exit_code == 0, resumed.stderr
    assert stored_identity(results) == bound  # adopted
    refused = run(*search, "--data-dir", second, "--trials", "3")
    assert refused.exit_code == 2 and OTHER_DATA in refused.stderr, refused.output


def test_check_identity_adopts_the_data_of_a_study_made_before(toy_table, tmp_path):
    from toy import toy_problem

    from dse.results.ledger import check_identity, open_ledger
    problem = toy_problem(toy_table)
    url = f"sqlite:///{tmp_path / 's.db'}"
    old = {"a": 1, "checkpoint_sha256": "x"}
    study, _ = open_ledger(name="old", storage=url, identity=old, problem=problem)
    check_identity(study, "old", {**old, "data_sha256": "d"})
    assert study.user_attrs[CONFIG_ATTR] == {**old, "data_sha256": "d"}
    with pytest.raises(ConfigError, match=r"other settings \(data_sha256\)"):
        check_identity(study, "old", {**old, "data_sha256": "e"})
    study, _ = open_ledger(name="cost", storage=url, identity={"a": 1}, problem=problem)
    check_identity(study, "cost", {"a": 1, "checkpoint_sha256": None, "data_sha256": None})
    assert study.user_attrs[CONFIG_ATTR] == {"a": 1}  # nothing to bind to


def test_a_checkpoint_cached_without_its_data_is_not_taken_for_this_data(trees, tmp_path):
    first, _ = trees
    results = tmp_path / "res"
    trained = run("train", *QUICK, "--data-dir", first, "--results-dir", str(results),
                  "--json")
    keyed = Path(json.loads(trained.stdout)["checkpoint"])
    unkeyed = keyed.with_name(keyed.name.rsplit("-", 1)[0] + ".pt")  # as dse 0.3.0 named it
    keyed.rename(unkeyed)
    refused = run("probe", *PROBE, "--data-dir", first, "--results-dir", str(results))
    assert refused.exit_code == 2, refused.output
    assert f"checkpoint {unkeyed} was cached by an earlier dse without the identity of its " \
           "data" in refused.stderr
    given = run("probe", *PROBE, "--data-dir", first, "--results-dir", str(results),
                "--checkpoint", str(unkeyed))
    assert given.exit_code == 0, given.stderr
    retrained = run("train", *QUICK, "--data-dir", first, "--results-dir", str(results),
                    "--retrain", "--json")
    assert retrained.exit_code == 0 and json.loads(retrained.stdout)["trained"] is True


def test_a_built_in_dataset_finds_the_checkpoint_named_as_dse_0_3_0_named_it(tmp_path):
    cached = tiny_checkpoint(results_dir=tmp_path)
    assert cached.name.count("-") == 2  # network-dataset-settings.pt
    found = run("train", "--network", "resnet8", "--dataset", "synthetic", "--epochs", "1",
                "--results-dir", str(tmp_path), "--json")
    assert found.exit_code == 0, found.stderr
    assert json.loads(found.stdout)["trained"] is False
    assert json.loads(found.stdout)["checkpoint"] == str(cached)
