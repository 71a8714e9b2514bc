"""Accuracy-probe fidelity: does the quick probe rank candidates as a longer fine-tune does?

For resnet8 on digits and resnet20 on the CIFAR-10 subset in ../shared/data (when present):
draw ``--candidates`` random candidates of the real search space (per-layer splits, the
approximate partition's VDD and tRCD, which tensors live there; DIANA with its LPDDR4-3200),
and measure each with

* the quick probe at the search's defaults (20 steps, 2 fine-tune x 3 error seeds),
* a 10x longer fine-tune with 3 fine-tune seeds (``long A``),
* the same longer fine-tune with 3 other seeds (``long B``),

each with its own base seed (fine-tune batches, training masks and evaluation masks all
differ), so that no two share noise.

Fidelity is Kendall's tau-b and Spearman's rho between the quick probe and long A; the noise
ceiling is the same between long A and long B (two measurements of the same thing): the
quick probe cannot rank better than that. 95 % intervals come from a bootstrap over the
candidates. Also reported: the rank agreement among candidates within 5 pp of the baseline
(the region the front lives in), the probe's seconds per candidate with the old statistics
(one fine-tune, no interval) and with the new ones, and what the bootstrap itself costs.

Every probe is cached under --results-dir, so a stopped run resumes where it was.
Run: python bench/probe.py [--results-dir bench-results] [--threads 1] [--candidates 30]
     [--only digits|cifar10] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from dse.accuracy import ProbeResult
from dse.accuracy.defaults import ProbeConfig
from dse.accuracy.probe_estimator import DataRequest, obtain_checkpoint, probe, probe_setup
from dse.evaluate import candidate_cost, probe_candidate
from dse.problem import Limits, build_problem
from dse.space import suggest_candidate

CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
NEAR_PP = 5.0  # "near the baseline": within this many pp of its accuracy (long A)


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties in either ranking counted as neither agreeing nor not)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), 1)
    da, db = da[upper], db[upper]
    denominator = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float((da * db).sum() / denominator) if denominator else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(values: np.ndarray) -> np.ndarray:
        order = values.argsort(kind="stable")
        rank = np.empty(len(values))
        rank[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their mean rank
            rank[values == value] = rank[values == value].mean()
        return rank
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def with_interval(statistic, a: np.ndarray, b: np.ndarray, replicates: int = 2000
                  ) -> tuple[float, float, float]:
    """The statistic and its 95 % percentile interval over resampled candidates."""
    rng = np.random.default_rng(0)
    values = []
    for _ in range(replicates):
        pick = rng.integers(0, len(a), len(a))
        value = statistic(a[pick], b[pick])
        if np.isfinite(value):
            values.append(value)
    low, high = np.quantile(values, [0.025, 0.975]) if values else (np.nan, np.nan)
    return statistic(a, b), float(low), float(high)


def random_candidates(problem, count: int, seed: int = 0):
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found = []
    for _ in range(count):
        candidate = suggest_candidate(sampler.ask(), problem.space)
        found.append(probe_candidate(candidate, candidate_cost(candidate, problem)))
    return found


def run(network: str, dataset: str, data_dir: str | None, results_dir: str, count: int,
        device: str = "cpu") -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem = build_problem(network=network, dataset=dataset, objectives="accuracy,latency",
                            limits=Limits(max_accuracy_drop_pp=None))
    data = DataRequest(network=network, dataset=dataset, data_dir=data_dir,
                       results_dir=results_dir, device=device)
    start = time.perf_counter()
    checkpoint, _, trained = obtain_checkpoint(data)
    train_s = time.perf_counter() - start if trained else float("nan")
    quick = probe_setup(data, ProbeConfig(), problem.device)
    steps = 10 * ProbeConfig.steps
    # three independent measurements: the probe's seeds also fix the evaluation's error
    # masks and the batch order, so a reference sharing the quick probe's seed would share
    # its noise and flatter it (tau near the baseline 0.85 against a ceiling of 0.47)
    long_a = dataclasses.replace(quick, config=dataclasses.replace(
        quick.config, steps=steps, finetune_seeds=3, seed=1))
    long_b = dataclasses.replace(long_a, config=dataclasses.replace(long_a.config, seed=2))
    old = dataclasses.replace(quick, config=dataclasses.replace(quick.config,
                                                                finetune_seeds=1))
    rows = []
    for index, candidate in enumerate(random_candidates(problem, count)):
        measured = [probe(candidate, setup=setup) for setup in (quick, long_a, long_b)]
        rows.append(measured)
        print(f"  {index + 1:>3}/{count}  quick {measured[0].accuracy_mean:.4f} "
              f"[{measured[0].ci_low:.3f}, {measured[0].ci_high:.3f}]  long A "
              f"{measured[1].accuracy_mean:.4f}  long B {measured[2].accuracy_mean:.4f}  "
              f"max weight BER {max(candidate.weight_ber):.1e}", flush=True)
    timing = [probe(candidate, setup=old) for candidate in random_candidates(problem, 5)]
    quick_acc, a_acc, b_acc = (np.array([row[k].accuracy_mean for row in rows])
                               for k in range(3))
    baseline = probe(_error_free(problem), setup=long_a).accuracy_mean
    near = a_acc >= baseline - NEAR_PP / 100
    bootstrap_s = _bootstrap_seconds([row[0] for row in rows])
    return {
        "network": network, "dataset": dataset, "candidates": count,
        "images": int(rows[0][0].correct.shape[2]), "baseline_val": checkpoint.val_accuracy,
        "train_s": train_s,
        "tau": with_interval(kendall_tau_b, quick_acc, a_acc),
        "rho": with_interval(spearman, quick_acc, a_acc),
        "ceiling_tau": with_interval(kendall_tau_b, a_acc, b_acc),
        "ceiling_rho": with_interval(spearman, a_acc, b_acc),
        "near": int(near.sum()),
        "near_tau": (with_interval(kendall_tau_b, quick_acc[near], a_acc[near])
                     if near.sum() >= 4 else (np.nan,) * 3),
        "near_ceiling_tau": (with_interval(kendall_tau_b, a_acc[near], b_acc[near])
                             if near.sum() >= 4 else (np.nan,) * 3),
        "quick_s": _median_seconds([row[0] for row in rows]),
        "old_s": _median_seconds(timing),
        "long_s": _median_seconds([row[1] for row in rows]),
        "bootstrap_s": bootstrap_s,
    }


def _error_free(problem):
    from dse.accuracy import error_free
    return error_free(problem.table.n_layers)


def _median_seconds(results: list[ProbeResult]) -> float:
    """Median seconds of the original measurements (cached results keep theirs)."""
    return statistics.median(result.seconds for result in results)


def _bootstrap_seconds(results: list[ProbeResult]) -> float:
    """Median seconds of computing one result's interval from its correctness."""
    times = []
    for result in results[:10]:
        start = time.perf_counter()
        ProbeResult.from_correct(result.correct, seconds=0.0)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fmt(triple: tuple[float, float, float]) -> str:
    value, low, high = triple
    return "n/a" if not np.isfinite(value) else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--only", choices=["digits", "cifar10"], default=None)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="where to train and fine-tune (results differ slightly by device)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [("resnet8", "digits", None)]
    if CIFAR_DIR.is_dir():
        runs.append(("resnet20", "cifar10", str(CIFAR_DIR)))
    runs = [run_ for run_ in runs if args.only in (None, run_[1])]
    rows = []
    for network, dataset, data_dir in runs:
        print(f"{network} on {dataset}:", flush=True)
        rows.append(run(network, dataset, data_dir, args.results_dir, args.candidates,
                        args.device))
    print(f"\n{args.threads} thread(s); quick = {ProbeConfig.steps} steps x "
          f"{ProbeConfig.finetune_seeds} fine-tune x {ProbeConfig.error_seeds} error seeds; "
          f"long = {10 * ProbeConfig.steps} steps x 3 x {ProbeConfig.error_seeds}; "
          "95 % intervals over candidates")
    print("| network / data | candidates (near baseline) | tau quick vs long | "
          "rho quick vs long | noise ceiling tau (long vs long) | ceiling rho | "
          "tau near baseline | ceiling tau near |")
    for row in rows:
        print(f"| {row['network']} / {row['dataset']} ({row['images']} val images) | "
              f"{row['candidates']} ({row['near']}) | {_fmt(row['tau'])} | "
              f"{_fmt(row['rho'])} | {_fmt(row['ceiling_tau'])} | {_fmt(row['ceiling_rho'])} | "
              f"{_fmt(row['near_tau'])} | {_fmt(row['near_ceiling_tau'])} |")
    print("\n| network / data | baseline val acc | training s | probe s, old statistics (1 "
          "fine-tune) | probe s, now (2 fine-tunes) | long s | bootstrap s |")
    for row in rows:
        print(f"| {row['network']} / {row['dataset']} | {row['baseline_val']:.4f} | "
              f"{row['train_s']:.0f} | {row['old_s']:.2f} | {row['quick_s']:.2f} | "
              f"{row['long_s']:.1f} | {row['bootstrap_s']:.4f} |")


if __name__ == "__main__":
    main()
