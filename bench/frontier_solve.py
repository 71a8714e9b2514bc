"""The frontier engine's exact solve: seconds to the exact front of (predicted drop,
latency, energy) over every channel split of the search grid and every whole-device DRAM
point, per workload (the issue's budget: under 1 s for ResNet20).

The predicted drops are made up (each layer's rising with its analog share, the DRAM's with
the undervolt): the solve's work depends on the tables' sizes and on how many sums stay
non-dominated, not on where the drops come from. Each workload is solved ``--repeats`` times
and the fastest and slowest reported, beside the cost tables' share.

Run: python bench/frontier_solve.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from dse.engines.frontier import cost_tables, dram_points, solve, split_grid
from dse.problem import build_problem
from dse.workload import load_workload

WORKLOADS = (("resnet8", "digits"), ("resnet8", "cifar10"), ("resnet20", "cifar10"))


def made_up_drops(grid: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    drops = [np.sort(rng.uniform(0, 1.5, len(options))) for options in grid]
    return [d - d[0] for d in drops]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| workload | layers | channel splits | DRAM points | distinct tables | front points "
          "| solve s (fastest / slowest) | of which tables s |")
    print("|---|---|---|---|---|---|---|---|")
    for network, dataset in WORKLOADS:
        table = load_workload(network, dataset).table
        problem = build_problem(network=network, dataset=dataset, table=table)
        grid = split_grid(problem.space)
        drops = made_up_drops(grid)
        points = dram_points(problem.space)

        def dram_drop(point: tuple[float, float] | None) -> float:
            return 0.0 if point is None else 10.0 * max(0.0, 1.1 - point[0])
        times, table_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            solved = solve(problem, drops, dram_drop)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            keys = {cost_tables(problem, point, grid).key() for point in points}
            table_times.append(time.perf_counter() - start)
        print(f"| {network}/{dataset} | {table.n_layers} | "
              f"{int(np.prod([len(g) for g in grid], dtype=float)):,} | {len(points)} | "
              f"{len(keys)} | {len(solved.drop_pp):,} | {min(times):.3f} / {max(times):.3f} "
              f"| {min(table_times):.3f} |")


if __name__ == "__main__":
    main()
