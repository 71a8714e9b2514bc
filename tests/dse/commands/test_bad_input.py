"""Bad input on the command line: one `dse: error:` line on stderr, exit 2, files kept.

Each case is checked as a user meets it: folders that cannot be written, files and folders
in each other's place, damaged journals and settings files, counts too large to run, and a
user model whose classifier does not fit the dataset.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result

from cli import cli
from networks.train import TrainConfig, checkpoint_path

HUGE = str(10**30)
NO_ACCURACY = ("--dataset", "synthetic", "--objectives", "latency,energy", "--trials", "2")
QUICK_PROBE = ("--dataset", "synthetic", "--epochs", "1", "--steps", "0", "--error-seeds", "1",
               "--mapping", "all-digital", "--dram", "none")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_error(result: Result, *words: str) -> str:
    """Exit 2 and exactly one stderr line, `dse: error: ...`, holding every word."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("kept\n")
    return path


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder no one may write to; as root (where permissions do not bind) it is the
    answer of os.access, which is what dse asks, that says so."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def empty_study(tmp_path: Path) -> Path:
    """A results folder whose config.json names a real (empty) SQLite study."""
    folder = tmp_path / "study"
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.db'}"
    optuna.create_study(study_name="s", storage=url)
    (folder / "config.json").write_text(json.dumps({"storage": url, "study": "s"}))
    return folder


# ---- 1. folders that cannot be written --------------------------------------------------

def test_train_results_dir_under_a_file_fails_before_training(a_file):
    result = run("train", "--dataset", "synthetic", "--epochs", "1", "--results-dir",
                 str(a_file / "sub"))
    assert_one_error(result, "checkpoint folder", str(a_file), "is a file", "--results-dir")
    assert a_file.read_text() == "kept\n"


def test_train_read_only_results_dir(read_only):
    result = run("train", "--dataset", "synthetic", "--epochs", "1", "--results-dir",
                 str(read_only))
    assert_one_error(result, "checkpoint folder", str(read_only), "not writable")
    assert list(read_only.iterdir()) == []


def test_search_results_dir_under_a_file(a_file):
    result = run("search", *NO_ACCURACY, "--results-dir", str(a_file / "sub"))
    assert_one_error(result, "results folder", str(a_file), "is a file", "--results-dir")
    assert a_file.read_text() == "kept\n"


def test_search_read_only_results_dir(read_only):
    result = run("search", *NO_ACCURACY, "--results-dir", str(read_only))
    assert_one_error(result, "results folder", str(read_only), "not writable")
    assert list(read_only.iterdir()) == []


def test_probe_read_only_results_dir_fails_before_training(read_only):
    result = run("probe", *QUICK_PROBE, "--results-dir", str(read_only))
    assert_one_error(result, "probe cache folder", str(read_only), "not writable")


def test_pareto_out_read_only(empty_study, read_only):
    result = run("pareto", str(empty_study), "--out", str(read_only))
    assert_one_error(result, "output folder", str(read_only), "not writable", "--out")
    assert list(read_only.iterdir()) == []


def test_pareto_out_under_a_file(empty_study, a_file):
    result = run("pareto", str(empty_study), "--out", str(a_file / "sub"))
    assert_one_error(result, "output folder", str(a_file), "is a file", "--out")


@pytest.mark.parametrize("command", [
    ("train", "--dataset", "synthetic", "--epochs", "1"),
    ("search", *NO_ACCURACY),
])
def test_results_dir_that_is_a_file(command, a_file):
    assert_one_error(run(*command, "--results-dir", str(a_file)), "--results-dir",
                     "is a file")
    assert a_file.read_text() == "kept\n"


# ---- 2. a file where a folder belongs, a folder where a file belongs ---------------------

def test_checkpoints_folder_that_is_a_file(tmp_path):
    (tmp_path / "checkpoints").write_text("kept\n")
    result = run("train", "--dataset", "synthetic", "--epochs", "1", "--results-dir",
                 str(tmp_path))
    assert_one_error(result, "checkpoint folder", "checkpoints", "is a file")
    assert (tmp_path / "checkpoints").read_text() == "kept\n"


