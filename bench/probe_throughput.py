"""Probe throughput: fine-tune steps per second one candidate at a time vs batched.

For each workload (resnet8 on digits; resnet8 and resnet20 on the CIFAR-10 subset in
../shared/data, when present) one representative candidate (half of every layer's channels
analog, every stored tensor at a BER of 1e-4: errors drawn on every step) is fine-tuned at
the probe's batch of 64 images:

* ``one at a time``: the probe's own fine-tune (``networks.finetune._fine_tune``) of one
  replica, the way every probe ran before the batched probe;
* ``one at a time, 1 thread``: the same with every operation on one thread, as the
  batched probe runs each replica;
* ``batched K``: K replicas as the batched probe fine-tunes them (``networks.stacked``,
  ``_fine_tune_stacked``): one stack of about K / W replicas on each of W threads
  (``--workers``, default the torch threads), every operation single-threaded, for
  K = 1, 2, 4, ... up to ``--max-k`` (and what a quarter of the free memory holds);
* ``float limit``: the plain float network (BatchNorm and all, no quantisers, no errors),
  forward and backward at the same total batch, K x 64 images: what this machine does
  with this network and no DIANA at all, the practical ceiling.

Reported in candidate fine-tune steps per second (one replica's step of 64 images), with the
ratio to one at a time and to the float limit at the same K, all measured in one run (the
ratios are what compare; the absolute rates move with the machine's load). ``--memory``
measures instead, in fresh processes, the peak resident memory each added replica costs,
per image and per value of the layers' inputs and outputs (``BYTES_PER_ACTIVATION_VALUE``
in ``dse.accuracy.probe_estimator`` is set from it).

``--conv-layouts`` times one convolution of K replicas three ways (a loop, a grouped
convolution, ``vmap``): what the batched probe's layout was chosen by.

Run: python bench/probe_throughput.py [--only digits|cifar10|resnet20] [--threads N] [--workers W]
     [--max-k 64] [--steps 6] [--device cpu|cuda] [--memory | --conv-layouts]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from dse.accuracy import ProbeCandidate
from dse.accuracy.probe_estimator import (
    BYTES_PER_ACTIVATION_VALUE,
    MEMORY_SHARE,
    free_memory_bytes,
)
from hw_models.error_models import ErrorModelParams
from networks import finetune
from networks.datasets import DataBundle, load_dataset
from networks.diana_model import DianaModel, calibrate, to_diana
from networks.extract import extract_layer_table
from networks.stacked import StackedModel, activation_values
from networks.train import Checkpoint
from networks.zoo import build_network

CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
BATCH = 64
BER = 1e-4  # every stored tensor's bit error rate (--ber)


@dataclass(frozen=True)
class Workload:
    name: str
    network: str
    dataset: str


WORKLOADS = [Workload("resnet8/digits", "resnet8", "digits"),
             Workload("resnet8/cifar10", "resnet8", "cifar10"),
             Workload("resnet20/cifar10", "resnet20", "cifar10")]


def bundle_of(workload: Workload) -> DataBundle:
    return load_dataset(workload.dataset, CIFAR_DIR if workload.dataset == "cifar10" else None)


def diana_model(workload: Workload, bundle: DataBundle) -> tuple[DianaModel, torch.nn.Module,
                                                                 Checkpoint]:
    """The network as the probe fine-tunes it (untrained weights: the rate does not depend
    on them), its float original, and a checkpoint of it."""
    torch.manual_seed(0)
    float_model = build_network(workload.network, bundle.spec)
    table = extract_layer_table(float_model, bundle.spec.input_shape,
                                num_classes=bundle.spec.num_classes)
    model = to_diana(copy.deepcopy(float_model), table.name)
    calibrate(model, next(bundle.batches("train", 256, shuffle=False))[0])
    checkpoint = Checkpoint(
        network=workload.network, dataset=bundle.spec.name, input_shape=bundle.spec.input_shape,
        num_classes=bundle.spec.num_classes, layer_names=table.name, train_config={},
        state_dict=model.state_dict(), val_accuracy=math.nan, float_val_accuracy=math.nan)
    half = [layer.layer.weight.shape[0] // 2 for layer in model.layers()]
    model.set_split(half)
    return model, float_model, checkpoint


def candidate(model: DianaModel, ber: float = BER) -> ProbeCandidate:
    n = len(model.layer_names)
    return ProbeCandidate(tuple(int(layer.analog.sum()) for layer in model.layers()),
                          (ber,) * n, (ber,) * n, shortcut_ber=(ber,) * n)


def setup_for(bundle: DataBundle, checkpoint: Checkpoint, steps: int,
              device: str) -> finetune.FineTuneSetup:
    config = finetune.FineTuneConfig(steps=steps, batch_size=BATCH, lr=3e-4, ramp_fraction=0.0,
                                     finetune_seeds=1, error_seeds=1, error_model=0,
                                     split="val", seed=0)
    return finetune.FineTuneSetup(checkpoint, bundle, config, ErrorModelParams(), 2048,
                                  device=device)


def timed(run, repeats: int = 2) -> float:
    """The best of ``repeats`` wall times of ``run()`` (the least disturbed by others);
    the models are built before."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def one_at_a_time_rate(model: DianaModel, setup: finetune.FineTuneSetup,
                       ber: float, threads: int) -> float:
    """One replica fine-tuned alone, its operations on ``threads`` threads (the probe
    before batching ran on torch's threads; the batched probe runs each replica on one)."""
    probe = candidate(model, ber)
    replica = copy.deepcopy(model).to(setup.device)
    before = torch.get_num_threads()

    def run() -> None:
        finetune._fine_tune(replica, probe, setup, seed=1)
    torch.set_num_threads(threads)
    try:
        return setup.config.steps / timed(run)
    finally:
        torch.set_num_threads(before)


