"""Writing a study's outputs (``dse pareto``): seconds for 1,000 to 10,000 trials.

Builds a SQLite study of N complete trials of the five-layer toy problem (random candidates,
the real cost model, a deterministic stub accuracy), then times ``dse pareto FOLDER`` as a
user runs it (a fresh process: loading the study, tables, summary, plots) and, in this
process, each part of ``write_outputs``.

Run: python bench/outputs.py [--trials 1000 10000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from dse.accuracy import AccuracyModel
from dse.engines.testing import StubEstimator, toy_problem
from dse.evaluate import evaluate, objective_values
from dse.results.files import write_json
from dse.results.ledger import ENGINE_ATTR, METRICS_ATTR, WORKER_ATTR, metrics_record, open_ledger
from dse.results.outputs import layer_channels
from dse.results.plots import write_plots
from dse.results.tables import trials_frame, write_tables
from dse.space import encode, param_distributions, suggest_candidate
from dse.storage.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]


def build_study(folder: Path, trials: int, seed: int = 0) -> str:
    """A results folder holding a SQLite study of ``trials`` complete trials."""
    url = f"sqlite:///{folder / 'study.db'}"
    problem = toy_problem()
    study, _ = open_ledger(name="bench", storage=open_storage(url),
                           identity={"network": "toy", "max_accuracy_drop": None},
                           problem=problem)
    accuracy = AccuracyModel(StubEstimator(), 0.95)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    distributions = param_distributions(problem.space)
    frozen = []
    for _ in range(trials):
        candidate = suggest_candidate(sampler.ask(), problem.space)
        evaluation = evaluate(candidate, problem, accuracy)
        params = encode(candidate, problem.space)
        frozen.append(optuna.trial.create_trial(
            values=objective_values(evaluation, problem), params=params,
            distributions={name: distributions[name] for name in params},
            user_attrs={METRICS_ATTR: metrics_record(evaluation), ENGINE_ATTR: "bench",
                        WORKER_ATTR: {"host": "bench", "pid": 1}}))
    study.add_trials(frozen)
    write_json(folder / "config.json", {"storage": url, "study": "bench"})
    return url


def time_parts(url: str, folder: Path) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    study.get_trials(deepcopy=False)
    times["load (Optuna)"] = time.perf_counter() - start
    start = time.perf_counter()
    frame = trials_frame(study)
    times["frame"] = time.perf_counter() - start
    start = time.perf_counter()
    write_tables(study, folder, max_drop_pp=None)
    times["tables + summary"] = time.perf_counter() - start
    start = time.perf_counter()
    write_plots(frame, ["accuracy", "latency", "energy"], layer_channels(study), folder)
    times["plots"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of dse pareto per size (the table shows each)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for trials in args.trials:
        folder = Path(tempfile.mkdtemp(prefix="dse-bench-outputs-"))
        url = build_study(folder, trials)
        parts = time_parts(url, folder)
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import cli; cli.main()", "pareto",
                            str(folder)], cwd=ROOT, check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        rows.append((trials, runs, parts))
        print(f"{trials} trials: dse pareto {', '.join(f'{r:.1f}' for r in runs)} s",
              flush=True)
    names = list(rows[0][2])
    print(f"\n{'trials':>7}{'dse pareto s (each run)':>26}"
          + "".join(f"{n:>18}" for n in names))
    for trials, runs, parts in rows:
        shown = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{trials:>7}{shown:>26}" + "".join(f"{parts[n]:>18.2f}" for n in names))
    print(f"\n(seconds; parts measured in this process; {np.__name__} {np.__version__})")


if __name__ == "__main__":
    main()