def test_checkpoint_file_that_is_a_folder_fails_before_training(tmp_path):
    path = checkpoint_path(tmp_path, "resnet8", "synthetic", TrainConfig(epochs=1))
    path.mkdir(parents=True)
    (path / "kept.txt").write_text("kept\n")
    result = run("train", "--dataset", "synthetic", "--epochs", "1", "--results-dir",
                 str(tmp_path))
    assert_one_error(result, "checkpoint file", path.name, "is a folder", "remove it")
    assert (path / "kept.txt").read_text() == "kept\n"


def test_probe_cache_folder_that_is_a_file(tmp_path):
    (tmp_path / "probe_cache").write_text("kept\n")
    result = run("probe", *QUICK_PROBE, "--results-dir", str(tmp_path))
    assert_one_error(result, "probe cache folder", "probe_cache", "is a file")
    assert (tmp_path / "probe_cache").read_text() == "kept\n"


def test_probe_cache_entry_that_is_a_folder_fails_before_training(tmp_path):
    (tmp_path / "probe_cache" / "0123abcd.json").mkdir(parents=True)
    result = run("probe", *QUICK_PROBE, "--results-dir", str(tmp_path))
    assert_one_error(result, "probe cache entry", "0123abcd.json", "is a folder", "remove it")
    assert not (tmp_path / "checkpoints").exists()  # nothing was trained


@pytest.mark.parametrize("command", [
    ("search", *NO_ACCURACY),
    ("pareto", "--study", "s"),
    ("status", "--study", "s"),
])
def test_journal_storage_that_is_a_folder(command, tmp_path):
    folder = tmp_path / "journal"
    folder.mkdir()
    result = run(*command, "--storage", f"journal:{folder}", "--results-dir",
                 str(tmp_path / "results"))
    assert_one_error(result, f"journal:{folder}", "names the folder")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("scheme", ["journal:", "sqlite:///"])
def test_storage_file_under_a_file(scheme, a_file, tmp_path):
    result = run("search", *NO_ACCURACY, "--storage", f"{scheme}{a_file / 'study.db'}",
                 "--results-dir", str(tmp_path / "results"))
    assert_one_error(result, "storage folder", str(a_file), "is a file", "--storage")
    assert a_file.read_text() == "kept\n"


@pytest.mark.parametrize("command, url", [
    (("search", *NO_ACCURACY), "journal:/dev/null"),
    (("search", *NO_ACCURACY), "sqlite:////dev/null"),
    (("status", "--study", "s"), "journal:/dev/null"),
])
def test_storage_that_is_no_regular_file(command, url, tmp_path):
    result = run(*command, "--storage", url, "--results-dir", str(tmp_path / "results"))
    assert_one_error(result, url, "/dev/null, which is not a regular file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://",
                                 "sqlite:///file:s?mode=memory&uri=true"])
def test_search_in_a_storage_in_memory_is_refused(url, tmp_path):
    result = run("search", *NO_ACCURACY, "--storage", url, "--study", "s", "--results-dir",
                 str(tmp_path))
    assert_one_error(result, f"--storage {url} keeps the study in this process's memory")
    assert list(tmp_path.iterdir()) == []  # no config.json naming it


@pytest.mark.parametrize("name", ["config.json", "runs.jsonl"])
def test_study_file_that_is_a_folder(name, tmp_path):
    folder = tmp_path / "s" / name
    folder.mkdir(parents=True)
    result = run("search", *NO_ACCURACY, "--study", "s", "--results-dir", str(tmp_path))
    assert_one_error(result, name, "is a folder", "remove it")
    assert not (tmp_path / "s" / "study.db").exists()  # refused before the search


def test_config_json_that_is_a_folder(tmp_path):
    (tmp_path / "s" / "config.json").mkdir(parents=True)
    assert_one_error(run("status", str(tmp_path / "s")), "config.json", "is a folder",
                     "--storage")


def test_pareto_output_file_that_is_a_folder(empty_study, tmp_path):
    out = tmp_path / "out"
    (out / "trials.csv").mkdir(parents=True)
    result = run("pareto", str(empty_study), "--out", str(out))
    assert_one_error(result, "trials.csv", "a folder of that name is in the way")


# ---- 3. damaged journals and settings files ---------------------------------------------

