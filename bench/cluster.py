"""Cluster benchmark on this machine: workers sharing one PostgreSQL study.

* probe-bound trials (resnet8 on digits, the real probe; one torch thread per worker):
  trials per minute with 1 and with 2 workers;
* storage overhead per trial (cost-only objectives, random sampler, so neither the probe
  nor the sampler's model cost anything): wall time per trial minus the cost model's time,
  with 1 and 2 workers;
* workers sharing a node (resnet8 on digits, the real probe, journal files): a lone
  worker with ``--threads 1`` against two workers side by side with default settings, of
  one study and of two studies, each running ``--trials-per-worker`` trials (no
  confirmation: it is shared among a study's workers, so it would favour them); wall time per
  worker and its ratio to the lone worker's (1.0: the two share the node without slowing
  each other; the machine has as many cores as workers).

Needs the local PostgreSQL server (postgres@127.0.0.1:5432); each run gets a fresh database.
Run: python bench/cluster.py [--probe-trials 40] [--cost-trials 300] [--node-trials 30]
     (0 skips a kind)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import psycopg

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_database(admin) -> str:
    name = f"dse_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return name


def run_workers(count: int, url: str, results: Path, args: list[str], *,
                one_thread: bool = True, studies: bool = False) -> list[float]:
    """Start ``count`` workers together (``studies``: each its own study, in a journal of
    its own, instead of one study in ``url``); the wall seconds of each."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cli; cli.main()"
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if one_thread:
        args = [*args, "--threads", "1"]
    start = time.perf_counter()
    def where(i: int) -> list[str]:
        if studies:
            return ["--storage", f"journal:{results / f'journal-{i}.log'}", "--study",
                    f"bench-{i}"]
        return ["--storage", url, "--study", "bench", "--worker", str(i)]
    processes = [subprocess.Popen(
        [sys.executable, "-c", code, "search", *where(i), "--results-dir", str(results),
         *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(count)]
    walls = []
    for process in processes:
        _, stderr = process.communicate()
        walls.append(time.perf_counter() - start)
        if process.returncode != 0:
            raise SystemExit(f"worker failed: {stderr.strip().splitlines()[-1]}")
    return walls


def node_rows(trials: int, checkpoint: Path, scratch: Path) -> list[tuple[str, list[float]]]:
    """A lone one-thread worker, then two default workers side by side on one journal, then
    two default workers of two studies side by side."""
    rows = []
    for label, workers, one_thread, studies in (
            ("1 worker, --threads 1", 1, True, False),
            ("2 workers, default threads", 2, False, False),
            ("2 studies, default threads", 2, False, True)):
        results = scratch / f"node-{workers}-{'studies' if studies else 'study'}"
        walls = run_workers(workers, f"journal:{results / 'journal.log'}", results,
                            ["--checkpoint", str(checkpoint), "--trials", str(trials),
                             "--trials-per-worker", str(trials), "--no-confirm"],
                            one_thread=one_thread, studies=studies)
        rows.append((label, walls))
        print(f"same node, {label}: " + ", ".join(f"{w:.1f} s" for w in walls), flush=True)
    return rows


def study_times(url: str) -> tuple[float, float, int]:
    """Span from the first trial's start to the last one's end, mean cost time, count."""
    from dse.storage.storage import open_storage
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    span = (max(t.datetime_complete for t in done)
            - min(t.datetime_start for t in done)).total_seconds()
    cost = sum(t.user_attrs["metrics"]["cost_seconds"] for t in done) / len(done)
    return span, cost, len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe-trials", type=int, default=40)
    parser.add_argument("--cost-trials", type=int, default=300)
    parser.add_argument("--node-trials", type=int, default=30)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    admin = psycopg.connect(ADMIN_URL, autocommit=True)
    scratch = Path(tempfile.mkdtemp(prefix="dse-bench-"))
    checkpoint_dir = scratch / "shared"
    checkpoint = None
    if args.probe_trials or args.node_trials:
        subprocess.run([sys.executable, "-c", "import cli; cli.main()", "train",
                        "--results-dir", str(checkpoint_dir)], cwd=ROOT, check=True,
                       capture_output=True)
        checkpoint = next((checkpoint_dir / "checkpoints").glob("*.pt"))
    rows = []
    for kind, trials, extra in (
            ("probe-bound", args.probe_trials,
             ["--checkpoint", str(checkpoint), "--finetune-seeds", "1", "--error-seeds", "1",
              "--no-confirm"]),
            ("cost-only", args.cost_trials, ["--objectives", "latency,energy",
                                             "--sampler", "random"])):
        if trials == 0:  # 0 skips that kind
            continue
        for workers in (1, 2):
            name = fresh_database(admin)
            url = f"postgresql://postgres@127.0.0.1:5432/{name}"
            results = scratch / f"{kind}-{workers}"  # fresh probe cache every run
            try:
                run_workers(workers, url, results, ["--trials", str(trials), *extra])
                span, cost, done = study_times(url)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            rows.append((kind, workers, done, span, cost))
            print(f"{kind}, {workers} worker(s): {done} trials in {span:.1f} s", flush=True)
    print(f"\n{'trials':<12}{'workers':>8}{'trials/min':>12}{'speed-up':>10}"
          f"{'storage+bookkeeping ms/trial':>30}")
    for kind, workers, done, span, cost in rows:
        per_minute = 60 * done / span
        single = next(60 * d / s for k, w, d, s, _ in rows if k == kind and w == 1)
        overhead_ms = 1e3 * (span * workers / done - cost) if kind == "cost-only" else None
        print(f"{kind:<12}{workers:>8}{per_minute:>12.1f}{per_minute / single:>9.2f}x"
              + (f"{overhead_ms:>30.1f}" if overhead_ms is not None else f"{'':>30}"))
    if args.node_trials:
        assert checkpoint is not None
        node = node_rows(args.node_trials, checkpoint, scratch)
        lone = node[0][1][0]
        print(f"\nsame node ({os.cpu_count()} CPUs), {args.node_trials} trials per worker")
        print(f"{'setting':<30}{'wall s per worker':>20}{'vs lone 1-thread':>18}")
        for label, walls in node:
            print(f"{label:<30}{', '.join(f'{w:.1f}' for w in walls):>20}"
                  f"{', '.join(f'{w / lone:.2f}x' for w in walls):>18}")


if __name__ == "__main__":
    main()
