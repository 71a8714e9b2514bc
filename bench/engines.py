"""Engines head to head: which finds the better *confirmed* front for the same compute?

Workloads: ResNet8 on digits and, where the subset in ../shared/data is present, ResNet8
on CIFAR-10 (MLPerf Tiny's pair; one test image is 0.1 pp there, 0.37 pp on digits).
For each engine (optuna-tpe, optuna-nsga2, random, odimo, eden, odimo+eden) and search seed,
one ``dse search`` into its own study (objectives accuracy, latency, energy; DIANA with its
default LPDDR4-3200, whole device), confirmed on the test split at the end (the search's
own ``--confirm``). Reported per engine, mean and range over the seeds:

* the hypervolume of the confirmed test front: the front's points (chosen on validation)
  at their *test* accuracy, as losses (1 - test accuracy, latency / all-digital's,
  energy / all-digital's at nominal DRAM), reference point ``REFERENCE`` (recorded here);
* the compute each run used: training samples processed (probe fine-tunes, ODiMO's supernet
  epochs) and wall time;
* each paper's own metric from the study summary (ODiMO's best latency within the accuracy
  limit, EDEN's energy at the accuracy target), when confirmed.

Budgets are equalised in training samples: ``--budget-samples`` is converted to each
engine's knob (trials for the Optuna samplers; lambdas for odimo, each costing its supernet
epochs and one probe, and for odimo+eden, each costing that plus EDEN's characterisation;
for eden, the baseline splits in the engine's order while their characterisation fits, at
least one), and the samples actually used are printed next to the result, so an unequal
match shows. EDEN's cost per split is counted from the data in DRAM
(``eden_probes_per_split``: an upper bound, its bisection's probe count). Every run has its
own results folder and a cleared in-process cache (its own probes: a cache shared between
runs makes the later engines look cheaper; the first version of this benchmark had that
flaw) and all share one baseline
checkpoint, trained once under --results-dir. Each finished run appends its row to
``engines-s<seeds>.jsonl`` there (one file per process); a stopped benchmark resumes, and
``--report`` prints the table (and ``--plot``) from those files alone, so seeds can run as
separate processes.

``--weights streamed`` runs the same on a variant of the DIANA preset whose weights are read
from DRAM on every inference (``memory.weights_resident = false``, written next to the
results): a stand-in for a model too large for the 512 kB L2, and the case EDEN's method is
for, since there every layer's weights see the DRAM's errors. Each scenario keeps its own
rows (``scenario`` in the JSON lines).

Run: python bench/engines.py [--only digits|cifar10] [--seeds 3 | --seed-list 0,2]
     [--budget-samples 200000] [--results-dir bench-results] [--threads 1]
     [--weights resident|streamed] [--device cpu|cuda] [--probe-batch K] [--report]
     [--versus OTHER_RESULTS_DIR:ENGINE[,ENGINE...]] [--plot docs/engines_digits.svg]
     [--plot-samples docs/engines_cifar10_samples.svg]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import optuna

from dse.accuracy.defaults import DEFAULT_MAX_ACCURACY_DROP_PP
from dse.accuracy.probe_cache import clear_memory_cache
from dse.accuracy.verdicts import holm
from dse.commands.search import prepare, run_search
from dse.config import SearchConfig, default_settings, sha256_of
from dse.engines import engine_spec
from dse.engines.eden import DEFAULT_RETRAIN_EPOCHS
from dse.engines.frontier import DEFAULT_RETRAIN, FRONTIER_ATTR
from dse.engines.odimo import DEFAULT_DNAS_EPOCHS, DEFAULT_FINETUNE_EPOCHS, DEFAULT_LAMBDAS
from dse.pareto import hypervolume, pareto_mask
from dse.results.ledger import ODIMO_SEARCH_ATTR
from dse.threads import ThreadPolicy

CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
DEFAULTS = default_settings()
SAMPLER_VARIANTS = {"optuna-tpe": "tpe", "optuna-nsga2": "nsga2", "random": "random"}


def engine_variants() -> dict[str, tuple[str, dict[str, str]]]:
    """What is compared: each registered engine (``dse.engines``) by name, the Optuna
    engine once per sampler of ``SAMPLER_VARIANTS``; name -> (engine, its options by flag)."""
    from dse.engines import engine_specs
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for spec in engine_specs():
        if spec.name == DEFAULTS["engine"]:
            found.update({name: (spec.name, {"--sampler": sampler})
                          for name, sampler in SAMPLER_VARIANTS.items()})
        else:
            found[spec.name] = (spec.name, {})
    # the frontier without its retraining stage: what the stage adds, seed by seed
    found["frontier-rounds"] = ("frontier", {"--frontier-retrain": 0})  # as click reads it
    return found


ENGINES = engine_variants()
QUEUED = 8          # the baselines and their safe DRAM points, every study runs them first
REFERENCE = np.array([1.0, 1.5, 1.5])  # (1 - accuracy, latency / all-digital, energy / ...)
PAIRED_AGAINST = "optuna-tpe"  # the default engine: every other is compared seed by seed
ODIMO_AGAINST = "diana-heuristic"  # ODiMO's metric: against the SoC's own mapping rule
LAMBDA_GRID = DEFAULT_LAMBDAS  # ODiMO's own grid (dse.engines.odimo)


def probe_samples(config: SearchConfig, steps: int | None = None) -> int:
    """Training samples one probe processes: steps (the study's probe's, or ``steps``) x
    batch x fine-tunes."""
    from dse.accuracy.defaults import ProbeConfig
    steps = config.accuracy.probe_steps if steps is None else steps
    return steps * ProbeConfig.batch_size * config.accuracy.finetune_seeds


def settings_for(engine: str, budget: int, base: SearchConfig, train_images: int,
                 dnas_epochs: int = DEFAULT_DNAS_EPOCHS,
                 finetune_epochs: int = DEFAULT_FINETUNE_EPOCHS) -> dict:
    """The engine's knob for a budget of ``budget`` training samples: the study's trials,
    and for the ODiMO engines their ``--lambdas``, each costing its search and fine-tune
    epochs at most (the search may stop early) and one probe (every other engine, a
    registered one included, gets the trials that many probes pay for)."""
    per_probe = probe_samples(base)
    queued = QUEUED * per_probe
    if engine == "frontier":  # its retraining stage's epochs come out of the budget first:
        # as many retrainings (each with its trial's probe) as it holds, up to the default
        retraining = DEFAULT_RETRAIN_EPOCHS * train_images
        count = max(0, min(DEFAULT_RETRAIN, (budget - queued) // (retraining + per_probe)))
        return {"trials": QUEUED + max(0, (budget - queued - count * retraining) // per_probe),
                "--frontier-retrain": int(count)}
    if engine not in ("eden", "odimo", "odimo+eden"):
        return {"trials": QUEUED + max(0, (budget - queued) // per_probe)}
    per_split = {name: samples + per_probe  # retrain once, then the trial's probe
                 for name, samples in eden_samples_per_split(base, train_images).items()}
    if engine == "eden":  # the baseline splits, in order, while the budget holds (one at least)
        fitting: list[str] = []
        spent = queued
        for name, cost in per_split.items():
            if fitting and spent + cost > budget:
                break
            fitting.append(name)
            spent += cost
        return {"trials": QUEUED + len(fitting)}  # the engine maps them in this order
    per_lambda = ((dnas_epochs + finetune_epochs) * train_images + per_probe
                  + (max(per_split.values()) if engine == "odimo+eden" else 0))
    count = max(1, min(len(LAMBDA_GRID), (budget - queued) // per_lambda))
    # as many of ODiMO's lambdas as the budget pays for, spread over its grid (one: the
    # middle)
    chosen = (np.linspace(0, len(LAMBDA_GRID) - 1, count).round().astype(int) if count > 1
              else [len(LAMBDA_GRID) // 2])
    return {"trials": QUEUED + int(count),
            "--lambdas": ",".join(f"{LAMBDA_GRID[i]:.3g}" for i in chosen)}


def eden_samples_per_split(config: SearchConfig, train_images: int) -> dict[str, int]:
    """EDEN's retraining samples for each baseline split: its default epochs over the
    training split where data live in DRAM, none where nothing does (``dse.engines.eden``:
    it retrains once per split, then characterises without a fine-tune)."""
    from dse.engines.eden import DEFAULT_RETRAIN_EPOCHS, data_in_dram
    from dse.problem import build_problem
    from hw_models.mapping import HEURISTICS, resolve_split
    problem = build_problem(network=config.workload.network, dataset=config.workload.dataset,
                            hw=config.hardware.hw, dram=config.hardware.dram,
                            objectives=config.limits.objectives)
    counts = {}
    for name in HEURISTICS:
        n_analog, _ = resolve_split(name, problem.table, problem.soc)
        data = data_in_dram(problem, tuple(int(n) for n in n_analog))
        counts[name] = DEFAULT_RETRAIN_EPOCHS * train_images if data else 0
    return counts


def samples_used(study, config: SearchConfig) -> int:
    """Training samples a finished study's trials processed (probes plus ODiMO's search
    and EDEN's retraining, from their records)."""
    per_probe, total = probe_samples(config), 0
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        metrics = attrs.get("metrics", {})
        if metrics.get("probed") and not metrics.get("probe_cached"):
            total += per_probe
        total += attrs.get(ODIMO_SEARCH_ATTR, {}).get("samples", 0)
        # EDEN's retraining (its characterisation probes do not fine-tune: no samples)
        total += attrs.get("eden", {}).get("samples", 0)
        total += attrs.get(FRONTIER_ATTR, {}).get("samples", 0)  # the frontier's retraining
    return total


