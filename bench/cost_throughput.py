"""Candidate evaluations per second of the DIANA cost model on ResNet20 (CIFAR-10 shapes).

Three ways over the same random candidates on the search grid (16-channel steps plus Cout):
  * lookup   - ``CostLookup.totals``: per-layer tables of every split, gather and sum;
  * direct   - ``compute_cost`` on the whole batch (vectorised formulas);
  * loop     - a plain Python loop over candidates and layers with scalar formulas.
Run: python bench/cost_throughput.py [--candidates N] [--loop-candidates N]
Pin one core for the 'one core' figure: taskset -c 0 python bench/cost_throughput.py
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from dse.workload import load_workload
from hw_models import build_cost_lookup, compute_cost, load_soc


def grid_candidates(cout: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    columns = []
    for channels in cout:
        grid = np.unique(np.append(np.arange(0, channels + 1, 16), channels))
        columns.append(rng.choice(grid, size=n))
    return np.stack(columns, axis=1)  # (n, n_layers)


def loop_totals(rows: list[dict], soc, candidates: np.ndarray) -> list[tuple[float, float]]:
    """Scalar reference: the formulas of hw_models/diana.py, one layer at a time."""
    d, a, p, f = soc.digital, soc.analog, soc.power, soc.clock_hz
    results = []
    for candidate in candidates.tolist():
        latency = energy = 0.0
        for row, n_a in zip(rows, candidate):
            n_d = row["cout"] - n_a
            t_d = 0.0
            if n_d > 0:
                t_d = (math.ceil(n_d / row["groups"] / d.pe_output_channels) * row["cin"]
                       * math.ceil(row["ox"] / d.pe_output_pixels) * row["oy"] * row["kx"]
                       * row["ky"] + row["ox"] * row["oy"] * (n_d + row["cin"])
                       / d.activations_per_cycle)
            t_a = 0.0
            if n_a > 0:
                u = 1
                for choice in a.ox_unroll_choices:
                    if (n_a * choice <= a.array_columns and (row["kx"] + choice - 1)
                            * max(a.unroll_min_input_channels, row["cin"]) * row["ky"]
                            <= a.array_rows):
                        u = choice
                n_mvm = (math.ceil(n_a / a.array_columns)
                         * math.ceil(row["cin"] / a.input_channels_per_mvm)
                         * row["ox"] * row["oy"] / u)
                t_a = (n_mvm * a.mvm_time_ns * f / 1e9
                       + a.weight_load_cycles_per_row * row["cin"] * row["kx"] * row["ky"])
            overlap = min(t_d, t_a)
            latency += max(t_d, t_a)
            energy += (p.both_mw * overlap + p.analog_mw * (t_a - overlap)
                       + p.digital_mw * (t_d - overlap)) * 1e-3 / f
        results.append((latency, energy))
    return results


def rate(function, n: int, repeats: int = 3) -> float:
    best_s = min(_timed(function) for _ in range(repeats))
    return n / best_s


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--loop-candidates", type=int, default=5_000)
    args = parser.parse_args()

    table = load_workload("resnet20", "cifar10").table
    soc = load_soc("diana")
    candidates = grid_candidates(table.cout, args.candidates)
    lookup = build_cost_lookup(table, soc)
    rows = table.to_records()

    loop = loop_totals(rows, soc, candidates[:args.loop_candidates])
    fast = lookup.totals(candidates[:args.loop_candidates])
    assert np.allclose([latency for latency, _ in loop], fast.latency_cycles, rtol=1e-12, atol=0)
    assert np.allclose([e for _, e in loop], fast.energy_j, rtol=1e-12, atol=0)

    n_direct = min(args.candidates, 100_000)
    results = [
        ("lookup (gather + sum)", args.candidates,
         rate(lambda: lookup.totals(candidates), args.candidates)),
        ("direct (vectorised formulas)", n_direct,
         rate(lambda: compute_cost(table, soc, candidates[:n_direct]), n_direct)),
        ("loop (per-layer Python)", args.loop_candidates,
         rate(lambda: loop_totals(rows, soc, candidates[:args.loop_candidates]),
              args.loop_candidates, repeats=1)),
    ]
    loop_rate = results[-1][2]
    print(f"ResNet20 ({table.n_layers} layers), DIANA preset; results agree to rtol 1e-12")
    print(f"{'method':<30} {'candidates':>11} {'candidates/s':>14} {'vs loop':>9}")
    for name, n, per_s in results:
        print(f"{name:<30} {n:>11,} {per_s:>14,.0f} {per_s / loop_rate:>8.0f}x")


if __name__ == "__main__":
    main()
