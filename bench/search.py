"""Search benchmark: hypervolume after 25 / 50 / 100 trials for tpe, nsga2 and random, and
where a trial's wall time goes (sampler and bookkeeping, cost model, probe).

resnet8 on digits, objectives (accuracy, latency, energy), lpddr4-3200, same seed for every
sampler, in-memory storage, probe cache cleared between samplers. Hypervolumes are computed
on losses normalised by the range over all samplers' trials (reference 1.1 per objective),
feasible trials only.

Run: python bench/search.py [--trials 100] [--seed 0] [--results-dir bench-results]
     [--plot docs/front.png]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import optuna
import torch

from dse.accuracy import AccuracyModel, probe_cache
from dse.accuracy.probe_estimator import ProbeEstimator
from dse.commands.search import prepare
from dse.config import SearchConfig
from dse.engines import Budget, EngineJob
from dse.engines.optuna_engine import OptunaEngine
from dse.pareto import hypervolume, pareto_mask, to_losses
from dse.results.ledger import Ledger, open_ledger
from dse.results.tables import trials_frame

SAMPLERS = ("tpe", "nsga2", "random")
CHECKPOINTS = (25, 50, 100)
COLUMNS = ["accuracy", "latency_s", "energy_j"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


def run_sampler(prepared, name: str, trials: int, seed: int):
    probe_cache.clear_memory_cache()
    probe = prepared.accuracy.estimator
    estimator = ProbeEstimator(dataclasses.replace(probe.setup, cache_dir=None))
    accuracy = AccuracyModel(estimator, prepared.accuracy.baseline_accuracy,
                             prepared.accuracy.baseline)
    study, _ = open_ledger(name=f"bench-{name}", storage=optuna.storages.InMemoryStorage(),
                           identity={}, problem=prepared.problem)
    job = EngineJob(problem=prepared.problem, ledger=Ledger(study, prepared.problem),
                    budget=Budget(trials), seed=seed, accuracy=accuracy)
    start = time.perf_counter()
    with job.guard:
        OptunaEngine(sampler=name).run(job)
    wall_s = time.perf_counter() - start
    return trials_frame(study), wall_s


def hypervolumes(frames: dict, trials: int) -> dict[str, list[float]]:
    every = np.concatenate([to_losses(f[COLUMNS].to_numpy(float), DIRECTIONS)
                            for f in frames.values()])
    low, high = every.min(axis=0), every.max(axis=0)
    scale = np.where(high > low, high - low, 1.0)
    result = {}
    for name, frame in frames.items():
        losses = (to_losses(frame[COLUMNS].to_numpy(float), DIRECTIONS) - low) / scale
        feasible = frame["feasible"].to_numpy(bool)
        volumes = []
        for count in [c for c in CHECKPOINTS if c <= trials]:
            points = losses[:count][feasible[:count]]
            front = points[pareto_mask(points, ["minimize"] * 3)]
            volumes.append(hypervolume(front, np.full(3, 1.1)))
        result[name] = volumes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = prepare(SearchConfig.from_options(results_dir=args.results_dir, seed=args.seed,
                                                 trials=args.trials, device="cpu"))
    frames, walls = {}, {}
    for name in SAMPLERS:
        frames[name], walls[name] = run_sampler(prepared, name, args.trials, args.seed)
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    volumes = hypervolumes(frames, args.trials)
    shown = [c for c in CHECKPOINTS if c <= args.trials]
    print(f"\nresnet8 / digits / lpddr4-3200, {args.trials} trials, seed {args.seed}")
    print(f"{'sampler':<8}" + "".join(f"{'HV@' + str(c):>9}" for c in shown)
          + f"{'s/trial':>9}{'sampler+book s':>16}{'cost ms':>9}{'probe s':>9}"
          + f"{'overhead %':>11}")
    for name in SAMPLERS:
        frame = frames[name]
        per_trial = walls[name] / len(frame)
        cost_s = frame["cost_seconds"].mean()
        probe_s = frame["probe_seconds"].mean()
        overhead_s = per_trial - cost_s - probe_s
        print(f"{name:<8}" + "".join(f"{v:>9.4f}" for v in volumes[name])
              + f"{per_trial:>9.3f}{overhead_s:>16.4f}{cost_s * 1e3:>9.2f}{probe_s:>9.3f}"
              + f"{100 * overhead_s / per_trial:>11.1f}")


if __name__ == "__main__":
    main()
