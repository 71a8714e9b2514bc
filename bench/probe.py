"""Accuracy-probe benchmark: speed, baseline accuracy and fidelity of the quick fine-tune.

For resnet8 on digits (always) and resnet20 on the CIFAR-10 subset (when ../shared/data is
there): train or reuse the baseline checkpoint, time probes at the default quick settings,
and compare the quick probe's ranking of 9 diverse candidates (channel splits x bit error
rates) with a 10x longer fine-tune (Spearman rank correlation).

Run: python bench/probe.py [--results-dir bench-results] [--threads 2] [--skip-cifar]
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from dse.accuracy.probe import DataRequest, obtain_checkpoint
from dse.workload import load_workload
from hw_models import load_soc
from hw_models.dram import load_dram
from hw_models.mapping import HEURISTICS
from networks.datasets import load_dataset
from networks.probe import ProbeCandidate, ProbeConfig, ProbeSetup, probe

CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def candidates(network: str, dataset: str) -> list[tuple[str, ProbeCandidate]]:
    """Nine candidates: three splits, each error-free and at two bit error rates."""
    table = load_workload(network, dataset).table
    soc = load_soc("diana")
    splits = {name: HEURISTICS[name](table, soc)
              for name in ("all-digital", "all-analog", "diana-heuristic")}
    levels = {"clean": (0.0, 0.0), "ber 3e-3": (3e-3, 1e-3), "ber 1e-2": (1e-2, 3e-3)}
    return [(f"{split_name}, {level_name}", ProbeCandidate(
                tuple(int(n) for n in split), (w_ber,) * table.n_layers,
                (a_ber,) * table.n_layers))
            for split_name, split in splits.items()
            for level_name, (w_ber, a_ber) in levels.items()]


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> np.ndarray:
        values = np.asarray(values)
        order = values.argsort()
        rank = np.empty(len(values))
        rank[order] = np.arange(len(values))
        for value in np.unique(values):  # ties share their mean rank
            rank[values == value] = rank[values == value].mean()
        return rank
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def run(network: str, dataset: str, data_dir: str | None, results_dir: str) -> dict:
    start = time.perf_counter()
    checkpoint, _, trained = obtain_checkpoint(DataRequest(
        network=network, dataset=dataset, data_dir=data_dir, results_dir=results_dir,
        device="cpu"))
    train_s = time.perf_counter() - start
    device = load_dram("lpddr4-3200")
    setup = ProbeSetup(checkpoint=checkpoint, bundle=load_dataset(dataset, data_dir),
                       config=ProbeConfig(), error_params=device.error_params,
                       row_bytes=device.row_bytes)
    longer = dataclasses.replace(setup, config=ProbeConfig(steps=10 * ProbeConfig.steps))
    quick_accuracy, long_accuracy, seconds = [], [], []
    for name, candidate in candidates(network, dataset):
        quick = probe(candidate, setup=setup)
        slow = probe(candidate, setup=longer)
        quick_accuracy.append(quick.accuracy_mean)
        long_accuracy.append(slow.accuracy_mean)
        seconds.append(quick.seconds)
        print(f"  {name:<32} quick {quick.accuracy_mean:.4f} ({quick.seconds:5.1f} s)   "
              f"10x {slow.accuracy_mean:.4f} ({slow.seconds:5.1f} s)", flush=True)
    return {"network": network, "dataset": dataset, "baseline": checkpoint.val_accuracy,
            "train_s": train_s if trained else float("nan"),
            "probe_s": float(np.median(seconds)),
            "spearman": spearman(quick_accuracy, long_accuracy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-cifar", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [("resnet8", "digits", None)]
    if CIFAR_DIR.is_dir() and not args.skip_cifar:
        runs.append(("resnet20", "cifar10", str(CIFAR_DIR)))
    rows = []
    for network, dataset, data_dir in runs:
        print(f"{network} on {dataset}:", flush=True)
        rows.append(run(network, dataset, data_dir, args.results_dir))
    print(f"\n{args.threads} threads; quick probe = {ProbeConfig.steps} steps, "
          f"{ProbeConfig.seeds} error seeds; 9 candidates")
    print(f"{'network':<10} {'dataset':<9} {'baseline val acc':>16} {'train s':>8} "
          f"{'probe s (median)':>16} {'Spearman vs 10x':>15}")
    for row in rows:
        print(f"{row['network']:<10} {row['dataset']:<9} {row['baseline']:>16.4f} "
              f"{row['train_s']:>8.0f} {row['probe_s']:>16.2f} {row['spearman']:>15.3f}")


if __name__ == "__main__":
    main()