def confirmed_hypervolume(summary: dict) -> tuple[float, list[tuple[float, float, float]]]:
    """Hypervolume of the front at its test accuracy, normalised by all-digital."""
    volume, front, _ = confirmed_front(summary)
    return volume, front


def confirmed_front(summary: dict, limit_pp: float | None = None
                    ) -> tuple[float, list[tuple[float, float, float]], int]:
    """The hypervolume, the front's points as losses, and how many of them are the engine's
    own proposals (not the queued baselines or their safe DRAM points, which every study
    holds). With ``limit_pp``, of the front's points within that many pp of all-digital's
    test accuracy only (``within_limit``)."""
    bases = {row["baseline"]: row for row in summary.get("baselines", [])}
    reference = bases.get("all-digital")
    if reference is None:
        return math.nan, [], 0
    rows = [row for row in summary["front"] if row.get("test_accuracy") is not None]
    if limit_pp is not None:
        if reference.get("test_accuracy") is None:
            return math.nan, [], 0
        rows = [row for row in rows
                if within_limit(row["test_accuracy"], reference["test_accuracy"], limit_pp)]
    if not rows:
        return (0.0 if limit_pp is not None else math.nan), [], 0
    losses = np.array([(1 - row["test_accuracy"], row["latency_s"] / reference["latency_s"],
                        row["energy_j"] / reference["energy_j"]) for row in rows])
    own = np.array([not row.get("baseline") and not row.get("safe_dram_of")  # "" or None
                    for row in rows])
    mask = pareto_mask(losses, ["minimize"] * 3)
    front = losses[mask]
    inside = front[(front < REFERENCE).all(axis=1)]
    volume = hypervolume(inside, REFERENCE) if len(inside) else 0.0
    return volume, [tuple(p) for p in front], int(own[mask].sum())