def batched_rate(model: DianaModel, setup: finetune.FineTuneSetup, k: int,
                 ber: float, workers: int) -> float:
    """The batched probe's fine-tune: K replicas as up to ``workers`` stacks of at least
    ``MIN_REPLICAS_PER_WORKER`` replicas, one thread each, every operation single-threaded
    (``fine_tuned_correctness_many``)."""
    probe = candidate(model, ber)
    spread = min(workers, max(1, k // finetune.MIN_REPLICAS_PER_WORKER))  # as the probe
    parts = [len(p) for p in np.array_split(np.arange(k), spread) if len(p)]
    stacks = [StackedModel([copy.deepcopy(model) for _ in range(n)]).to(setup.device)
              for n in parts]

    def run() -> None:
        def one(part: int, stop) -> None:
            finetune._fine_tune_stacked(stacks[part], [probe] * parts[part], setup,
                                        seeds=list(range(parts[part])), on_step=None,
                                        stop=stop)
        with finetune.single_threaded_ops(setup.device):
            finetune.in_threads(one, len(parts))
    return k * setup.config.steps / timed(run)


def float_rate(float_model: torch.nn.Module, bundle: DataBundle, k: int, steps: int,
               device: str) -> float:
    model = copy.deepcopy(float_model).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    images = torch.randn(k * BATCH, *bundle.spec.input_shape, device=device)
    labels = torch.randint(0, bundle.spec.num_classes, (k * BATCH,), device=device)

    def run() -> None:
        for _ in range(steps):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return k * steps / timed(run)


def throughput(workload: Workload, args: argparse.Namespace) -> list[dict]:
    bundle = bundle_of(workload)
    model, float_model, checkpoint = diana_model(workload, bundle)
    setup = setup_for(bundle, checkpoint, args.steps, args.device)
    per_replica = BYTES_PER_ACTIVATION_VALUE * BATCH * activation_values(
        model, bundle.spec.input_shape)
    fits = max(1, int(MEMORY_SHARE * free_memory_bytes(args.device) // per_replica))
    threads = torch.get_num_threads()
    single = one_at_a_time_rate(model, setup, args.ber, threads)
    float_one = float_rate(float_model, bundle, 1, args.steps, args.device)
    rows = [{"workload": workload.name, "k": f"one at a time, {threads} threads",
             "rate": single, "vs_single": 1.0, "float": float_one}]
    if threads > 1:
        alone = one_at_a_time_rate(model, setup, args.ber, 1)
        rows.append({"workload": workload.name, "k": "one at a time, 1 thread",
                     "rate": alone, "vs_single": alone / single, "float": float_one})
    k = 1
    while k <= min(args.max_k, fits):
        rate = batched_rate(model, setup, k, args.ber, args.workers or threads)
        limit = float_rate(float_model, bundle, k, args.steps, args.device)
        rows.append({"workload": workload.name, "k": k, "rate": rate,
                     "vs_single": rate / single, "float": limit})
        print(f"  {workload.name} K={k}: {rate:.1f} candidate steps/s", flush=True)
        k *= 2
    return rows


def memory_probe(network: str, dataset: str, k: int) -> None:
    """(In a fresh process) peak RSS growth of a K-replica fine-tune step; prints JSON."""
    from networks.datasets import get_dataset_spec

    # no data is loaded (its peak would hide the step's): the network on random images
    spec = get_dataset_spec(dataset)
    float_model = build_network(network, spec)
    names = extract_layer_table(float_model, spec.input_shape,
                                num_classes=spec.num_classes).name
    model = to_diana(float_model, names)
    model.set_split([layer.layer.weight.shape[0] // 2 for layer in model.layers()])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stacked = StackedModel([copy.deepcopy(model) for _ in range(k)]).train()
    images = torch.randn(k * BATCH, *spec.input_shape)
    labels = torch.randint(0, spec.num_classes, (k * BATCH,))
    for _ in range(2):
        F.cross_entropy(stacked(images), labels).backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"k": k, "bytes": (peak - before) * 1024,
                      "values": activation_values(model, spec.input_shape)}))


def memory(workloads: list[Workload]) -> None:
    print("| workload | K | peak RSS growth MB | per added replica, bytes per image and value |")
    print("|---|---|---|---|")
    for workload in workloads:
        found = []
        for k in (1, 2, 4):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-probe", workload.network,
                 workload.dataset, str(k)], capture_output=True, text=True, check=True)
            found.append(json.loads(out.stdout.strip().splitlines()[-1]))
        for row in found:
            slope = ""
            if row["k"] > 1:
                slope = (row["bytes"] - found[0]["bytes"]) / (row["k"] - 1)
                slope = f"{slope / (BATCH * row['values']):.1f}"
            print(f"| {workload.name} | {row['k']} | {row['bytes'] / 2**20:.0f} | {slope} |")


def conv_layouts(repeats: int) -> None:
    """One 3x3 convolution of K replicas, forward and backward, three ways: a loop of K
    convolutions on their own rows, one grouped convolution over the replicas' channels,
    and ``torch.func.vmap`` over the replicas' weights; at ResNet8's and ResNet20's sizes
    (channels x image side) on 64 images per replica. What the batched probe's layout was
    chosen by."""
    from torch.func import vmap

    print("| channels | side | K | loop, ms | grouped, ms | vmap, ms |")
    print("|---|---|---|---|---|---|")
    for channels, side in ((16, 8), (32, 4), (64, 2), (16, 32), (32, 16), (64, 8)):
        for k in (1, 4, 16):
            rows = [torch.randn(BATCH, channels, side, side, requires_grad=True)
                    for _ in range(k)]
            weights = [torch.randn(channels, channels, 3, 3, requires_grad=True)
                       for _ in range(k)]
            grouped_x = torch.randn(BATCH, k * channels, side, side, requires_grad=True)
            grouped_w = torch.randn(k * channels, channels, 3, 3, requires_grad=True)
            stacked_x = torch.randn(k, BATCH, channels, side, side, requires_grad=True)
            stacked_w = torch.randn(k, channels, channels, 3, 3, requires_grad=True)

            def loop() -> None:
                sum(F.conv2d(x, w, padding=1).sum() for x, w in zip(rows, weights)).backward()

            def grouped() -> None:
                F.conv2d(grouped_x, grouped_w, padding=1, groups=k).sum().backward()

            def mapped() -> None:
                vmap(lambda x, w: F.conv2d(x, w, padding=1))(stacked_x, stacked_w
                                                              ).sum().backward()
            times = []
            for run in (loop, grouped, mapped):
                run()
                times.append(min(timed(run, 1) for _ in range(repeats)) * 1e3)
            print(f"| {channels} | {side} | {k} | " + " | ".join(f"{t:.2f}" for t in times)
                  + " |")


def table(rows: list[dict]) -> None:
    print("| workload | K | candidate steps/s | vs one at a time | float limit, steps/s | "
          "share of the float limit |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['workload']} | {row['k']} | {row['rate']:.1f} | "
              f"{row['vs_single']:.2f}x | {row['float']:.1f} | "
              f"{row['rate'] / row['float']:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["digits", "cifar10", "resnet20"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="[default: torch's]")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads the batched probe spreads its replicas over "
                             "[default: --threads]")
    parser.add_argument("--max-k", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--ber", type=float, default=BER,
                        help="bit error rate of every stored tensor (0: no error draws)")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory per replica instead of throughput")
    parser.add_argument("--memory-probe", nargs=3, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--conv-layouts", action="store_true",
                        help="time a loop, a grouped convolution and vmap instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        network, dataset, k = args.memory_probe
        memory_probe(network, dataset, int(k))
        return
    if args.conv_layouts:
        conv_layouts(repeats=5)
        return
    chosen = {"digits": WORKLOADS[:1], "cifar10": WORKLOADS[1:2],
              "resnet20": WORKLOADS[2:]}.get(args.only or "", WORKLOADS)
    if not CIFAR_DIR.is_dir():
        chosen = [w for w in chosen if w.dataset != "cifar10"]
        print(f"(no CIFAR-10 subset at {CIFAR_DIR}: digits only)")
    if args.memory:
        memory(chosen)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = [row for workload in chosen for row in throughput(workload, args)]
    table(rows)


if __name__ == "__main__":
    main()
