"""Storage faults: a database connection dropped under a running worker, a journal file left
torn by a lost worker, an empty --storage. Real PostgreSQL databases (``postgres_url``,
conftest.py), real journal files."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from click.testing import CliRunner
from dropping_estimator import drop_connections
from toy import toy_prepared

from cli import cli
from dse.accuracy import AccuracyModel
from dse.commands.search import run_search
from dse.engines import Budget, EngineJob
from dse.engines.optuna_engine import OptunaEngine
from dse.engines.testing import StubEstimator, toy_problem
from dse.host import worker_identity
from dse.results.ledger import Ledger, open_ledger
from dse.signals import SignalGuard
from dse.storage.storage import StorageConnectionLost, open_storage

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parents[1]  # tests/dse: the estimators
State = optuna.trial.TrialState


def run_engine(url: str, trials: int, *, storage=None, before_trial=None) -> optuna.Study:
    """A cost-and-stub-accuracy search of the toy problem, in this process."""
    problem = toy_problem()
    storage = storage or open_storage(url)
    study, _ = open_ledger(name="faults", storage=storage, identity={"toy": 1},
                           problem=problem)
    with SignalGuard() as guard:
        job = EngineJob(problem=problem, ledger=Ledger(study, problem), budget=Budget(trials),
                        seed=0, accuracy=AccuracyModel(StubEstimator(), 0.95), guard=guard,
                        before_trial=before_trial)
        OptunaEngine(sampler="random").run(job)
    return study


def check_complete(url: str, trials: int) -> None:
    stored = optuna.load_study(study_name="faults", storage=open_storage(url)).trials
    assert [t.state for t in stored] == [State.COMPLETE] * trials  # none lost, none doubled
    assert sorted(t.number for t in stored) == list(range(trials))
    assert all(t.user_attrs["worker"]["pid"] == os.getpid() for t in stored)


def no_warnings(stderr: str) -> None:
    for sign in ("Warning", "warning", "Caught an error", "Traceback"):
        assert sign not in stderr, stderr


# -- a dropped PostgreSQL connection ---------------------------------------------------------

def test_connections_dropped_between_trials_are_replaced(postgres_url, capfd):
    dropped: list[int] = []

    def before_trial():
        if len(dropped) < 2:
            dropped.append(drop_connections(postgres_url))
        return worker_identity()

    run_engine(postgres_url, 8, before_trial=before_trial)
    check_complete(postgres_url, 8)
    assert dropped[0] > 0 and dropped[1] > 0  # the pool's connections were cut
    no_warnings(capfd.readouterr().err)


@pytest.mark.parametrize("statement", [
    "SELECT trials.trial_id",         # reading the trials (Optuna logs a warning, held back)
    pytest.param("INSERT INTO trials ",  # creating a trial (Optuna retries, dse checks the
                 marks=pytest.mark.slow),  # token)
    pytest.param("INSERT INTO trial_params",  # a batch of sampled parameters
                 marks=pytest.mark.slow),
    pytest.param("UPDATE trials SET state",  # taking a queued trial, telling a result
                 marks=pytest.mark.slow),
])
def test_a_connection_dropped_in_the_middle_of_a_call_is_retried(postgres_url, capfd,
                                                                  statement):
    """The connection in use is cut just before it sends ``statement`` (twice): the
    transaction is lost, the call is made again on a new connection."""
    import psycopg
    storage = open_storage(postgres_url)
    seen, cut = [0], []

    @sqlalchemy.event.listens_for(storage.engine, "before_cursor_execute")
    def cut_before(connection, cursor, text, *args):
        reading = statement != "SELECT trials.trial_id" or "ORDER BY trials.trial_id" in text
        if text.lstrip().startswith(statement) and reading:
            seen[0] += 1
            if seen[0] in (3, 6):
                pid = connection.connection.dbapi_connection.info.backend_pid
                with psycopg.connect(postgres_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                cut.append(pid)

    run_engine(postgres_url, 8, storage=storage)
    check_complete(postgres_url, 8)
    assert len(cut) == 2
    no_warnings(capfd.readouterr().err)


def test_a_database_gone_for_good_stops_the_worker_with_one_line(postgres_url, tmp_path,
                                                                  monkeypatch, toy_table):
    """Connections are refused after the third probe: the worker gives up with the masked
    URL; once the database answers again, the results are written from what it holds."""
    import dse.commands.search
    monkeypatch.setattr("dse.storage.storage.BACKOFF_S", 0.01)
    url = postgres_url.replace("postgres@", "postgres:secret@")  # trust: any password
    estimator, calls = StubEstimator(), [0]

    def probe(candidate):
        calls[0] += 1
        if calls[0] == 3:
            drop_connections(postgres_url, for_good=True)
        return estimator(candidate)

    real_finish = dse.commands.search.finish

    def finish_once_it_answers(*args, **kwargs):
        drop_connections(postgres_url, allow=True)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(dse.commands.search, "finish", finish_once_it_answers)
    prepared = toy_prepared(toy_table, tmp_path, trials=12)
    prepared = dataclasses.replace(prepared, storage_url=url,
                                   accuracy=AccuracyModel(probe, 0.95))
    with pytest.raises(StorageConnectionLost) as raised:
        run_search(prepared)
    message = str(raised.value)
    assert message.startswith("the database connection was lost: "
                              f"{url.replace(':secret@', ':***@')} did not answer in 3 "
                              "attempts (OperationalError: ")
    assert "secret" not in message and "\n" not in message
    assert message.endswith(f"the study keeps its finished trials (the same command resumes "
                            f"it); the results in {prepared.out_dir} are written from them")
    frame = (prepared.out_dir / "trials.csv").read_text().splitlines()
    assert sum(",COMPLETE," in line for line in frame) >= 2


def worker(tmp_path: Path, storage: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    code = f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(HERE)!r}]; import cli; cli.main()"
    return subprocess.run(
        [sys.executable, "-c", code, "search", "--storage", storage, "--study", "shared",
         "--results-dir", str(tmp_path), "--dram", "ddr4-2400", "--objectives",
         "accuracy,latency", "--accuracy-estimator", "dropping_estimator:estimate",
         "--trials", "10", *args],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env},
        timeout=300)


@pytest.mark.slow
def test_dse_search_survives_a_dropped_connection(postgres_url, tmp_path):
    """Before: exit 1, "StorageInternalError ... e.g. exceeding max length", no results."""
    done = worker(tmp_path, postgres_url, env={"DSE_TEST_DROP_AT": "3",
                                               "DSE_TEST_DROP_URL": postgres_url})
    assert done.returncode == 0, done.stderr
    no_warnings(done.stderr)
    study = optuna.load_study(study_name="shared", storage=open_storage(postgres_url))
    assert len(study.get_trials(states=(State.COMPLETE,))) == 10 == len(study.trials)
    frame = (tmp_path / "shared" / "trials.csv").read_text().splitlines()
    assert sum(",COMPLETE," in line for line in frame) == 10


@pytest.mark.slow
def test_dse_search_on_a_database_gone_for_good_says_so_in_one_line(postgres_url, tmp_path):
    url = postgres_url.replace("postgres@", "postgres:secret@")
    done = worker(tmp_path, url, env={"DSE_TEST_DROP_AT": "3", "DSE_TEST_DROP_URL": url,
                                      "DSE_TEST_DROP_FOR_GOOD": "1"})
    assert done.returncode == 75, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith(("study ",
                                                                               "search:"))]
    assert len(lines) == 1, done.stderr
    shown = url.replace(":secret@", ":***@")
    assert lines[0].startswith(f"dse: error: the database connection was lost: {shown} "
                               "did not answer in 3 attempts (OperationalError: ")
    assert "results in" in lines[0] and "could not be written" in lines[0]
    assert "secret" not in done.stderr


# -- a journal file torn by a lost worker ----------------------------------------------------

TORN = b'{"op_code":5,"worker_id":"lost-node","trial_id":3,"param_na'


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture()
def journal_study(tmp_path, toy_table):
    """A short real study in a journal file (results under tmp_path/toy)."""
    path = tmp_path / "study.log"
    prepared = dataclasses.replace(toy_prepared(toy_table, tmp_path, trials=6),
                                   storage_url=f"journal:{path}")
    run_search(prepared)
    return path, prepared


def states(path: Path) -> list[tuple[int, str, list[float] | None]]:
    study = optuna.load_study(study_name="toy", storage=open_storage(f"journal:{path}"))
    return [(t.number, t.state.name, t.values) for t in study.trials]


def test_a_torn_journal_is_refused_by_every_command_and_left_as_it_is(journal_study):
    """Before: the torn line was skipped, the next search wrote after it, and from then on
    every command failed with "internal error: JSONDecodeError"."""
    path, prepared = journal_study
    with open(path, "ab") as handle:
        handle.write(TORN)
    torn = path.read_bytes()
    url = f"journal:{path}"
    for args in (["search", "--storage", url, "--study", "toy", "--results-dir",
                  str(prepared.out_dir.parent), "--objectives", "latency,energy",
                  "--trials", "8"],
                 ["pareto", "--storage", url, "--study", "toy", "--out",
                  str(path.parent / "plots")],
                 ["status", "--storage", url, "--study", "toy"],
                 ["status", "toy", "--results-dir", str(prepared.out_dir.parent)],
                 ["show", "toy", "--trial", "0", "--results-dir", str(prepared.out_dir.parent)]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"dse: error: journal {path} ends in a torn line "
                                        f"({len(TORN)} bytes after its last complete line")
        assert f"dse repair-journal {path}" in result.stderr
        assert path.read_bytes() == torn, args
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("study.log")) \
        == ["study.log"]  # no lock left behind


def test_repair_journal_cuts_the_torn_tail_and_keeps_a_backup(journal_study):
    path, prepared = journal_study
    before = states(path)
    intact = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(TORN)
    result = run("repair-journal", str(path))
    assert result.exit_code == 0, result.output
    [backup] = path.parent.glob("study.log.bak-*")
    assert backup.read_bytes() == intact + TORN and path.read_bytes() == intact
    assert f"removed {len(TORN)} torn bytes" in result.stdout
    assert str(backup) in result.stdout and "study toy: 6 trials" in result.stdout
    assert states(path) == before
    again = run("repair-journal", f"journal:{path}", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["changed"] is False
    status = run("status", "--storage", f"journal:{path}", "--study", "toy", "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["trials"] == {"COMPLETE": 6}
    run_search(dataclasses.replace(prepared, config=prepared.config.replace(trials=8)))
    assert [state for _, state, _ in states(path)] == ["COMPLETE"] * 8


@pytest.mark.parametrize("glued, found", [(1, "ends in a damaged line"),
                                           (3, "cannot be read (JSONDecodeError: ")])
def test_a_journal_written_after_its_torn_line_is_repaired_keeping_every_record(
        journal_study, glued, found):
    """A file damaged by an older dse: the torn line has a record glued to it (the last
    line, or one with more after it)."""
    path, _ = journal_study
    before = states(path)
    lines = path.read_bytes().split(b"\n")[:-1]
    lines[-glued] = TORN + lines[-glued]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    result = run("status", "--storage", f"journal:{path}", "--study", "toy")
    assert result.exit_code == 2 and found in result.stderr, result.stderr
    assert f"run `dse repair-journal {path}`" in result.stderr
    result = run("repair-journal", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["salvaged_records"] == 1 and report["removed_bytes"] == len(TORN)
    assert report["records"] == len(lines)
    assert states(path) == before


def test_a_journal_torn_while_a_worker_runs_is_not_written_after(tmp_path):
    from dse.storage.journal import TornJournal
    path = tmp_path / "study.log"
    study = optuna.create_study(storage=open_storage(f"journal:{path}"))
    study.tell(study.ask(), 1.0)
    with open(path, "ab") as handle:  # another node, lost while it wrote
        handle.write(TORN)
    torn = path.read_bytes()
    with pytest.raises(TornJournal, match=r"ends in a torn line .* nothing more is written"):
        study.ask()
    assert path.read_bytes() == torn


def test_a_search_whose_journal_is_torn_meanwhile_stops_with_its_results(tmp_path,
                                                                         toy_table):
    from dse.storage.journal import TornJournal
    path, estimator, calls = tmp_path / "study.log", StubEstimator(), [0]

    def probe(candidate):
        calls[0] += 1
        if calls[0] == 3:  # another worker on the journal is lost while it writes
            with open(path, "ab") as handle:
                handle.write(TORN)
        return estimator(candidate)

    prepared = dataclasses.replace(toy_prepared(toy_table, tmp_path, trials=10),
                                   storage_url=f"journal:{path}",
                                   accuracy=AccuracyModel(probe, 0.95))
    with pytest.raises(TornJournal) as raised:
        run_search(prepared)
    assert str(raised.value).startswith(f"journal {path} ends in a torn line ({len(TORN)} "
                                        "bytes")
    assert str(raised.value).endswith(f"the results in {prepared.out_dir} are written from "
                                      "them")
    assert path.read_bytes().endswith(b"}\n" + TORN)
    frame = (prepared.out_dir / "trials.csv").read_text().splitlines()
    assert sum(",COMPLETE," in line for line in frame) >= 2


# -- an empty --storage --------------------------------------------------------------------

@pytest.mark.parametrize("empty", ["", "  "])
@pytest.mark.parametrize("command", [
    ["search", "--objectives", "latency,energy", "--trials", "2"],
    ["pareto", "--study", "s"], ["pareto", "s"], ["status", "--study", "s"],
    ["show", "s", "--trial", "0"]])
def test_an_empty_storage_is_refused(tmp_path, command, empty):
    """Before: ``dse search --storage ""`` searched a private SQLite study of its own."""
    result = run(*command, "--storage", empty, "--results-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stderr == ("dse: error: --storage is empty (is the variable holding the "
                             "URL unset?): give a storage URL, or leave --storage out\n")
    assert list(tmp_path.iterdir()) == []