def within_limit(test_accuracy: float, reference_test_accuracy: float,
                 limit_pp: float) -> bool:
    """Whether a confirmed point is within the accuracy limit on the test split: at most
    ``limit_pp`` below all-digital's test accuracy (the same test images). The search
    judged the limit on validation, where the front's points were chosen: among many
    probed near it, the lucky ones get through (and a retrained split passes on one
    measurement), so on fresh images some lie beyond it; their share of the hypervolume is
    what this takes out."""
    return (reference_test_accuracy - test_accuracy) * 100 <= limit_pp + 1e-9


def run_location(results_dir: str, dataset: str, scenario: str, engine: str, seed: int,
                 checkpoint_seed: int = 0) -> tuple[Path, str]:
    """A run's results folder and study name (its summary is ``folder / study``)."""
    scenario_folder = dataset if scenario == "resident" else f"{dataset}-{scenario}"
    if checkpoint_seed:
        scenario_folder += f"-ckpt{checkpoint_seed}"
    name = f"{engine.replace('+', '-')}-s{seed}"
    return Path(results_dir) / scenario_folder / name, f"engines-{scenario_folder}-{name}"


def network_of(dataset: str) -> str:
    """ResNet8 on every workload: on CIFAR-10 it is MLPerf Tiny's own pair, and the run
    fits this machine (a default study with confirmation took 12 min, README)."""
    return "resnet8"


def shared_checkpoint(dataset: str, data_dir: str | None, args) -> str:
    """The baseline checkpoint every run shares: dse's own cached one for
    ``--checkpoint-seed 0``, else one trained with that seed (same recipe), kept under
    ``--results-dir``."""
    from dse.accuracy.probe_estimator import DataRequest, obtain_checkpoint, train_config
    request = DataRequest(network=network_of(dataset), dataset=dataset, data_dir=data_dir,
                          results_dir=args.results_dir, epochs=args.epochs, device=args.device)
    if args.checkpoint_seed == 0:
        _, path, _ = obtain_checkpoint(request)
        return str(path)
    import dataclasses

    from networks.datasets import load_dataset
    from networks.train import save_checkpoint, train_baseline
    config = dataclasses.replace(train_config(request), seed=args.checkpoint_seed)
    path = (Path(args.results_dir) / "checkpoints"
            / f"{network_of(dataset)}-{dataset}-{config.key()}-seed{args.checkpoint_seed}.pt")
    if not path.is_file():
        checkpoint = train_baseline(network_of(dataset), load_dataset(dataset, data_dir),
                                    config, device=args.device if args.device != "auto"
                                    else "cpu")
        save_checkpoint(checkpoint, path)
    return str(path)


def streamed_preset(folder: Path) -> str:
    """The DIANA preset with its weights streamed from DRAM, written under ``folder``."""
    from hw_models.soc import PRESET_DIR
    text = (PRESET_DIR / "diana.toml").read_text(encoding="utf-8")
    block = '[memory.weights_resident]\nvalue = "auto"'
    if block not in text:
        raise SystemExit("bench/engines.py: diana.toml no longer has weights_resident = "
                         "\"auto\"; update streamed_preset")
    path = folder / "diana-weights-streamed.toml"
    wanted = text.replace(block, '[memory.weights_resident]\nvalue = false')
    if not path.is_file() or path.read_text(encoding="utf-8") != wanted:  # seeds running as
        # other processes read it: replace it whole, never rewrite it in place
        from dse.results.files import atomic_path
        with atomic_path(path) as temporary:
            temporary.write_text(wanted, encoding="utf-8")
    return str(path)


