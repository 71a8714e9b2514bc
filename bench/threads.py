"""Torch threads of workers side by side: wall time per worker of one study on this host.

Three settings, each with a fresh results folder and its own journal study
(``bench-threads-<k>``), all probing one shared trained checkpoint:

* (a) one lone worker with ``--threads 1``;
* (b) two workers side by side with default settings (no thread variables either);
* (c) two workers side by side with ``--threads 1``.

In (b) and (c) the two workers fill one study to ``--trials`` together. The table gives
each worker's wall seconds and its ratio to (a); with spare cores a ratio near 0.5 is
perfect sharing, and a ratio far above 1 means the workers' threads fight over the CPUs.
Where ``dse search`` has no ``--threads`` option, ``--threads 1`` is replaced by
``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1`` in the worker's environment (torch reads them when
it starts) and the table says so.

Run: python bench/threads.py [--trials 30]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DSE = [sys.executable, "-c", "import cli; cli.main()"]  # this tree's dse, run from ROOT
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Setting:
    """One row group of the table: how many workers and whether threads are pinned to 1."""

    label: str
    workers: int
    one_thread: bool


SETTINGS = (Setting("(a) 1 worker, --threads 1", 1, True),
            Setting("(b) 2 workers, default", 2, False),
            Setting("(c) 2 workers, --threads 1", 2, True))


def has_threads_option() -> bool:
    """True if ``dse search --help`` lists ``--threads``."""
    help_text = subprocess.run([*DSE, "search", "--help"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout
    return "--threads" in help_text


def train_checkpoint(shared: Path) -> Path:
    """Train (or find cached) the default baseline under ``shared``; its checkpoint file."""
    subprocess.run([*DSE, "train", "--results-dir", str(shared)], cwd=ROOT, check=True,
                   capture_output=True)
    return next((shared / "checkpoints").glob("*.pt"))


def run_setting(index: int, setting: Setting, trials: int, checkpoint: Path,
                threads_option: bool) -> list[float]:
    """Start the setting's workers together; wall seconds of each, in worker order."""
    results = Path(tempfile.mkdtemp(prefix=f"dse-bench-threads-{index}-"))
    command = [*DSE, "search", "--objectives", "accuracy,latency,energy",
               "--trials", str(trials), "--study", f"bench-threads-{index}",
               "--storage", f"journal:{results / 'j.log'}", "--results-dir", str(results),
               "--sampler", "random", "--checkpoint", str(checkpoint)]
    # Default settings mean no thread variables inherited from the caller either.
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if setting.one_thread:
        if threads_option:
            command += ["--threads", "1"]
        else:
            env.update({name: "1" for name in THREAD_VARIABLES})
    wall_s = [0.0] * setting.workers
    failures: list[str] = []

    def wait(worker: int, process: subprocess.Popen[str], start_s: float) -> None:
        _, stderr = process.communicate()
        wall_s[worker] = time.perf_counter() - start_s
        if process.returncode != 0:
            last = stderr.strip().splitlines()[-1:] or ["(no message)"]
            failures.append(f"worker {worker} failed: {last[0]}")

    start_s = time.perf_counter()
    processes = [subprocess.Popen([*command, "--worker", str(worker)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
                 for worker in range(setting.workers)]
    # One waiting thread per worker, so each worker's own end time is taken.
    waiters = [threading.Thread(target=wait, args=(worker, process, start_s))
               for worker, process in enumerate(processes)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    if failures:
        raise SystemExit("; ".join(failures))
    return wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30,
                        help="Trials per study (the two workers of (b) and (c) share them).")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    threads_option = has_threads_option()
    shared = Path(tempfile.mkdtemp(prefix="dse-bench-threads-shared-"))
    checkpoint = train_checkpoint(shared)
    rows: list[tuple[str, int, float]] = []
    for index, setting in enumerate(SETTINGS):
        wall_s = run_setting(index, setting, args.trials, checkpoint, threads_option)
        rows += [(setting.label, worker, seconds) for worker, seconds in enumerate(wall_s)]
        print(f"{setting.label}: " + ", ".join(f"{s:.1f} s" for s in wall_s), flush=True)
    lone_s = rows[0][2]
    print(f"\n{args.trials} trials per study, {os.cpu_count()} CPUs; "
          + ("--threads passed to dse search" if threads_option else
             "dse search has no --threads: 1 thread set through OMP/MKL_NUM_THREADS"))
    print(f"{'setting':<28}{'worker':>7}{'wall s':>9}{'vs (a)':>9}")
    for label, worker, seconds in rows:
        print(f"{label:<28}{worker:>7}{seconds:>9.1f}{seconds / lone_s:>8.2f}x")


if __name__ == "__main__":
    main()
