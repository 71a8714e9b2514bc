"""Where the frontier engine's additive accuracy model breaks, and which correction helps.

The frontier engine (``--engine frontier``) predicts a candidate's accuracy drop as the sum
of each layer's drop measured alone (``dse.engines.frontier``). This measures, on ResNet8
with digits (weights resident or streamed) or the CIFAR-10 subset in ../shared/data:

1. **Its characterisation**, as the engine probes it (each searchable layer alone at the
   default fractions; the DRAM points when a tensor is in DRAM).
2. **Every pair** of searchable layers all-analog together, and (when a tensor is in DRAM)
   every layer all-analog at a characterised DRAM point: the *interaction* of a
   pair is its measured drop minus the sum of its parts' (pp). The DRAM point is the
   characterised one of the largest BER that costs less than ``SATURATED_PP`` alone (a
   broken network has nothing left to interact with). Its noise is that of three
   probes (from the repeats below); an interaction counts as real when it lies outside
   +-2.6 of its standard errors (|z| > 2.6, the number of pairs taken into account by a
   Bonferroni bound at 5 % for about 40 pairs is z = 3.2; both are printed).
3. **Held-out candidates**: ``--candidates`` random splits (a random number of layers, each
   at a random analog count of its grid; at a random DRAM point of the grid when a tensor
   is in DRAM), each measured twice with independent probe seeds (the second: the noise).

Each correction of the additive model then predicts the held-out candidates' drops
(leave-one-out where it is fitted to them):

* ``additive``: the characterisation alone;
* ``+ pairs``: plus each measured pair's interaction, scaled by the product of the two
  layers' analog fractions (what the pairs' probes cost is printed);
* ``calibration``: a + b x additive, fitted to the other candidates;
* ``per-layer``: the engine's correction (ridge, one term per layer in its analog
  fraction, ``fit_model``) fitted to the other candidates;
* ``+ pairs, per-layer``: both.

Printed: each's mean absolute error (pp) and Spearman's rho against the first measurement,
with 95 % bootstrap intervals over the candidates and each's paired difference from the
additive model; the noise ceiling (the second measurement as the predictor of the first).

``--studies PATH ...`` instead reads finished frontier studies (``bench/engines.py``'s
results, each a folder with its ``study.db``) and compares, on every verified point of a
second or later round, the drop the engine predicted (its per-layer correction fitted to
the earlier rounds) with the characterisation's additive model alone and with a
calibration fitted to the earlier rounds: the correction's worth where the engine uses it.

Run: python bench/frontier_model.py [--only digits|cifar10] [--weights resident|streamed]
     [--candidates 40] [--threads 1] [--results-dir bench-results] [--seed 0]
     python bench/frontier_model.py --studies bench-results/digits/frontier-s*/engines-*
     [--only digits|cifar10] [--weights resident|streamed]
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from dse.accuracy.abilities import measure_many
from dse.accuracy.stats import wilson
from dse.commands.search import prepare
from dse.config import SearchConfig, default_settings
from dse.engines.frontier import (
    characterisation,
    fit_model,
    in_dram,
    measured_drop_pp,
    point_bers,
    prediction_half_pp,
    split_grid,
)
from dse.evaluate import finish_evaluation, plan_evaluation
from dse.results.tables import spearman_rho as spearman
from dse.space import Candidate, at_point
from dse.threads import apply_threads

CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
SATURATED_PP = 50.0   # a DRAM point that costs more has nothing left to interact with
Z_REAL = 2.6          # |interaction| / its standard error above this: counted as real
BOOTSTRAP = 2000


def prepared_for(args, seed: int):
    from engines import streamed_preset  # bench/engines.py, beside this file
    defaults = default_settings()
    data_dir = str(CIFAR_DIR) if args.only == "cifar10" else None
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    hw = (defaults["hw"] if args.weights == "resident"
          else streamed_preset(Path(args.results_dir)))
    config = SearchConfig.from_options(
        network="resnet8", dataset=args.only, data_dir=data_dir, seed=seed,
        threads=args.threads, hw=hw, results_dir=args.results_dir, device=args.device,
        study=f"frontier-model-{args.only}-{args.weights}-s{seed}")
    return prepare(config)


def measure(prepared, candidates: list[Candidate]) -> np.ndarray:
    """Each candidate's paired drop (pp), probed as one batch."""
    problem, accuracy = prepared.problem, prepared.accuracy
    planned = [plan_evaluation(c, problem) for c in candidates]
    results = measure_many(accuracy.estimator, [p.probe_candidate() for p in planned])
    return np.array([measured_drop_pp(finish_evaluation(p, problem, accuracy, r).metrics,
                                      accuracy.baseline_accuracy)
                     for p, r in zip(planned, results)])