def run_one(engine: str, seed: int, dataset: str, data_dir: str | None, args,
            checkpoint: str) -> dict:
    folder, study = run_location(args.results_dir, dataset, args.weights, engine, seed,
                                 args.checkpoint_seed)
    base = SearchConfig.from_options(
        network=network_of(dataset), dataset=dataset, data_dir=data_dir, seed=seed,
        device=args.device, threads=args.threads,
        hw=(DEFAULTS["hw"] if args.weights == "resident"
            else streamed_preset(Path(args.results_dir))),
        results_dir=str(folder), checkpoint=checkpoint, probe_steps=args.probe_steps,
        confirm_steps=args.confirm_steps, epochs=args.epochs, study=study,
        probe_batch=args.probe_batch)
    train_images = _train_images(dataset, data_dir)
    knobs = settings_for(engine, args.budget_samples, base, train_images, args.dnas_epochs,
                         args.odimo_finetune_epochs)
    name, options = ENGINES[engine]
    spec = engine_spec(name)
    flags = {option.flag for option in spec.options()}
    if "--dnas-epochs" in flags:
        options = {**options, "--dnas-epochs": args.dnas_epochs,
                   "--odimo-finetune-epochs": args.odimo_finetune_epochs}
    options.update({key: value for key, value in knobs.items() if key.startswith("--")})
    config = base.replace(trials=knobs["trials"], engine=name,
                          engine_settings=spec.make_settings(options))
    clear_memory_cache()  # the process's probe cache: no run may use another's
    start = time.perf_counter()
    prepared = prepare(config)
    summary = run_search(prepared, threads=ThreadPolicy(args.threads, None)).to_json()
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=prepared.study_name, storage=prepared.storage_url)
    volume, front, own = confirmed_front(summary)
    limit = config.limits.max_accuracy_drop_pp
    within, kept, _ = (confirmed_front(summary, limit) if limit is not None
                       else (math.nan, [], 0))
    return {"engine": engine, "seed": seed, "hypervolume": volume, "front": front,
            "own_front_points": own, "limit_pp": limit,
            "hypervolume_within_limit": within, "within_limit_points": len(kept),
            "samples": samples_used(study, config), "seconds": seconds,
            "trials": len(study.trials), "knobs": knobs,
            "method_metrics": summary.get("method_metrics", [])}


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _all_rows(folder: Path) -> list[dict]:
    """Every finished run under ``folder``; rows from before scenarios are "resident"."""
    rows = [row for path in sorted(folder.glob("engines*.jsonl")) for row in _read_rows(path)]
    return [{"scenario": "resident", "checkpoint_seed": 0, **row} for row in rows]


def already_run(rows: list[dict], dataset: str, engine: str, seed: int,
                checkpoint_sha256: str) -> bool:
    """Whether a resumed benchmark has this run's row: the same dataset, engine and seed on the
    same baseline checkpoint (a row on another checkpoint, or one from before checkpoints were
    recorded, is another network's: the run is made again)."""
    return any((r["dataset"], r["engine"], r["seed"], r.get("checkpoint_sha256"))
               == (dataset, engine, seed, checkpoint_sha256) for r in rows)


def _own_points(rows: list[dict]) -> str:
    """Mean count of the engine's own proposals on its confirmed front, of the front's size."""
    known = [r for r in rows if "own_front_points" in r]
    if not known:
        return "n/a"
    return (f"{np.mean([r['own_front_points'] for r in known]):.1f} / "
            f"{np.mean([len(r['front']) for r in known]):.1f}")


def pairing(row: dict) -> tuple:
    """What makes two engines' runs a pair: the search seed and the baseline checkpoint
    (its SHA-256; None for rows from before it was kept). A checkpoint trained afresh,
    with another thread count or on another machine, is another network: on CIFAR-10 the
    92 %-analog split measured 8.4 pp down on one and 3.4 pp on the next, seed 0."""
    return row["seed"], row.get("checkpoint_sha256")


def _differences(rows: list[dict], reference: list[dict], key: str) -> list[float]:
    """Each run's ``key`` minus the reference run's at the same seed and checkpoint."""
    by_seed = {pairing(r): r.get(key, math.nan) for r in reference}
    return [r[key] - by_seed[pairing(r)] for r in rows
            if pairing(r) in by_seed and math.isfinite(r.get(key, math.nan))
            and math.isfinite(by_seed[pairing(r)])]


def _paired_differences(rows: list[dict], reference: list[dict]) -> str:
    """Each seed's hypervolume minus the reference engine's at the same seed (the same
    checkpoint, queued points and probe seeds), mean [min, max] and how many are above 0."""
    differences = _differences(rows, reference, "hypervolume")
    if not differences:
        return "n/a"
    return (f"{np.mean(differences):+.4f} [{min(differences):+.4f}, {max(differences):+.4f}]"
            f" ({sum(d > 0 for d in differences)}/{len(differences)} above 0)")