GARBAGE_JOURNALS = {
    "binary": bytes(range(256)) * 4 + b"\n" + b"\x8f\xff\n",
    "text": b"not json\n{\"op_code\": 0}\n",
}


@pytest.mark.parametrize("kind", sorted(GARBAGE_JOURNALS))
@pytest.mark.parametrize("command", [
    ("search", *NO_ACCURACY),
    ("pareto", "--study", "X"),
    ("status", "--study", "X"),
])
def test_damaged_journal(command, kind, tmp_path):
    journal = tmp_path / "study.log"
    journal.write_bytes(GARBAGE_JOURNALS[kind])
    result = run(*command, "--storage", f"journal:{journal}", "--results-dir",
                 str(tmp_path / "results"))
    assert_one_error(result, f"journal {journal}", "dse repair-journal")  # keeps a backup
    assert journal.read_bytes() == GARBAGE_JOURNALS[kind]


def test_repairing_a_file_that_is_no_journal_changes_nothing(tmp_path):
    journal = tmp_path / "study.log"
    journal.write_bytes(GARBAGE_JOURNALS["binary"])
    assert_one_error(run("repair-journal", str(journal)), "no Optuna journal record",
                     "is it a journal file")
    assert journal.read_bytes() == GARBAGE_JOURNALS["binary"]
    assert [p.name for p in tmp_path.iterdir()] == ["study.log"]  # no backup either


NOT_JOURNALS = {  # JSON lines: a KeyError; with a torn one among them, rewritten, then that
    "runs.jsonl": b'{"started": "today", "study": "s"}\n{"study": "s"}\n',
    "torn runs.jsonl": b'{"started": "today", "study": "s"}\n{"started": "to\n{"study": "s"}\n',
    "records Optuna cannot read": b'{"op_code": 1}\n{"op_code": 2\n{"op_code": 3}\n',
}


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("kind", sorted(NOT_JOURNALS))
def test_repairing_json_lines_that_are_no_journal_changes_nothing(kind, tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(NOT_JOURNALS[kind])
    assert_one_error(run("repair-journal", str(path)), str(path), "is it a journal file",
                     "Left as it is")
    assert files_of(tmp_path) == {"runs.jsonl": NOT_JOURNALS[kind]}  # no backup either


@pytest.fixture
def torn_journal(tmp_path: Path) -> Path:
    """A journal file of one study and one trial, ending in a torn line."""
    from dse.storage.storage import open_storage
    path = tmp_path / "journal" / "study.log"
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{path}"))
    study.tell(study.ask(), 1.0)
    with open(path, "ab") as handle:
        handle.write(b'{"op_code": 5, "wor')
    return path


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_repairing_a_journal_that_cannot_be_written_changes_nothing(locked, torn_journal,
                                                                    monkeypatch):
    """An immutable file or folder (chattr +i: binding as root too), seen by os.access."""
    denied = torn_journal if locked == "file" else torn_journal.parent
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == denied and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    before = files_of(torn_journal.parent)
    assert_one_error(run("repair-journal", str(torn_journal)), f"cannot repair {torn_journal}",
                     f"{denied} is not writable", "left as it is")
    assert files_of(torn_journal.parent) == before


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_repairing_an_immutable_journal_changes_nothing(locked, torn_journal):
    """The same with the immutable attribute itself, where this machine allows setting it."""
    target = torn_journal if locked == "file" else torn_journal.parent
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(target)],
                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        before = files_of(torn_journal.parent)
        assert_one_error(run("repair-journal", str(torn_journal)),
                         f"cannot repair {torn_journal}", "left as it is")
        assert files_of(torn_journal.parent) == before
    finally:
        subprocess.run([chattr, "-i", str(target)], check=True)


def test_a_repair_whose_write_fails_keeps_no_backup(torn_journal, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "truncate", refused)
    before = files_of(torn_journal.parent)
    assert_one_error(run("repair-journal", str(torn_journal)), f"cannot repair {torn_journal}",
                     "Operation not permitted", "left as it is")
    assert files_of(torn_journal.parent) == before


def test_reading_a_missing_journal_creates_nothing(tmp_path):
    journal = tmp_path / "none.log"
    assert_one_error(run("status", "--storage", f"journal:{journal}", "--study", "X"),
                     "no study journal", str(journal))
    assert not journal.exists()


