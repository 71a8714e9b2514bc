"""A results folder always opens its own study: after a change of directory, a copy, and
never a same-named study elsewhere."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from dse.results.location import resolve, same_storage, storage_record

COST_ONLY = ["--objectives", "latency,energy", "--sampler", "random"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_folder_relative_storage_paths(tmp_path):
    folder = tmp_path / "results" / "s"
    record = storage_record(f"sqlite:///{folder / 'study.db'}", folder)
    assert record == {"storage": f"sqlite:///{folder / 'study.db'}",
                      "storage_in_folder": "study.db"}
    moved = tmp_path / "elsewhere"
    assert resolve(record, moved) == f"sqlite:///{moved / 'study.db'}"
    outside = storage_record("journal:other/j.log", folder)  # relative to this directory
    assert outside == {"storage": f"journal:{Path('other/j.log').resolve()}"}
    assert same_storage("sqlite:///a.db", f"sqlite:///{os.path.abspath('a.db')}")
    assert not same_storage("sqlite:///a.db", "journal:a.db")


@pytest.mark.slow
def test_a_folder_read_from_elsewhere_or_copied_opens_its_own_study(tmp_path, monkeypatch):
    first, second = tmp_path / "A", tmp_path / "B"
    first.mkdir(), second.mkdir()
    monkeypatch.chdir(first)
    assert run("search", *COST_ONLY, "--trials", "6").exit_code == 0
    monkeypatch.chdir(second)
    assert run("search", *COST_ONLY, "--trials", "9").exit_code == 0
    folder = first / "results" / "resnet8-digits-diana-lpddr4-3200"
    result = run("pareto", str(folder), "--json")  # from B, which has a same-named study
    assert result.exit_code == 0, result.output
    assert sum(json.loads(result.stdout)["trials"].values()) == 6
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(first / "results")
    result = run("status", str(copy), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["trials"] == {"COMPLETE": 6}


def test_a_same_named_study_in_another_storage_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("search", *COST_ONLY, "--trials", "5", "--study", "s").exit_code == 0
    before = (tmp_path / "results" / "s" / "trials.csv").read_bytes()
    result = run("search", *COST_ONLY, "--trials", "5", "--study", "s",
                 "--storage", f"journal:{tmp_path / 'j.log'}")
    assert result.exit_code == 2 and "belongs to study 's' in sqlite" in result.stderr
    assert (tmp_path / "results" / "s" / "trials.csv").read_bytes() == before
    assert not (tmp_path / "j.log").exists()


def folder_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def finished(tmp_path, monkeypatch) -> Path:
    """A finished cost-only study's results folder, results/s."""
    monkeypatch.chdir(tmp_path)
    assert run("search", *COST_ONLY, "--trials", "3", "--study", "s").exit_code == 0
    return tmp_path / "results" / "s"


def test_a_folder_whose_database_is_gone_is_refused_not_replaced(finished):
    (finished / "study.db").unlink()
    before = folder_files(finished)
    result = run("search", *COST_ONLY, "--trials", "3", "--study", "s")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert "holds study 's', whose database" in result.stderr and "is gone" in result.stderr
    assert folder_files(finished) == before  # old trials.csv and summary.json kept
    for command in (("confirm", str(finished)), ("pareto", str(finished)),
                    ("status", str(finished))):
        result = run(*command)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert "is gone: restore it" in result.stderr, result.stderr
        assert folder_files(finished) == before  # no empty study.db either


def test_confirm_with_a_storage_that_does_not_exist_creates_nothing(tmp_path):
    database = tmp_path / "none.db"
    result = run("confirm", "--storage", f"sqlite:///{database}", "--study", "s",
                 "--results-dir", str(tmp_path))
    assert result.exit_code == 2 and "no study database at" in result.stderr, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("edit", ["storage", "storage_in_folder"])
def test_a_config_json_naming_another_database_than_the_folders_own_is_refused(finished,
                                                                              edit):
    assert run("search", *COST_ONLY, "--trials", "4", "--study", "t").exit_code == 0
    other = finished.parent / "t" / "study.db"
    config = json.loads((finished / "config.json").read_text())
    if edit == "storage":  # the URL, and no folder-relative path to override it
        config = {**config, "storage": f"sqlite:///{other}", "study": "t"}
        del config["storage_in_folder"]
    else:
        config = {**config, "storage_in_folder": "../t/study.db", "study": "t"}
    (finished / "config.json").write_text(json.dumps(config))
    before = folder_files(finished)
    for command in (("pareto", str(finished)), ("status", str(finished)),
                    ("search", *COST_ONLY, "--trials", "4", "--study", "s")):
        result = run(*command)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert "the folder holds its own study database" in result.stderr, result.stderr
        assert folder_files(finished) == before