def sign_flip_p(differences: list[float], shift: float = 0.0) -> float:
    """Two-sided exact p-value of the sign-flip (paired permutation) test that the paired
    differences are symmetric about ``shift``: the share of the 2^n sign patterns whose mean
    is at least as far from 0 as the observed one (n <= 20)."""
    centred = np.asarray(differences, dtype=float) - shift
    n = len(centred)
    if n == 0 or n > 20:
        raise ValueError("sign_flip_p takes 1 to 20 differences")
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)  # (2^n, n) of +-1
    means = np.abs(signs @ centred) / n
    observed = abs(centred.mean())
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def sign_flip_interval(differences: list[float], level: float = 0.95
                       ) -> tuple[float, float]:
    """The shifts the sign-flip test does not reject at ``1 - level``: an exact interval
    for the centre of symmetric paired differences, dual to ``sign_flip_p``. With n seeds
    it can be no narrower than 2^(1-n) allows: n = 5 cannot reject at 5 % (smallest p
    0.0625), so its interval is the widest the data can give."""
    values = np.asarray(differences, dtype=float)
    spread = float(values.max() - values.min()) or 1e-9
    alpha = 1 - level

    def accepted(shift: float) -> bool:
        return sign_flip_p(list(values), shift) > alpha

    centre = float(values.mean())
    ends = []
    for direction in (-1.0, 1.0):
        inside, step = centre, spread
        outside = centre + direction * step
        for _ in range(60):  # grow until rejected (never, when 2^(1-n) > alpha)
            if not accepted(outside):
                break
            inside, outside = outside, outside + direction * step
            step *= 2
        else:
            ends.append(direction * math.inf)
            continue
        for _ in range(50):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        ends.append(inside)
    return ends[0], ends[1]


def paired_against_best(rows: list[dict], best: list[dict], key: str = "hypervolume"
                        ) -> str:
    """Each seed's hypervolume (``key``) minus the best engine's at the same seed: mean,
    the exact sign-flip 95 % interval and p-value, and how many are above 0."""
    differences = _differences(rows, best, key)
    if not differences:
        return "n/a"
    if not any(differences):
        return "the best itself"
    low, high = sign_flip_interval(differences)
    p_value = sign_flip_p(differences)
    return (f"{np.mean(differences):+.4f} [{low:+.4f}, {high:+.4f}] p {p_value:.3f}"
            f" ({sum(d > 0 for d in differences)}/{len(differences)} above 0)")


def versus_table(rows: list[dict], others: list[dict], datasets: list[str],
                 engines: list[str], other_engines: list[str], other_dir: str) -> list[str]:
    """Each engine here minus each engine of another run folder (another budget), seed by
    seed: the confirmed test hypervolume and its part within the limit on test, each with
    the exact sign-flip 95 % interval, its p-value and the p-value Holm-adjusted over every
    test of the table (two per pair of engines)."""
    cells, tests = [], []
    for dataset in datasets:
        for engine in engines:
            mine = [r for r in rows if (r["dataset"], r["engine"]) == (dataset, engine)]
            for other in other_engines:
                theirs = [r for r in others if (r["dataset"], r["engine"]) == (dataset, other)]
                columns = [_differences(mine, theirs, key)
                           for key in ("hypervolume", "hypervolume_within_limit")]
                if not columns[0]:
                    continue
                paired = {pairing(r) for r in theirs}
                ratio = (np.mean([r["samples"] for r in mine if pairing(r) in paired])
                         / np.mean([r["samples"] for r in theirs]))
                cells.append((dataset, engine, other, columns, ratio))
                tests += [sign_flip_p(column) for column in columns if column]
    adjusted = iter(holm(tests))
    lines = [f"| data | engine, here | minus this engine's in {other_dir}, same seed | "
             "hypervolume: mean [exact 95 % interval] p, Holm p (seeds above 0) | "
             "within the limit on test: the same | samples used, here / there |",
             "|" + "---|" * 6]
    for dataset, engine, other, columns, ratio in cells:
        texts = []
        for column in columns:
            if not column:
                texts.append("n/a")
                continue
            low, high = sign_flip_interval(column)
            texts.append(f"{np.mean(column):+.4f} [{low:+.4f}, {high:+.4f}] p "
                         f"{sign_flip_p(column):.3f}, Holm {next(adjusted):.3f} "
                         f"({sum(d > 0 for d in column)}/{len(column)})")
        lines.append(f"| {dataset} | {engine} | {other} | {texts[0]} | {texts[1]} | "
                     f"{ratio:.2f} |")
    return lines