DAMAGED_CONFIGS = {
    "binary": bytes(range(256)),
    "empty": b"",
    "a list": b"[1, 2]\n",
    "numbers": b'{"storage": 5, "study": 6}\n',
}


@pytest.mark.parametrize("kind", sorted(DAMAGED_CONFIGS))
@pytest.mark.parametrize("command", [("pareto",), ("show", "--trial", "0"), ("status",)])
def test_damaged_config_json(command, kind, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "config.json").write_bytes(DAMAGED_CONFIGS[kind])
    result = run(command[0], str(folder), *command[1:])
    assert_one_error(result, "config.json", "damaged", "--storage URL --study NAME")
    assert (folder / "config.json").read_bytes() == DAMAGED_CONFIGS[kind]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


# ---- 4. counts too large to run --------------------------------------------------------

@pytest.mark.parametrize("command, words", [
    (("probe", "--steps", HUGE), ("--steps", "10,000,000")),
    (("probe", "--error-seeds", HUGE), ("--error-seeds", "10,000")),
    (("probe", "--finetune-seeds", HUGE), ("--finetune-seeds", "10,000")),
    (("search", "--probe-steps", HUGE), ("--probe-steps", "10,000,000")),
    (("search", "--error-seeds", HUGE), ("--error-seeds", "10,000")),
    (("search", "--finetune-seeds", HUGE), ("--finetune-seeds", "10,000")),
    (("train", "--epochs", HUGE), ("--epochs", "10,000")),
    (("search", "--epochs", HUGE), ("--epochs", "10,000")),
    (("train", "--threads", HUGE), ("--threads", "4096")),
    (("search", "--threads", HUGE, "--objectives", "latency,energy"), ("--threads", "4096")),
])
def test_counts_too_large(command, words, tmp_path):
    result = run(*command, "--dataset", "synthetic", "--results-dir", str(tmp_path))
    assert_one_error(result, *words, HUGE)
    assert list(tmp_path.iterdir()) == []


# ---- 5. a user model whose classifier does not fit the dataset ---------------------------

@pytest.fixture
def narrow_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A user model with 3 outputs whatever the dataset's classes (digits has 10)."""
    (tmp_path / "narrow_classifier.py").write_text(
        "from torch import nn\n"
        "def net(input_shape, num_classes):\n"
        "    c, h, w = input_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 3))\n")
    monkeypatch.chdir(tmp_path)  # user models are found in the working directory
    yield "narrow_classifier:net"
    sys.modules.pop("narrow_classifier", None)


@pytest.mark.parametrize("command", [
    ("layers", "narrow_classifier:net", "--dataset", "digits"),
    ("train", "--network", "narrow_classifier:net", "--dataset", "digits", "--epochs", "1"),
    ("search", "--network", "narrow_classifier:net", "--dataset", "digits", "--objectives",
     "latency,energy", "--trials", "1"),
])
def test_classifier_narrower_than_the_classes(command, narrow_model, tmp_path):
    result = run(*command)
    assert_one_error(result, "(1, 3)", "10 classes", "num_classes outputs")
    assert not (tmp_path / "results").exists()


@pytest.fixture
def odd_estimators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """User accuracy estimators that answer with a float, or fail."""
    (tmp_path / "odd_estimators.py").write_text(
        "def plain_number(candidate):\n"
        "    return 0.9\n"
        "def broken(candidate):\n"
        "    raise ValueError('no model here')\n")
    monkeypatch.chdir(tmp_path)
    yield
    sys.modules.pop("odd_estimators", None)


@pytest.mark.parametrize("name, words", [
    ("plain_number", ("returned float", "dse.accuracy.ProbeResult")),
    ("broken", ("failed", "ValueError: no model here")),
])
def test_accuracy_estimator_of_the_wrong_kind(name, words, odd_estimators, tmp_path):
    result = run("search", "--dataset", "synthetic", "--objectives", "accuracy,latency",
                 "--trials", "2", "--accuracy-estimator", f"odd_estimators:{name}")
    assert_one_error(result, f"odd_estimators:{name}", *words)
    assert not (tmp_path / "results").exists()  # refused at the baseline, before a trial