def random_candidates(problem, count: int, rng: np.random.Generator,
                      points: list) -> list[Candidate]:
    grid = split_grid(problem.space)
    searchable = [layer for layer, options in enumerate(grid) if len(options) > 1]
    found = []
    for _ in range(count):
        n_analog = np.zeros(problem.table.n_layers, dtype=np.int64)
        k = int(rng.integers(1, len(searchable) + 1))
        for layer in rng.choice(searchable, size=k, replace=False):
            n_analog[layer] = int(rng.choice(grid[layer][1:]))
        point = points[int(rng.integers(len(points)))] if points else None
        found.append(at_point(problem.space, n_analog, point))
    return found


def fractions_of(problem, candidate: Candidate) -> np.ndarray:
    return np.asarray(candidate.n_analog, float) / problem.table.cout.astype(float)


def bootstrap(values_fn, n: int, rng: np.random.Generator) -> tuple[float, float]:
    draws = [values_fn(rng.integers(0, n, n)) for _ in range(BOOTSTRAP)]
    draws = [d for d in draws if np.isfinite(d)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["digits", "cifar10"], default="digits")
    parser.add_argument("--weights", choices=["resident", "streamed"], default="resident")
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write every measurement here")
    parser.add_argument("--studies", nargs="+", default=None, metavar="FOLDER",
                        help="compare the corrections on these finished frontier studies")
    args = parser.parse_args()
    apply_threads(args.threads)
    if args.studies:
        rounds_report(args)
        return
    start = time.perf_counter()
    first, second = prepared_for(args, args.seed), prepared_for(args, args.seed + 1000)
    problem = first.problem
    names = list(problem.table.name)
    grid = split_grid(problem.space)
    searchable = [layer for layer, options in enumerate(grid) if len(options) > 1]
    bers = point_bers(problem)
    probes = characterisation(problem, (0.5, 1.0), bers)
    char_drops = measure(first, [p.candidate for p in probes])
    records = [(p.info, p.candidate, d) for p, d in zip(probes, char_drops)]
    additive, _ = fit_model(problem, records, bers)
    working = [(p.info["vdd_v"], p.info["trcd_ns"]) for p, d in zip(probes, char_drops)
               if p.info["role"] == "dram" and d < SATURATED_PP]
    worst = max(working, key=lambda point: bers[point]) if working else None

    full = {layer: int(grid[layer][-1]) for layer in searchable}
    pairs = list(itertools.combinations(searchable, 2))
    pair_candidates = []
    for i, j in pairs:
        n_analog = np.zeros(problem.table.n_layers, dtype=np.int64)
        n_analog[[i, j]] = [full[i], full[j]]
        pair_candidates.append(at_point(problem.space, n_analog, None))
    with_dram = []
    if worst is not None and in_dram(problem):
        for layer in searchable:
            n_analog = np.zeros(problem.table.n_layers, dtype=np.int64)
            n_analog[layer] = full[layer]
            with_dram.append(at_point(problem.space, n_analog, worst))
    joint = measure(first, pair_candidates + with_dram)
    pair_drops, dram_layer_drops = joint[:len(pairs)], joint[len(pairs):]

    rng = np.random.default_rng(args.seed)
    held = random_candidates(problem, args.candidates, rng,
                             [p for p in bers if p is not None and bers[p] > 0]
                             if in_dram(problem) else [])
    measured = measure(first, held)
    repeat = measure(second, held)
    noise_sd = float(np.std(measured - repeat, ddof=1) / np.sqrt(2))

    zeros = np.zeros(problem.table.n_layers, dtype=np.int64)

    def single(layer: int) -> float:
        n_analog = zeros.copy()
        n_analog[layer] = full[layer]
        return additive.predicted_pp(problem, n_analog, None)

    interactions = {(i, j): float(pair_drops[k] - single(i) - single(j))
                    for k, (i, j) in enumerate(pairs)}
    dram_interactions = {layer: float(dram_layer_drops[k] - single(layer)
                                      - additive.dram_drop_pp(worst))
                         for k, layer in enumerate(searchable)} if with_dram else {}
    se = noise_sd * np.sqrt(3)

    def with_pairs(candidate: Candidate, model=additive) -> float:
        f = fractions_of(problem, candidate)
        extra = sum(value * f[i] * f[j] for (i, j), value in interactions.items())
        point = (None if candidate.vdd_v is None
                 else (float(candidate.vdd_v[0]), float(candidate.trcd_ns[0])))
        return model.predicted_pp(problem, candidate.n_analog, point) + extra

    def point_of(candidate: Candidate):
        return (None if candidate.vdd_v is None
                else (float(candidate.vdd_v[0]), float(candidate.trcd_ns[0])))

    predictions: dict[str, np.ndarray] = {
        "additive": np.array([additive.predicted_pp(problem, c.n_analog, point_of(c))
                              for c in held])}
    predictions["+ pairs"] = np.array([with_pairs(c) for c in held])
    calibrated, per_layer, both = [], [], []
    for k in range(len(held)):
        others = [m for m in range(len(held)) if m != k]
        x = predictions["additive"][others]
        slope, intercept = np.polyfit(x, measured[others], 1)
        calibrated.append(intercept + slope * predictions["additive"][k])
        verified = [({"role": "verify"}, held[m], float(measured[m])) for m in others]
        model, _ = fit_model(problem, records + verified, bers)
        per_layer.append(model.predicted_pp(problem, held[k].n_analog, point_of(held[k])))
        # per-layer correction fitted to what the pairs leave
        residual = [({"role": "verify"}, held[m],
                     float(measured[m] - (with_pairs(held[m]) - predictions["additive"][m])))
                    for m in others]
        model_b, _ = fit_model(problem, records + residual, bers)
        both.append(with_pairs(held[k], model_b))
    predictions["calibration"] = np.array(calibrated)
    predictions["per-layer"] = np.array(per_layer)
    predictions["+ pairs, per-layer"] = np.array(both)
    predictions["noise ceiling (repeat)"] = repeat

    boot = np.random.default_rng(12345)
    n = len(held)
    print(f"\nResNet8 on {args.only}, weights {args.weights}; {len(searchable)} searchable "
          f"layers; characterisation {len(probes)} probes, pairs {len(pairs)}, layer x DRAM "
          f"{len(with_dram)}, held-out candidates {n} (x2); {time.perf_counter() - start:.0f} s")
    print(f"probe noise: sd of one measured drop {noise_sd:.2f} pp (from the repeats), about "
          f"a shift of {float(np.mean(measured - repeat)):+.2f} pp that every drop of one "
          f"seed shares (its baseline's own noise: it moves a seed's drops alike, so ranks "
          f"keep it, absolute drops and the accuracy limit do not); an interaction's "
          f"standard error {se:.2f} pp (without that shift)")
    base_error = np.abs(predictions["additive"] - measured)
    print("\n| prediction | mean abs error, pp [95 %] | minus additive's, pp [95 %] | "
          "Spearman rho [95 %] | extra probes |")
    print("|---|---|---|---|---|")
    extra = {"+ pairs": len(pairs), "+ pairs, per-layer": len(pairs)}
    for name, predicted in predictions.items():
        error = np.abs(predicted - measured)
        mae_low, mae_high = bootstrap(lambda idx: error[idx].mean(), n, boot)
        d_low, d_high = bootstrap(lambda idx: (error[idx] - base_error[idx]).mean(), n, boot)
        rho = spearman(predicted, measured)
        r_low, r_high = bootstrap(lambda idx: spearman(predicted[idx], measured[idx]), n, boot)
        difference = ("" if name == "additive"
                      else f"{(error - base_error).mean():+.2f} [{d_low:+.2f}, {d_high:+.2f}]")
        cost = ("verified points only" if name in ("calibration", "per-layer")
                else str(extra.get(name, 0)) if name != "noise ceiling (repeat)" else "")
        print(f"| {name} | {error.mean():.2f} [{mae_low:.2f}, {mae_high:.2f}] | {difference} | "
              f"{rho:.3f} [{r_low:.3f}, {r_high:.3f}] | {cost} |")
    order = sorted(interactions, key=lambda key: -abs(interactions[key]))
    real = [key for key in order if abs(interactions[key]) > Z_REAL * se]
    print(f"\npairs beyond {Z_REAL} standard errors ({Z_REAL * se:.2f} pp): {len(real)} of "
          f"{len(pairs)}; the largest five (interaction pp = pair - sum of singles):")
    for i, j in order[:5]:
        print(f"  {names[i]} + {names[j]}: {interactions[(i, j)]:+.2f} "
              f"(pair {pair_drops[pairs.index((i, j))]:.2f}, singles {single(i):.2f} + "
              f"{single(j):.2f})")
    if dram_interactions:
        ordered = sorted(dram_interactions, key=lambda key: -abs(dram_interactions[key]))
        beyond = [k for k in ordered if abs(dram_interactions[k]) > Z_REAL * se]
        print(f"layer x DRAM at {worst[0]:g} V / {worst[1]:g} ns (DRAM alone "
              f"{additive.dram_drop_pp(worst):.2f} pp): {len(beyond)} of "
              f"{len(dram_interactions)} beyond; largest: " + ", ".join(
                  f"{names[k]} {dram_interactions[k]:+.2f}" for k in ordered[:3]))
    residual = measured - predictions["additive"]
    rho_size = spearman(predictions["additive"], residual)
    print(f"additive residual (measured - predicted) against the predicted drop: Spearman "
          f"{rho_size:+.2f}; mean residual {residual.mean():+.2f} pp; among candidates "
          f"predicted within 2 pp: {residual[predictions['additive'] <= 2].mean():+.2f} pp "
          f"({int((predictions['additive'] <= 2).sum())})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "names": names, "searchable": searchable, "noise_sd_pp": noise_sd,
            "characterisation": [[p.info, float(d)] for p, d in zip(probes, char_drops)],
            "pairs": [[names[i], names[j], float(d)] for (i, j), d in zip(pairs, pair_drops)],
            "layer_dram": [[names[k], float(d)] for k, d in zip(searchable, dram_layer_drops)],
            "held_out": [{"n_analog": list(c.n_analog), "point": point_of(c),
                          "measured": float(a), "repeat": float(b),
                          **{name: float(p[k]) for name, p in predictions.items()}}
                         for k, (c, a, b) in enumerate(zip(held, measured, repeat))],
        }, indent=1))