def best_engine(rows: list[dict], engines: list[str], key: str) -> str | None:
    """The engine of the largest mean ``key`` over the seeds (and checkpoint) every engine
    with rows shares, so that a missing seed does not decide it; over each engine's own
    seeds where they share none."""
    ran = [e for e in engines if any(r["engine"] == e and math.isfinite(r.get(key, math.nan))
                                     for r in rows)]
    if not ran:
        return None
    shared = set.intersection(*({pairing(r) for r in rows if r["engine"] == e} for e in ran))
    means = {e: np.nanmean([r.get(key, math.nan) for r in rows if r["engine"] == e
                            and (not shared or pairing(r) in shared)]) for e in ran}
    return max(ran, key=lambda e: means[e])


def against_best(rows: list[dict], engines: list[str], best: str | None, key: str
                 ) -> dict[str, str]:
    """``paired_against_best`` for every engine but the best, each with its p-value
    Holm-adjusted over the engines compared (one verdict each)."""
    best_rows = [r for r in rows if r["engine"] == best]
    others = [e for e in engines if e != best and any(r["engine"] == e for r in rows)]
    tested = {e: _differences([r for r in rows if r["engine"] == e], best_rows, key)
              for e in others}
    tested = {e: d for e, d in tested.items() if d and any(d)}
    adjusted = dict(zip(tested, holm([sign_flip_p(d) for d in tested.values()])))
    return {e: paired_against_best([r for r in rows if r["engine"] == e], best_rows, key)
            + (f", Holm {adjusted[e]:.3f}" if e in adjusted else "") for e in others}


def _paper_metric(rows: list[dict], kind: str, metric: str, baseline: str | None) -> str:
    """Each paper's own metric, from the confirmed summary of each seed's study: the change
    in % (mean [min, max] over the seeds that have it) and how many seeds have one; a seed
    has none when no confirmed front point meets the paper's accuracy rule."""
    values = []
    for row in rows:
        found = [item["change_percent"] for item in row.get("method_metrics", [])
                 if isinstance(item, dict) and item.get("kind") == kind
                 and item.get("metric") == metric
                 and (baseline is None or item.get("baseline") == baseline)]
        if found:
            values.append(min(found))
    if not values:
        return "none"
    return (f"{np.mean(values):+.1f} % [{min(values):+.1f}, {max(values):+.1f}] "
            f"({len(values)}/{len(rows)} seeds)")


def _train_images(dataset: str, data_dir: str | None) -> int:
    from networks.datasets import load_dataset
    return len(load_dataset(dataset, data_dir).split("train").labels)


