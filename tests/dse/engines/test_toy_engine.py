"""A new engine is one module and one registry call: the toy engine below, defined nowhere
else, runs from ``dse search --engine toy`` with its own option in ``--help``, writes trials
that ``dse pareto``, ``show`` and ``confirm`` read, and passes the engine contract."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import cli
from dse.engines import EngineJob, EngineSpec, register, setting, unregister
from dse.engines import make_engine as engine_by_name
from dse.engines.testing import EngineContract
from dse.engines.units import Outcome, Unit, run_units
from dse.evaluate import evaluate
from dse.space import at_point, channel_step
from hw_models.errors import ConfigError


@dataclass(frozen=True)
class ToySettings:
    toy_points: int = setting(2, metavar="N",
                              help="candidates after the baselines, each an equal analog "
                                   "share of every layer (1/(N+1), 2/(N+1), ...)")

    def __post_init__(self) -> None:
        if self.toy_points < 1:
            raise ConfigError(f"--toy-points must be >= 1 (got {self.toy_points})")


@dataclass
class ToyEngine:
    points: int
    name: str = "toy"

    def run(self, job: EngineJob) -> None:
        table = job.problem.table

        def measure(unit: Unit) -> Outcome:  # one point, on whichever worker claims it
            share = int(unit.key) / (self.points + 1)
            n_analog = [int(share * cout) // channel_step(cout) * channel_step(cout)
                        if capable else 0
                        for cout, capable in zip(table.cout, table.analog_capable)]
            candidate = at_point(job.problem.space, n_analog, None)
            return Outcome(candidate, evaluate(candidate, job.problem, job.accuracy),
                           columns={"toy_share": share})  # a column of trials.csv
        # the baselines and safe points every study holds, then each point once
        run_units(job, self.name, [Unit(str(k)) for k in range(1, self.points + 1)], measure)


TOY = EngineSpec(name="toy", summary="equal analog shares, for the tests",
                 settings=ToySettings,
                 factory=lambda settings, problem, study: ToyEngine(settings.toy_points))


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    register(TOY)
    yield
    unregister("toy")


class TestToyEngine(EngineContract):
    def make_engine(self, problem, study):
        return engine_by_name("toy", problem=problem, study=study)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_its_option_shows_in_help_and_belongs_to_it(tmp_path):
    shown = run("search", "--help").stdout
    assert "|toy]" in shown.split("--engine", 1)[1].split()[0]  # among the choices
    assert "toy: candidates after the baselines" in " ".join(shown.split())
    wrong = run("search", "--toy-points", "3", "--results-dir", str(tmp_path))
    assert wrong.exit_code == 2
    assert "--toy-points is an option of --engine toy, not of --engine optuna" in wrong.stderr
    bad = run("search", "--engine", "toy", "--toy-points", "0", "--results-dir", str(tmp_path))
    assert bad.exit_code == 2 and "--toy-points must be >= 1" in bad.stderr


@pytest.mark.slow
def test_a_search_with_it_is_read_by_pareto_show_and_confirm(tmp_path):
    quick = ("--network", "resnet8", "--dataset", "digits", "--epochs", "1",
             "--probe-steps", "1", "--finetune-seeds", "1", "--error-seeds", "1",
             "--confirm-steps", "1", "--confirm-seeds", "1", "--threads", "1")
    where = ("--study", "toy", "--results-dir", str(tmp_path))
    searched = run("search", "--engine", "toy", "--toy-points", "2", "--trials", "10",
                   "--no-confirm", *quick, *where, "--json")
    assert searched.exit_code == 0, searched.stderr
    frame = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert len(frame) == 10 and set(frame["engine"]) == {"toy"}
    own = frame[frame["baseline"].isna() & frame["safe_dram_of"].isna()]
    assert len(own) == 2 and list(own["toy_share"]) == pytest.approx([1 / 3, 2 / 3])
    config = json.loads((tmp_path / "toy" / "config.json").read_text())["config"]
    assert (config["engine"], config["engine_settings"]) == ("toy", {"toy_points": 2})

    pareto = run("pareto", "toy", "--results-dir", str(tmp_path), "--json")
    assert pareto.exit_code == 0, pareto.stderr
    shown = run("show", "toy", "--results-dir", str(tmp_path), "--trial",
                str(int(own["trial"].iloc[-1])), "--json")
    assert shown.exit_code == 0, shown.stderr
    confirmed = run("confirm", "toy", "--results-dir", str(tmp_path), "--json")
    assert confirmed.exit_code == 0, confirmed.stderr
    after = pd.read_csv(tmp_path / "toy" / "trials.csv")
    assert after["test_accuracy"].notna().any()
