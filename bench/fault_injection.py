"""Time of injecting DRAM bit errors into ResNet18-sized int8 weights on one core.

11,000,000 int8 weights (88 Mbit) at BER 1e-4 (about 8,800 flips), two ways:
  * inject_int8  - ``networks.fault_injection.inject_int8``: binomial flip count, distinct
    uniform positions, XOR of the touched bytes only (cost grows with flips);
  * per-bit mask - the usual baseline: ``torch.rand`` over all 88M bits < BER, pack the bits
    into bytes, XOR the whole tensor.
Also times inject_int8 under error models 1, 2 and 3. Targets: >= 50x faster than the per-bit
mask and < 20 ms for model 0.
Run: python bench/fault_injection.py [--weights N] [--ber P] [--repeats R]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from networks.fault_injection import inject_int8

ROW_BYTES = 8192  # an 8 KB DDR4 row (8 x8 chips), as in the ddr4-2400 preset
BIT_WEIGHTS = 2 ** torch.arange(8, dtype=torch.uint8)  # LSB first


def per_bit_mask(q: torch.Tensor, ber: float, generator: torch.Generator) -> torch.Tensor:
    """Baseline: one uniform draw per stored bit, packed into a byte mask and XOR-ed."""
    flips = torch.rand(q.numel(), 8, generator=generator) < ber  # (n_weights, 8)
    mask = (flips.to(torch.uint8) * BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)
    return (q.reshape(-1).view(torch.uint8) ^ mask).view(torch.int8).reshape(q.shape)


def median_ms(run: Callable[[int], torch.Tensor], repeats: int) -> float:
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        run(repeat)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=int, default=11_000_000)
    parser.add_argument("--ber", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    q = torch.randint(-128, 128, (args.weights,), dtype=torch.int8, generator=generator)

    def injector(model: int) -> Callable[[int], torch.Tensor]:
        return lambda seed: inject_int8(q, args.ber, model=model, seed=seed, row_bytes=ROW_BYTES)

    injector(0)(0)  # warm-up: first-call allocations
    baseline_ms = median_ms(lambda _: per_bit_mask(q, args.ber, generator), args.repeats)
    rows = [("per-bit mask", baseline_ms)]
    rows += [(f"inject_int8 model {m}", median_ms(injector(m), args.repeats)) for m in range(4)]
    print(f"{args.weights:,} int8 weights, BER {args.ber:g}, 1 thread, "
          f"median of {args.repeats}")
    print(f"{'method':<22}{'time ms':>10}{'speed-up':>10}")
    for name, ms in rows:
        print(f"{name:<22}{ms:>10.2f}{baseline_ms / ms:>9.1f}x")


if __name__ == "__main__":
    main()