def rounds_report(args) -> None:
    """The correction's worth on the engine's own verified points (``--studies``)."""
    import types

    import optuna
    from engines import streamed_preset

    from dse.engines.frontier import _records
    from dse.problem import build_problem
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    defaults = default_settings()
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    hw = (defaults["hw"] if args.weights == "resident"
          else streamed_preset(Path(args.results_dir)))
    problem = build_problem(network="resnet8", dataset=args.only, hw=hw)
    bers = point_bers(problem)
    unknown = types.SimpleNamespace(baseline_accuracy=float("nan"))  # drops are paired
    rows = []  # (measured, engine's prediction, raw additive, clipped, calibrated clipped)
    first_round = []  # every verified point: measured, additive, clipped at 0, round
    covered = []  # every verified point's interval: its method, whether it held, width
    windows: dict[str, list[tuple[bool, float]]] = {}  # conformal from which residuals
    for folder in args.studies:
        path = Path(folder) / "study.db"
        storage = f"sqlite:///{path}"
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        records = _records(study, problem, unknown)
        characterised = [r for r in records if r[0].get("role") in ("layer", "dram")]
        additive, _ = fit_model(problem, characterised, bers, clip=False)
        clipped, _ = fit_model(problem, characterised, bers)
        verified = [r for r in records if r[0].get("role") == "verify"
                    and np.isfinite(r[2])]
        residuals = [drop - float(info["predicted_drop_pp"]) for info, _, drop in verified]
        for k, (info, candidate, drop) in enumerate(verified):
            round_number = int(info["round"])
            point = (None if candidate.vdd_v is None
                     else (float(candidate.vdd_v[0]), float(candidate.trcd_ns[0])))
            base = additive.predicted_pp(problem, candidate.n_analog, point)
            clip = clipped.predicted_pp(problem, candidate.n_analog, point)
            first_round.append((drop, base, clip, round_number))
            if "predicted_low_pp" in info:
                covered.append((info["interval"].split(" ")[0],
                                info["predicted_low_pp"] <= drop <= info["predicted_high_pp"],
                                info["predicted_high_pp"] - info["predicted_low_pp"]))
            before = [r for (i, _, _), r in zip(verified[:k], residuals[:k])
                      if int(i["round"]) < round_number]
            for name, chosen in (("all earlier", before), ("the last 40", before[-40:]),
                                 ("the last 19", before[-19:])):
                half = prediction_half_pp(chosen)
                if np.isfinite(half) and len(before) >= 40:
                    windows.setdefault(name, []).append((abs(residuals[k]) <= half, 2 * half))
            if round_number < 2:
                continue
            earlier = [(clipped.predicted_pp(problem, c.n_analog,
                                             None if c.vdd_v is None
                                             else (float(c.vdd_v[0]), float(c.trcd_ns[0]))), d)
                       for i, c, d in verified if int(i["round"]) < round_number]
            x, y = np.array(earlier).T if len(earlier) > 1 else (np.zeros(0), np.zeros(0))
            slope, intercept = (np.polyfit(x, y, 1) if len(x) > 1 and np.ptp(x) > 0
                                else (1.0, 0.0))
            rows.append((drop, float(info["predicted_drop_pp"]), base, clip,
                         intercept + slope * clip))
    if not rows:
        raise SystemExit("no verified point of a second or later round in these studies")
    table = np.array(rows, dtype=float)
    measured = table[:, 0]
    boot = np.random.default_rng(12345)
    n = len(rows)
    base_error = np.abs(table[:, 2] - measured)
    print(f"\n{len(args.studies)} studies, {n} verified points of rounds >= 2 "
          f"(ResNet8/{args.only}, weights {args.weights}); measured drop mean "
          f"{measured.mean():+.2f} pp")
    print("| prediction | mean abs error, pp [95 %] | minus the raw sum's [95 %] | Spearman "
          "rho | mean signed error, pp |")
    print("|---|---|---|---|---|")
    for column, name in ((2, "the characterisation's sum, raw"),
                         (3, "the same, a measured gain counted as 0"),
                         (4, "that, calibrated a + b x on the earlier rounds"),
                         (1, "the engine's: that, per-layer correction on the earlier rounds")):
        error = np.abs(table[:, column] - measured)
        low, high = bootstrap(lambda idx: error[idx].mean(), n, boot)
        d_low, d_high = bootstrap(lambda idx: (error[idx] - base_error[idx]).mean(), n, boot)
        difference = ("" if column == 2 else
                      f"{(error - base_error).mean():+.2f} [{d_low:+.2f}, {d_high:+.2f}]")
        print(f"| {name} | {error.mean():.2f} [{low:.2f}, {high:.2f}] | {difference} | "
              f"{spearman(table[:, column], measured):.3f} | "
              f"{(table[:, column] - measured).mean():+.2f} |")
    for name, found in windows.items():
        held = [f[0] for f in found]
        low, high = wilson(sum(held), len(held))
        print(f"conformal 95 % intervals from {name} residuals (points with >= 40 before): "
              f"{sum(held)} of {len(held)} held, {sum(held) / len(held):.1%} [{low:.1%}, "
              f"{high:.1%}]; mean width {np.mean([f[1] for f in found]):.2f} pp")
    for method in sorted({c[0] for c in covered}):
        held = [c[1] for c in covered if c[0] == method]
        low, high = wilson(sum(held), len(held))
        print(f"95 % prediction intervals ({method}): {sum(held)} of {len(held)} held, "
              f"coverage {sum(held) / len(held):.1%} [{low:.1%}, {high:.1%}] (Wilson 95 %); "
              f"mean width {np.mean([c[2] for c in covered if c[0] == method]):.2f} pp")
    every = np.array(first_round, dtype=float)
    for label, chosen in (("round 1 (no correction yet)", every[:, 3] == 1),
                          ("every round", np.ones(len(every), dtype=bool))):
        part = every[chosen]
        if not len(part):
            continue
        print(f"{label}, {len(part)} points: additive (raw) mean abs error "
              f"{np.abs(part[:, 1] - part[:, 0]).mean():.2f} pp (signed "
              f"{(part[:, 1] - part[:, 0]).mean():+.2f}), with each layer's measured drop "
              f"clipped at 0 {np.abs(part[:, 2] - part[:, 0]).mean():.2f} pp (signed "
              f"{(part[:, 2] - part[:, 0]).mean():+.2f})")


if __name__ == "__main__":
    main()