def _interval(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    return f"{np.mean(finite):.4f} [{min(finite):.4f}, {max(finite):.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe-batch", type=int, default=None, metavar="K",
                        help="fine-tunes the probe runs together (2: the Optuna samplers "
                             "propose one trial at a time, as before the batched probe) "
                             "[default: dse's]")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-list", default=None, help="these seeds instead of 0..seeds-1")
    parser.add_argument("--report", action="store_true",
                        help="print the table from engines.jsonl without running anything")
    parser.add_argument("--budget-samples", type=int, default=200_000)
    parser.add_argument("--dnas-epochs", type=int, default=DEFAULT_DNAS_EPOCHS,
                        help="ODiMO's search epochs [default: ODiMO's]; fewer is labelled")
    parser.add_argument("--odimo-finetune-epochs", type=int, default=DEFAULT_FINETUNE_EPOCHS,
                        help="ODiMO's fine-tune epochs [default: ODiMO's]; fewer is labelled")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="the baseline checkpoint every run shares, given (with --only): "
                             "one trained afresh, on another machine or with another thread "
                             "count, is another network, and only runs on one checkpoint "
                             "pair (bench/checkpoints holds the documented tables')")
    parser.add_argument("--checkpoint-seed", type=int, default=0,
                        help="the baseline checkpoint's training seed: another seed is "
                             "another checkpoint, whose runs are kept apart")
    parser.add_argument("--probe-steps", type=int, default=DEFAULTS["probe_steps"])
    parser.add_argument("--confirm-steps", type=int, default=None,
                        help="test-split confirmation steps [default: the search's, 10x]")
    parser.add_argument("--epochs", type=int, default=None, help="baseline training epochs")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--only", choices=["digits", "cifar10"], default=None)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--weights", choices=["resident", "streamed"], default="resident",
                        help="the preset's weight residency: resident (DIANA as shipped) or "
                             "streamed from DRAM every inference")
    parser.add_argument("--versus", default=None, metavar="DIR:ENGINE[,ENGINE...]",
                        help="also pair every engine here, seed by seed, with each ENGINE's "
                             "rows under another --results-dir DIR (another budget), on both "
                             "hypervolumes, Holm-adjusted over the table's tests")
    parser.add_argument("--plot", default=None, metavar="PATH.svg",
                        help="overlay of every engine's confirmed test fronts")
    parser.add_argument("--plot-samples", default=None, metavar="PATH.svg",
                        help="each run's confirmed test hypervolume (and its part within the "
                             "limit on test) against the training samples it spent, the "
                             "--versus rows beside")
    args = parser.parse_args()
    runs = [("digits", None)]
    if CIFAR_DIR.is_dir():
        runs.append(("cifar10", str(CIFAR_DIR)))
    runs = [run for run in runs if args.only in (None, run[0])]
    engines = [name for name in args.engines.split(",") if name]
    seeds = ([int(s) for s in args.seed_list.split(",")] if args.seed_list
             else list(range(args.seeds)))
    folder = Path(args.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"engines-{args.weights}-s{'-'.join(map(str, seeds))}.jsonl"  # a file
    # per process
    done = [row for row in _all_rows(folder) if row["scenario"] == args.weights
            and row["checkpoint_seed"] == args.checkpoint_seed]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.checkpoint is not None and (args.only is None or args.checkpoint_seed):
        raise SystemExit("bench/engines.py: --checkpoint is one dataset's: give --only, and "
                         "no --checkpoint-seed")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise SystemExit(f"bench/engines.py: --checkpoint {args.checkpoint}: no such file")
    for dataset, data_dir in runs if not args.report else []:
        checkpoint = args.checkpoint or shared_checkpoint(dataset, data_dir, args)
        checkpoint_sha256 = sha256_of(checkpoint)
        for seed in seeds:  # every engine's first seed first
            for engine in engines:
                if already_run(done, dataset, engine, seed, checkpoint_sha256):
                    continue
                row = {**run_one(engine, seed, dataset, data_dir, args, checkpoint),
                       "dataset": dataset, "scenario": args.weights,
                       "checkpoint_seed": args.checkpoint_seed,
                       "checkpoint_sha256": checkpoint_sha256}
                with log.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                done.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "front"}), flush=True)
    datasets = [dataset for dataset, _ in runs]
    rows = [r for r in _all_rows(folder) if r["dataset"] in datasets
            and r["engine"] in engines and r["scenario"] == args.weights
            and r["checkpoint_seed"] == args.checkpoint_seed]
    for r in rows:  # rows written before the count was kept: from their summaries
        folder, study = run_location(args.results_dir, r["dataset"], r["scenario"],
                                     r["engine"], r["seed"], r["checkpoint_seed"])
        path = folder / study / "summary.json"
        if "own_front_points" not in r and path.is_file():
            r["own_front_points"] = confirmed_front(json.loads(path.read_text()))[2]
        if "hypervolume_within_limit" not in r and path.is_file():  # rows from before it
            limit = (DEFAULT_MAX_ACCURACY_DROP_PP if r.get("limit_pp") is None
                     else r["limit_pp"])
            volume, front, _ = confirmed_front(json.loads(path.read_text()), limit)
            r.update(hypervolume_within_limit=volume, within_limit_points=len(front))
    counts = sorted({sum(1 for r in rows if (r["dataset"], r["engine"]) == key)
                     for key in {(r["dataset"], r["engine"]) for r in rows}})
    print(f"\nbudget {args.budget_samples:,} training samples per run; seeds per engine "
          f"{'/'.join(map(str, counts))}; "
          f"reference point {REFERENCE.tolist()} on (1 - test accuracy, latency and energy "
          f"over all-digital at nominal DRAM); weights {args.weights}; mean [min, max] over "
          "seeds")
    shas = [r.get("checkpoint_sha256") or "not recorded" for r in rows]
    print("baseline checkpoint (SHA-256; runs pair only on one): " + "; ".join(
        f"{sha[:16]} ({shas.count(sha)} runs)" for sha in dict.fromkeys(shas)))
    print(f"| data | engine | confirmed test hypervolume | minus {PAIRED_AGAINST}'s, same "
          "seed | ODiMO metric: compute latency / "
          f"energy vs {ODIMO_AGAINST} | EDEN metric: DRAM energy vs same mapping at nominal | "
          "own points / front | samples used | wall s | trials | minus the best engine's, "
          "same seed: mean [exact 95 % interval] p, Holm-adjusted over the engines |")
    print("|" + "---|" * 11)
    for dataset, _ in runs:
        best = best_engine([r for r in rows if r["dataset"] == dataset], engines,
                           "hypervolume")
        columns = against_best([r for r in rows if r["dataset"] == dataset], engines, best,
                               "hypervolume")
        for engine in engines:
            mine = [r for r in rows if r["dataset"] == dataset and r["engine"] == engine]
            if not mine:
                continue
            paired = _paired_differences(mine, [r for r in rows if r["dataset"] == dataset
                                                and r["engine"] == PAIRED_AGAINST])
            versus_best = columns.get(engine, "")
            print(f"| {dataset} | {engine} | {_interval([r['hypervolume'] for r in mine])} | "
                  f"{paired} | {_paper_metric(mine, 'odimo', 'compute_latency', ODIMO_AGAINST)} / "
                  f"{_paper_metric(mine, 'odimo', 'compute_energy', ODIMO_AGAINST)} | "
                  f"{_paper_metric(mine, 'eden', 'dram_energy', None)} | "
                  f"{_own_points(mine)} | "
                  f"{np.mean([r['samples'] for r in mine]):,.0f} | "
                  f"{np.mean([r['seconds'] for r in mine]):.0f} | "
                  f"{np.mean([r['trials'] for r in mine]):.0f} | "
                  f"{versus_best if engine != best else f'best ({best})'} |")
    within_limit_table(rows, runs, engines)
    others, other_dir = [], ""
    if args.versus:
        other_dir, _, listed = args.versus.partition(":")
        others = [r for r in _all_rows(Path(other_dir)) if r["engine"] in listed.split(",")
                  and r["scenario"] == args.weights
                  and r["checkpoint_seed"] == args.checkpoint_seed
                  and r["dataset"] in datasets]
        if not listed or not others:
            raise SystemExit(f"bench/engines.py: --versus {args.versus}: no {listed!r} "
                             f"rows in {other_dir}")
        print("\n" + "\n".join(versus_table(rows, others, [d for d, _ in runs], engines,
                                             listed.split(","), other_dir)))
    if args.plot_samples:
        samples_plot([(f"{r['engine']} ({Path(args.results_dir).name})", r) for r in rows]
                     + [(f"{r['engine']} ({Path(other_dir).name})", r) for r in others],
                     Path(args.plot_samples))
    if args.plot:
        overlay(rows, Path(args.plot))


