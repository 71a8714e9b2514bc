"""Plain-text tables for the terminal (the CLI prints what these return), each made from
the command's report (``reports.py``), as its ``--json`` is."""
from __future__ import annotations

import textwrap
from typing import Any, Callable, Sequence

import numpy as np

from dse.commands.reports import (
    ConfirmationReport,
    CostReport,
    DramCatalogue,
    DramPointReport,
    LayersReport,
    NetworkCatalogue,
    ProbeReport,
    RepairReport,
    ShowReport,
    StatusReport,
    StudyReport,
    StudySummary,
    ToleranceReport,
    TrainReport,
)

Column = tuple[str, str, Callable[[dict[str, Any]], Any]]  # (header, format spec, getter)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Right-aligned columns (left-aligned for strings) under a header line."""
    cells = [[format(get(row), spec) for _, spec, get in columns] for row in rows]
    headers = [header for header, _, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    text_columns = [bool(rows) and isinstance(get(rows[0]), str) for _, _, get in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if is_text else v.rjust(w)
                         for v, w, is_text in zip(values, widths, text_columns)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def networks_text(catalogue: NetworkCatalogue) -> str:
    return format_table(catalogue.to_json(), [
        ("network", "s", lambda r: r["network"]),
        ("dataset", "s", lambda r: r["dataset"]),
        ("input (C,H,W)", "s", lambda r: "x".join(map(str, r["input_shape"]))),
        ("classes", "d", lambda r: r["num_classes"]),
        ("params", ",d", lambda r: r["parameters"]),
        ("MACs", ",d", lambda r: r["macs"]),
        ("layers", "d", lambda r: r["layers"]),
        ("description", "s", lambda r: r["description"]),
    ])


def layers_text(report: LayersReport) -> str:
    header = (f"{report.network} on {report.dataset}: input "
              f"{'x'.join(map(str, report.input_shape))}, {report.num_classes} classes")
    table = format_table(report.layers, [
        ("layer", "s", lambda r: r["name"]),
        ("kind", "s", lambda r: r["kind"]),
        ("cin", "d", lambda r: r["cin"]),
        ("cout", "d", lambda r: r["cout"]),
        ("kernel", "s", lambda r: f"{r['kx']}x{r['ky']}"),
        ("stride", "d", lambda r: r["stride"]),
        ("groups", "d", lambda r: r["groups"]),
        ("out", "s", lambda r: f"{r['ox']}x{r['oy']}"),
        ("MACs", ",d", lambda r: r["macs"]),
        ("weights", ",d", lambda r: r["weights"]),
    ])
    macs = sum(r["macs"] for r in report.layers)
    weights = sum(r["weights"] for r in report.layers)
    return (f"{header}\n{table}\ntotal: {len(report.layers)} layers, {macs:,} MACs, "
            f"{weights:,} weights")


def cost_text(report: CostReport) -> str:
    dram = report.dram
    dram_text = "none (compute only)" if dram is None else (
        f"{dram['device']} vendor {dram['vendor']} (BER: {dram['ber_quantile']} over its "
        f"DIMMs), partitions {dram['layout']} ("
        + ", ".join(f"{p['name']} {p['vdd_v']:g} V / {p['trcd_ns']:g} ns"
                    for p in dram["partitions"])
        + ")" + ("" if dram["overlap"] else ", no overlap")
        + f"\nidle DRAM: {dram['idle_dram']} (memory.idle_dram; "
        + ("not used: this mapping has tensors in DRAM, which between transfers is in "
            "precharge power-down)" if dram["holds_tensor"]
           else "the DRAM holds no tensor of this mapping: idle throughout)"))
    header = (f"{report.network} on {report.dataset}, hw {report.hw}, "
              f"mapping {report.mapping}\nDRAM: {dram_text}")
    columns: list[Column] = [
        ("layer", "s", lambda r: r["name"]),
        ("kind", "s", lambda r: r["kind"]),
        ("cout", "d", lambda r: r["cout"]),
        ("n_dig", "d", lambda r: r["n_digital"]),
        ("n_ana", "d", lambda r: r["n_analog"]),
        ("digital_cycles", ",.2f", lambda r: r["digital_cycles"]),
        ("analog_cycles", ",.2f", lambda r: r["analog_cycles"]),
    ]
    if dram is not None:
        columns += [
            ("weights", "s", lambda r: "L2" if r["weights_resident"] else "DRAM"),
            ("working set", "s", lambda r: r["working_set"]),
            ("input", "s", lambda r: "DRAM" if r["input_in_dram"] else "on chip"),
            ("dram_kB", ",.1f", lambda r: r["dram_bytes"] / 1e3),
            ("dram_us", ",.2f", lambda r: r["dram_time_s"] * 1e6),
            ("w_ber", ".1e", lambda r: r["weight_ber"]),
            ("a_ber", ".1e", lambda r: r["activation_ber"]),
            ("dram_uj", ".4f", lambda r: r["dram_energy_j"] * 1e6),
        ]
    columns += [
        ("latency_cycles", ",.2f", lambda r: r["latency_cycles"]),
        ("energy_uj", ".4f", lambda r: r["energy_j"] * 1e6),
    ]
    total = report.total
    energy = f"energy {total['energy_j'] * 1e6:.4f} µJ"
    if dram is not None:
        energy += (f" = compute {total['compute_energy_j'] * 1e6:.4f} µJ"
                   f" + DRAM {total['dram_energy_j'] * 1e6:.4f} µJ")
    breakdown = total.get("dram_energy_breakdown_j") or {}
    parts = ""
    if breakdown and total["dram_energy_j"] > 0:
        parts = "DRAM energy by part: " + ", ".join(
            f"{DRAM_PART_LABELS.get(name, name)} {value * 1e6:.4f} µJ "
            f"({value / total['dram_energy_j']:.0%})" for name, value in breakdown.items()) + "\n"
    return (f"{header}\n{format_table(report.layers, columns)}\n"
            f"total: {total['latency_cycles']:,.2f} cycles = {total['latency_s'] * 1e3:.4f} ms "
            f"at {report.clock_hz / 1e6:g} MHz, {energy}\n{parts}"
            f"note: {report.note}")


DRAM_PART_LABELS = {"read_write_core": "read/write (array)", "read_write_io": "I/O",
                    "activation": "row activation", "active_standby": "active standby",
                    "powerdown": "power-down", "refresh": "refresh",
                    "self_refresh": "self-refresh"}


def dram_text(point: DramPointReport) -> str:
    quantile = point.ber_quantile
    return "\n".join([
        f"{point.device} (vendor {point.vendor} error curves, {quantile} over the "
        f"vendor's DIMMs; BER(VDD) {point.ber_transfer})",
        f"  VDD   {point.vdd_v:g} V   (nominal {point.vdd_nominal_v:g} V; usable from "
        f"{point.vdd_floor_v[quantile]:.4g} V for the {quantile})",
        f"  tRCD  {point.trcd_ns:g} ns  (nominal {point.trcd_nominal_ns:g} ns)",
        f"  usable VDD floor, vendor {point.vendor}: "
        + ", ".join(f"{q} {v:.4g}" for q, v in point.vdd_floor_v.items()) + " V "
        "(below: DIMMs stopped working or saturate)",
        f"  BER from VDD   {point.ber_vdd:.3e}  (Voltron DDR3L at "
        f"{point.vdd_reference_v:.4g} V, tested at tRCD {point.vdd_test_trcd_ns:.4g} ns: "
        f"{quantile} over {point.ber_vdd_dimms} DIMMs)",
        f"  BER from tRCD  {point.ber_trcd:.3e}  (added below {point.vdd_test_trcd_ns:.4g} "
        f"ns: DIVA-DRAM DDR3 at {point.trcd_reference_ns:.4g} ns, "
        f"{point.ber_trcd_measured:.3e}, {quantile} over {point.ber_trcd_dimms} DIMMs, "
        "less its value at the VDD test tRCD)",
        f"  BER combined   {point.ber:.3e}  (independent: 1 - (1 - b_V)(1 - b_t))",
        f"  energy scale (VDD-domain energy and power)  {point.energy_scale:.4f}",
        f"  row-miss latency  {point.row_miss_ns:.3f} ns",
        *_error_model_lines(point.trcd_error_model),
    ])


def _error_model_lines(fit: dict[str, Any] | None) -> list[str]:
    """The fitted spatial error model of ``dse dram`` (``hw_models.dram.trcd_error_model``)."""
    if fit is None:
        return ["  error model  no region fit named by the preset (ber.trcd_region_fit)"]
    eden = ("none of EDEN's: confined to part of the regions" if fit["eden_model"] is None
            else f"EDEN model {fit['eden_model']} (uniform over the 16 regions)")
    lines = [f"  error model of the tRCD errors (below {fit['applies_below_trcd_ns']:.4g} ns): "
             f"{eden}; fit by DIVA tRCD, vendor {fit['vendor']} ({fit['table']}):"]
    for point in fit["points"]:
        fraction = ("" if point["fraction_mle"] is None else
                    f", affected fraction {point['fraction_mle']:.2f}, "
                    f"LR {point['lr_statistic']:.3g}")
        lines.append(f"    {point['trcd_reference_ns']:g} ns (here {point['trcd_ns']:.4g} ns): "
                     f"{point['model']}{fraction} ({point['n_with_errors']} of "
                     f"{point['n_dimms']} DIMMs with errors, {point['n_uniform_rejected']} "
                     "reject uniform)"
                     + ("" if point["trcd_ns"] < fit["applies_below_trcd_ns"] - 1e-9
                        else "; not added from tRCD here"))
    return lines


def dram_devices_text(catalogue: DramCatalogue) -> str:
    rows = catalogue.to_json()
    footer = ("" if not rows else
              f"\nVDD min: the usable floor of the {rows[0]['ber_quantile']} BER (below it "
              "DIMMs stopped working or saturate); BER curves by default: vendor "
              f"{rows[0]['default_vendor']}, {rows[0]['default_ber_quantile']} over the "
              "vendor's DIMMs (--vendor, --ber-quantile mean|median|p90|max)")
    return format_table(rows, [
        ("device", "s", lambda r: r["device"]),
        ("VDD nom (V)", ".3g", lambda r: r["vdd_nominal_v"]),
        ("VDD min A/B/C (V)", "s",
         lambda r: "/".join(f"{v:.3f}" for v in r["vdd_min_v"].values())),
        ("tRCD nom (ns)", ".4g", lambda r: r["trcd_nominal_ns"]),
        ("tRCD min (ns)", ".4g", lambda r: r["trcd_min_ns"]),
        ("tRCD data from (ns)", ".4g", lambda r: r["trcd_lowest_characterised_ns"]),
        ("GB/s", ".3g", lambda r: r["bandwidth_bytes_per_s"] / 1e9),
        ("partitions of", "s", lambda r: f"{r['partition_units']} {r['partition_unit']}s"),
        ("BER(VDD)", "s", lambda r: r["ber_transfer"]),
        ("description", "s", lambda r: r["description"]),
    ]) + footer


def _pct_interval(row: dict[str, Any], name: str) -> str:
    """'97.40 [96.3, 98.5]' in %, '' when the value is unknown."""
    value = row.get(name)
    if value is None or not np.isfinite(value):
        return ""
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    bounds = ("" if low is None or high is None or not np.isfinite([low, high]).all()
              else f" [{100 * low:.1f}, {100 * high:.1f}]")
    return f"{100 * value:.2f}{bounds}"


def _dram_point(row: dict[str, Any]) -> str:
    """'0.85/9.125' (VDD V / tRCD ns), one per partition, '' without DRAM."""
    points = [f"{row[key]:g}/{row.get('trcd_ns' + key[len('vdd_v'):], float('nan')):g}"
              for key in row if key.split(":")[0] == "vdd_v" and row[key] is not None]
    return ", ".join(points)


def search_text(summary: StudyReport | ConfirmationReport) -> str:
    """The headline, the front as a table (accuracies with their intervals), the claims
    and notes, where the files are and the commands to run next."""
    rows = summary.front
    trials = ", ".join(f"{count} {state.lower()}" for state, count in summary.trials.items())
    lines = [f"study {summary.study}: {trials}", *headline_lines(summary), "",
             f"Pareto front ({len(rows)} point{'s' * (len(rows) != 1)}):",
             format_table(rows, front_columns(summary)) if rows
             else f"(empty: {summary.front_note or 'no feasible trial'})"]
    if summary.unusable_note:
        lines.append(f"note: {summary.unusable_note}")
    robust = summary.robust_front_size
    if rows and robust > len(rows):
        lines.append(f"{robust - len(rows)} more trials are within their accuracy interval of "
                     f"the front (is_pareto_robust in trials.csv): the front's order in "
                     f"accuracy is partly noise")
    agreement = summary.model_agreement
    if agreement:
        lines.append(model_agreement_line(agreement))
    shift = summary.validation_to_test_shift
    if shift:
        lines.append(f"validation to test: {shift['mean_pp']:+.2f} pp on average over "
                     f"{shift['points']} confirmed front points (from {shift['min_pp']:+.2f} "
                     f"to {shift['max_pp']:+.2f} pp)")
    if summary.claims:
        lines.append(f"claims ({CHANGE_WORDS}; {verdict_words(summary)}):"
                     if "accuracy" in summary.objectives else "claims:")
    lines += [f"  {item['text']}" for item in summary.claims]
    lines += [f"  {item['text']}" for item in summary.method_metrics or []]
    if summary.dram_notes:
        lines.append("the baselines at their lowest safe DRAM point (validation split):")
        lines += [f"  {note['text']}" for note in summary.dram_notes]
    lines.append(f"results: {summary.results_dir}  (storage {summary.storage})")
    if summary.report:
        lines.append(f"report: {summary.report}  (figures, tables, every front trial)")
    return "\n".join(lines + next_lines(summary))


CHANGE_WORDS = ("each point chosen on the validation split, its accuracy change on the test "
                "split, paired with the baseline, in percentage points, negative = worse")


def verdict_words(summary: StudySummary) -> str:
    """How the verdicts were reached: 'verdicts Holm-adjusted over 6 tests, equivalence
    within +-1 pp'."""
    margin = summary.equivalence_margin_pp
    return (f"verdicts Holm-adjusted over {summary.holm_tests or 0} tests, equivalence within "
            f"±{margin if margin is not None else 1:g} pp")


def headline_lines(summary: StudySummary) -> list[str]:
    """Each baseline's sentence, wrapped; why there is none when there is none."""
    sentences = [line["text"] for line in summary.headline]
    if not sentences:
        reason = summary.claims_note or summary.front_note
        return [f"no headline: {reason.removeprefix('no claim: ')}"] if reason else []
    wrapped = [textwrap.fill(text, width=100, subsequent_indent="  ") for text in sentences]
    if "accuracy" in summary.objectives:
        wrapped.append(textwrap.fill(f"({CHANGE_WORDS}; {verdict_words(summary)})",
                                     width=100, subsequent_indent=" "))
    return wrapped


def front_columns(summary: StudySummary) -> list[Column]:
    from dse.results.tables import point_label  # the results package is loaded by then

    level = f"{summary.interval_level:.0%}"
    rows = summary.front
    columns: list[Column] = [("trial", "d", lambda r: r["trial"]),
                             ("point", "s", point_label)]
    if any(_dram_point(r) for r in rows):
        columns.append(("DRAM V/ns", "s", _dram_point))
    if any(r.get("accuracy") is not None for r in rows):
        columns.append((f"val acc % [{level} CI]", "s",
                        lambda r: _pct_interval(r, "accuracy")))
    if any(r.get("test_accuracy") is not None for r in rows):
        columns.append((f"test acc % [{level} CI]", "s",
                        lambda r: _pct_interval(r, "test_accuracy")))
    return columns + [("latency ms", ".4f", lambda r: r["latency_s"] * 1e3),
                      ("energy µJ", ".3f", lambda r: r["energy_j"] * 1e6),
                      ("DRAM µJ", ".3f", lambda r: r["dram_energy_j"] * 1e6)]


def next_lines(summary: StudySummary) -> list[str]:
    if not summary.next_commands:
        return []
    lines = ["next:"]
    for item in summary.next_commands:
        lines += [f"  {item['why']}:", f"    {item['command']}"]
    return lines


def show_text(report: ShowReport) -> str:
    metrics = report.metrics
    head = [f"study {report.study}, trial {report.trial}"
            + (f" (baseline {report.baseline})" if report.baseline
               else f", proposed by {report.engine}"),
            f"{report.network} on {report.dataset}, DRAM {report.dram}"
            + ("" if not report.partitions else ": " + ", ".join(
                f"{p['name']} {p['vdd_v']:g} V / {p['trcd_ns']:g} ns"
                for p in report.partitions))]
    if metrics.get("accuracy") is not None:
        level = f"{report.interval_level:.0%}"
        head.append(f"accuracy {metrics['accuracy']:.2%} ({level} CI "
                    f"{interval_pct(metrics, 'accuracy')}; std over seeds "
                    f"{metrics.get('accuracy_std') or 0:.2%})"
                    + ("" if metrics.get("probed") else " (not probed: over a budget)"))
        if metrics.get("accuracy_change_pp") is not None:
            head.append(f"accuracy change vs all-digital (paired, negative: worse) "
                        f"{change_pp(metrics, 'accuracy', level)}")
        test = report.test or {}
        if test.get("test_accuracy") is not None:
            head.append(f"test split (confirmed): {test['test_accuracy']:.2%} ({level} CI "
                        f"{interval_pct(test, 'test_accuracy')}); accuracy change vs "
                        f"all-digital {change_pp(test, 'test_accuracy', level)}")
        elif report.test_accuracy is not None:
            head.append(f"test split: {report.test_accuracy:.2%}")
    weights = report.delivered_weights
    if weights:
        head.append(f"measured from the weights its engine trained: "
                    f"{str(weights.get('tensors_sha256'))[:16]} ({weights.get('samples') or 0:,} "
                    f"training samples; {weights.get('file') or 'not kept on disk'})")
    head.append(f"latency {metrics['latency_s'] * 1e3:.4f} ms, energy "
                f"{metrics['energy_j'] * 1e6:.3f} µJ (DRAM {metrics['dram_energy_j'] * 1e6:.3f})")
    table = format_table(report.layers, [
        ("layer", "s", lambda r: r["name"]),
        ("cout", "d", lambda r: r["cout"]),
        ("n_dig", "d", lambda r: r["n_digital"]),
        ("n_ana", "d", lambda r: r["n_analog"]),
        ("weights in", "s", lambda r: r["weights_partition"]),
        ("working set", "s", lambda r: r["working_set"]),
        ("input in", "s", lambda r: r["activations_partition"]),
        ("w_ber", ".1e", lambda r: r["weight_ber"]),
        ("in_ber", ".1e", lambda r: r["activation_ber"]),
        ("latency_us", ".2f", lambda r: r["latency_s"] * 1e6),
        ("compute_uj", ".4f", lambda r: r["compute_energy_j"] * 1e6),
        ("dram_uj", ".4f", lambda r: r["dram_energy_j"] * 1e6),
    ])
    return "\n".join(head + [table])


def status_text(report: StatusReport) -> str:
    states = ", ".join(f"{count} {state.lower()}" for state, count in report.trials.items())
    lines = [f"study {report.study} in {report.storage}",
             f"trials: {states or 'none'}",
             f"Pareto front: {report.front_size} points; last completion: "
             f"{report.last_completion or 'never'}",
             f"confirmed on the test split: {report.confirmed} points"
             + _confirm_settings(report.confirm_settings),
             "complete trials per worker:"]
    threads = report.threads_by_worker
    lines += [f"  {worker}  {count}" + (f"  ({threads[worker]} threads)" if worker in threads
                                         else "")
              for worker, count in report.complete_by_worker.items()]
    if report.running:
        lines.append("running trials:")
        lines += [f"  trial {item['trial']} on {item['worker']} for "
                  f"{_duration(item['running_s'])}"
                  + (f" ({item['threads']} threads)" if item.get("threads") else "")
                  for item in report.running]
    return "\n".join(lines)


def _confirm_settings(settings: dict[str, Any] | None) -> str:
    if not settings or "steps" not in settings:
        return ""
    return (f" ({settings['steps']} steps x {settings.get('finetune_seeds', '?')} fine-tune x "
            f"{settings.get('error_seeds', '?')} error seeds)")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _trained_with(train_config: dict) -> str:
    """Where the checkpoint records it: the torch threads (and device) it was trained with,
    on which its weights depend (the order of parallel sums)."""
    threads = train_config.get("threads")
    if not threads:
        return ""
    return (f"\ntrained with {threads} torch thread{'s' if threads != 1 else ''} on "
            f"{train_config.get('device', 'cpu')}: another thread count trains other weights "
            "(the order of parallel sums differs); the cache keeps the first one trained")


def train_text(report: TrainReport) -> str:
    state = "trained" if report.trained else "cached"
    return (f"{report.network} on {report.dataset}: {state} checkpoint "
            f"{report.checkpoint}\nvalidation accuracy {report.val_accuracy:.2%} "
            f"(DIANA-quantised, all digital; float {report.float_val_accuracy:.2%})"
            + _trained_with(report.train_config)
            + ("" if report.tensors_verified else
               "\nno digest of its tensors (written before dse stored one): not checked "
               "for damage"))


def probe_text(report: ProbeReport) -> str:
    level = f"{report.interval_level:.0%}"
    record = report.to_json()  # the accuracies' intervals, by name
    return "\n".join([
        f"{report.network} on {report.dataset}, mapping {report.mapping}: accuracy "
        f"{report.accuracy:.2%} ({level} CI {interval_pct(record, 'accuracy')}) on "
        f"{report.images} {report.split} images x {report.finetune_seeds} fine-tune "
        f"x {report.error_seeds} error seeds (std over seeds {report.accuracy_std:.2%})",
        f"all-digital baseline {report.baseline_accuracy:.2%} ({level} CI "
        f"{interval_pct(record, 'baseline_accuracy')}); accuracy change (paired, negative: "
        f"worse) {change_pp(record, 'accuracy', level)}",
        f"max BER weights {report.max_weight_ber:.1e}, activations "
        f"{report.max_activation_ber:.1e}; {report.seconds:.1f} s"
        f"{', cached' if report.cached else ''}"])


def change_pp(record: dict[str, Any], name: str, level: str) -> str:
    """'-0.37 pp (95% CI -1.11 to +0.00 pp)' from ``<name>_change_pp`` and its bounds."""
    def value(key: str) -> float:
        found = record.get(key)
        return float("nan") if found is None else float(found)
    return (f"{value(f'{name}_change_pp'):+.2f} pp ({level} CI "
            f"{value(f'{name}_change_ci_low_pp'):+.2f} to "
            f"{value(f'{name}_change_ci_high_pp'):+.2f} pp)")


def interval_pct(record: dict[str, Any], name: str) -> str:
    """'96.8-99.6 %' from ``name_ci_low`` and ``name_ci_high`` (fractions), '?' unknown."""
    low, high = record.get(f"{name}_ci_low"), record.get(f"{name}_ci_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "?"
    return f"{low * 100:.1f}-{high * 100:.1f} %"


def repair_text(report: RepairReport) -> str:
    studies = "; ".join(f"study {s['study']}: {s['trials']} trials"
                        for s in report.studies) or "no study"
    if not report.changed:
        return (f"journal {report.journal} is intact ({report.records} records); "
                f"nothing changed ({studies})")
    torn = report.torn_lines
    done = []
    if torn:
        lines = ", ".join(str(entry["line"]) for entry in torn)
        done.append(f"removed {report.removed_bytes} torn bytes (line{'s' * (len(torn) > 1)} "
                    f"{lines})")
    if report.salvaged_records:
        done.append(f"kept {report.salvaged_records} complete record(s) written after a "
                    "torn one")
    if report.completed_last_line:
        done.append("ended the last record, complete but for its newline, with one")
    return "\n".join([f"repaired journal {report.journal}: {'; '.join(done)}",
                      f"kept {report.records} complete records; the original is in "
                      f"{report.backup}",
                      f"the journal reads again: {studies}"])


def tolerance_text(report: ToleranceReport) -> str:
    """Per split: the coarse tolerable BER, then each data type's (fine), as EDEN measured."""
    lines = [f"study {report.study}: error tolerance (largest BER meeting the accuracy "
             "target, paired drop)"]
    for split in report.splits:
        state = ("" if split.get("trial") is None else
                 f"; mapped in trial {split['trial']}"
                 + ("" if split.get("target_met") else " (target missed: nominal DRAM)")
                 + (f", tightened {split['tightened']}x" if split.get("tightened") else ""))
        coarse = ("n/a" if split.get("coarse_ber") is None
                  else f"{split['coarse_ber']:.2e}")
        used = split.get("mapped_with")
        retrained = split.get("retrain_epochs")
        how = "".join([f"; mapped with the {used} tolerance" if used in ("coarse", "fine")
                       else "",
                       f"; retrained {retrained} epoch{'s' if retrained != 1 else ''}"
                       if retrained and used in ("coarse", "fine") else ""])
        lines.append(f"{split['mapping']}: coarse {coarse}{state}{how}")
        if not split["fine_ber"]:
            lines.append("  (no data of this split lives in DRAM)")
        for name, ber in sorted(split["fine_ber"].items(), key=lambda item: item[1]):
            lines.append(f"  {ber:.2e}  {name}")
    return "\n".join(lines)


def confirmation_plan_text(plan: dict[str, Any], *, in_search: bool) -> str:
    """One line before a confirmation (``dse.commands.confirm.confirmation_plan``): what it
    measures, roughly how long it takes, and how to skip or resume it."""
    points, left = plan["points"], plan["to_measure"]
    if not left:
        return f"confirmation: all {points} points are confirmed on the test split already"
    which = f"{left} of {points} points" if plan["already"] else f"{points} points"
    parts = [f"confirming {which} on the test split ({plan['baselines']} baselines, "
             f"{points - plan['baselines']} of the front"
             + (f"; {plan['already']} confirmed before)" if plan["already"] else ")")]
    if plan.get("steps") is not None:
        tunes = (f"{_count(plan['finetune_seeds'], 'fine-tune')} of {plan['steps']} steps"
                 if plan["steps"] else "no fine-tune")
        parts.append(f"each {tunes}, {_count(plan['error_seeds'], 'error mask')}")
    if plan.get("estimate_s") is not None:
        basis = (f"at the search's {plan['seconds_per_step']:.3g} s per fine-tune step"
                 if plan["estimate_from"] == "search" else "as the points confirmed so far")
        parts.append(f"roughly {_rough_duration(plan['estimate_s'])} ({basis})")
    parts.append("--no-confirm skips it; `dse confirm` runs it later" if in_search else
                 "each point is kept once measured: a stopped run resumes")
    return "; ".join(parts)


def _rough_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def model_agreement_line(agreement: dict[str, Any]) -> str:
    """One line on an engine's model of the accuracy drop against the probe's measurements
    (``dse.results.tables.model_agreement``)."""
    from dse.results.tables import model_agreement_text
    return f"{model_agreement_text(agreement)}; model_drop.png"