def within_limit_table(rows: list[dict], runs: list, engines: list[str]) -> None:
    """The confirmed test hypervolume of each front's points within the accuracy limit on
    the test split (``within_limit``), against the best engine by it, seed by seed."""
    known = [r for r in rows if math.isfinite(r.get("hypervolume_within_limit", math.nan))]
    if not known:
        return
    print("\nwithin the accuracy limit on test: the same hypervolume of each front's points "
          "at most the limit below all-digital's test accuracy")
    print("| data | engine | hypervolume within the limit on test | points within / front | "
          "minus the best engine's, same seed: mean [exact 95 % interval] p, Holm-adjusted "
          "over the engines |")
    print("|" + "---|" * 5)
    for dataset, _ in runs:
        here = [r for r in known if r["dataset"] == dataset]
        best = best_engine(here, engines, "hypervolume_within_limit")
        if best is None:
            continue
        columns = against_best(here, engines, best, "hypervolume_within_limit")
        for engine in [e for e in engines if any(r["engine"] == e for r in here)]:
            mine = [r for r in known if (r["dataset"], r["engine"]) == (dataset, engine)]
            against = (f"best ({best})" if engine == best else columns[engine])
            print(f"| {dataset} | {engine} | "
                  f"{_interval([r['hypervolume_within_limit'] for r in mine])} | "
                  f"{np.mean([r['within_limit_points'] for r in mine]):.1f} / "
                  f"{np.mean([len(r['front']) for r in mine]):.1f} | {against} |")


def samples_plot(labelled: list[tuple[str, dict]], path: Path) -> None:
    """Each run's confirmed test hypervolume (left) and its part within the accuracy limit
    on test (right) against the training samples it spent, one marker per engine and folder
    (budget), each engine's mean as a larger outlined marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = ("o", "v", "<", "s", "^", "D", "P", "X")
    figure, panels = plt.subplots(1, 2, figsize=(10.5, 4.2), sharex=True, sharey=True)
    keys = ("hypervolume", "hypervolume_within_limit")
    titles = ("confirmed test hypervolume", "its part within the accuracy limit on test")
    for index, label in enumerate(dict.fromkeys(label for label, _ in labelled)):
        runs = [r for name, r in labelled if name == label]
        for axes, key in zip(panels, keys):
            points = np.array([(r["samples"], r.get(key, math.nan)) for r in runs], float)
            style = dict(marker=markers[index % len(markers)], color=f"C{index}")
            axes.scatter(points[:, 0], points[:, 1], s=22, alpha=0.6, **style,
                         label=f"{label}, {len(runs)} seeds" if key == keys[0] else None)
            if np.isfinite(points[:, 1]).any():  # rows from before the column have none
                axes.scatter(np.nanmean(points[:, 0]), np.nanmean(points[:, 1]), s=110,
                             edgecolors="black", linewidths=1.2, **style)
    for axes, title in zip(panels, titles):
        axes.set_xscale("log")
        axes.set_xlabel("training samples spent")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("hypervolume (outlined: the mean)")
    figure.legend(loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.16))
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def overlay(rows: list[dict], path: Path) -> None:
    """Energy against test accuracy of each engine's confirmed fronts (every seed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = ("o", "v", "<", "s", "^", "D", "P", "X")
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    for index, engine in enumerate(dict.fromkeys(r["engine"] for r in rows)):
        points = np.array([p for r in rows if r["engine"] == engine for p in r["front"]])
        if not len(points):
            continue
        axes.scatter(100 * (1 - points[:, 0]), points[:, 2], s=28, alpha=0.8,
                     marker=markers[index % len(markers)],
                     color=f"C{index}", label=engine)
    axes.set_xlabel("test accuracy (%)")
    axes.set_ylabel("energy / all-digital at nominal DRAM")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
