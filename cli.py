"""The ``dse`` command line: parse options, call one dse function, print what it returns.

Options shared by several commands are declared once (the bundles below) and take their
defaults from the dataclasses they fill; checks and text formatting live in ``dse``.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click
from click.core import ParameterSource

from dse import __version__
from dse.accuracy.defaults import DEFAULT_EPOCHS, ConfirmDefaults, ProbeDefaults
from dse.config import SearchConfig, default_settings
from hw_models.dram import BER_QUANTILES
from hw_models.errors import ConfigError
from hw_models.partitions import LAYOUTS

if TYPE_CHECKING:
    from dse.commands.progress import ProgressDisplay

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class DseGroup(click.Group):
    """A group whose errors are one line on stderr with exit 2, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        _stop_on_sigterm()
        show_library_warnings()
        try:
            result = super().main(*args, **kwargs)
        except (ConfigError, click.ClickException) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else exc
            # a ConfigError may name its own status (a lost database connection: 75)
            status = getattr(exc, "exit_code", 2) if isinstance(exc, ConfigError) else 2
            fail(f"error: {message}", status)
        except _Stopped as exc:
            fail("terminated (SIGTERM)" if exc.sigterm else "interrupted",
                 143 if exc.sigterm else 130)
        except (click.Abort, KeyboardInterrupt):
            fail("interrupted", 130)
        except Exception as exc:  # a bug: still one line, the traceback on request
            if os.environ.get("DSE_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set DSE_DEBUG=1 for the "
                 "traceback)", 1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            from dse.signals import Terminated
            raise _Stopped(isinstance(exc, Terminated)) from None


class _Stopped(Exception):
    """A signal, carried past click (which would print a blank line and say Aborted)."""

    def __init__(self, sigterm: bool) -> None:
        super().__init__("terminated" if sigterm else "interrupted")
        self.sigterm = sigterm


def _stop_on_sigterm() -> None:
    """SIGTERM before a search's own guard is up (while training, say) stops with the same
    one line and exit 143, not silently."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        from dse.signals import Terminated
        raise Terminated()

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)


class _StderrLines(logging.Handler):
    """Each record as one line ``dse: warning: ...`` on the stderr of the moment (a test
    runner swaps it between commands)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"dse: {record.levelname.lower()}: {self.format(record)}\n")
            sys.stderr.flush()
        except Exception:  # logging's own convention: emit never raises
            self.handleError(record)


def show_library_warnings() -> None:
    """Library code logs (``logging.getLogger(__name__)``) and never prints; the command line
    shows its warnings as ``dse: warning: ...`` lines, once however often it runs."""
    logger = logging.getLogger("dse")
    if not any(isinstance(handler, _StderrLines) for handler in logger.handlers):
        logger.addHandler(_StderrLines(logging.WARNING))


def fail(message: str, status: int) -> None:
    """Print ``dse: <message>`` as exactly one line on stderr and exit."""
    click.echo("dse: " + " ".join(str(message).split()), err=True)
    sys.exit(status)


def echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def bundle(*options: Decorator) -> Decorator:
    """Several click options as one decorator (listed in --help in the given order)."""
    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command
    return apply


def progress_display() -> ProgressDisplay:
    """Progress bars on stderr (``dse.commands.progress``): redrawn in place on a terminal,
    a line per tenth and a heartbeat a minute otherwise; stdout stays for the result."""
    from dse.commands.progress import ProgressDisplay
    return ProgressDisplay(sys.stderr)


def announce_confirmation(display: ProgressDisplay, *, in_search: bool
                          ) -> Callable[[dict[str, Any]], None]:
    """The line said before a confirmation starts (its points, steps, rough time)."""
    from dse.commands.text import confirmation_plan_text
    return lambda plan: display.write(confirmation_plan_text(plan, in_search=in_search))


DEFAULTS = default_settings()  # dse search's defaults, by setting
EQUIVALENCE_HELP = ("Margin of the claims' equivalence tests, in percentage points: a test "
                    "accuracy change shown within +-PP with confidence is 'equivalent' "
                    "[default: the one dse search or dse confirm last kept in the study, "
                    "else --max-accuracy-drop, else 1]. Reporting only: not part of the "
                    "study's identity.")
equivalence_option = click.option("--equivalence-margin", "equivalence_margin_pp", type=float,
                                  default=None, metavar="PP", help=EQUIVALENCE_HELP)


# ---- option types ---------------------------------------------------------------------

class RegistryChoice(click.Choice):
    """A choice among the names one of the project's registries holds, read when first
    needed: the registries of engines and samplers import Optuna, which ``dse --help`` and
    the catalogue commands do without."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self.names = names
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.names())

    @choices.setter
    def choices(self, value: Iterable[str]) -> None:
        """Ignored (click's constructor sets it): the registry holds the choices."""


def vendor_choices() -> tuple[str, ...]:
    from hw_models.dram import list_vendors
    return tuple(list_vendors())


def retired_option(old: str, new: str, why: str) -> Decorator:
    """A retired spelling, hidden from --help: given (with or without a value), it stops
    the command with one line naming the new spelling, exit 2, before anything runs."""
    def refuse(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            raise click.UsageError(f"dse {ctx.info_name} {old} is now {new} ({why})")
    # a name of its own: the new option may hold the old one's (--dram "device")
    name = "retired_" + old.lstrip("-").replace("-", "_")
    return click.option(old, name, is_flag=False, flag_value="", default=None, hidden=True,
                        expose_value=False, callback=refuse, help=f"Retired: use {new}.")


class PartitionCount(click.ParamType):
    """``whole-device`` (1) or a positive partition count: ``dse search --partitions``."""

    name = "partitions"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        if str(value) == "whole-device":
            return 1
        try:
            count = int(str(value))
        except ValueError:
            count = 0
        if count >= 1:
            return count
        if str(value) in LAYOUTS or Path(str(value)).is_file():
            self.fail(f"'{value}' is a fixed layout or a partition file, which dse cost and "
                      "dse probe take as --partition-layout; dse search --partitions is a "
                      "count (whole-device or N)", param, ctx)
        self.fail(f"'{value}' is neither whole-device nor a positive partition count",
                  param, ctx)


class PartitionLayout(click.ParamType):
    """A fixed layout name (``hw_models.partitions.LAYOUTS``) or a partition JSON file:
    ``dse cost/probe --partition-layout`` (checked further where the device is known)."""

    name = "layout"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value)
        if text.isdigit() and not Path(text).is_file():
            self.fail(f"'{text}' is a partition count, which dse search takes as "
                      f"--partitions; --partition-layout is a layout ({', '.join(LAYOUTS)}) "
                      "or a partition JSON file", param, ctx)
        return text


# ---- option bundles -------------------------------------------------------------------

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of a table.")
dataset_option = click.option(
    "--dataset", metavar="NAME", default=None,
    help="Dataset fixing input shape and classes [default: the network's reference dataset, "
         "e.g. cifar10 for resnet8; no data is read. search, train and probe default to the "
         "bundled digits instead, which they read].")
vendor_option = click.option(
    "--vendor", type=RegistryChoice(vendor_choices), default=DEFAULTS["vendor"],
    show_default=True,
    help="Vendor whose measured BER curves apply: BER(VDD) from the Voltron DDR3L data, "
         "BER(tRCD) from the DIVA-DRAM DDR3 data (the papers' anonymised letters).")
ber_quantile_option = click.option(
    "--ber-quantile", type=click.Choice(BER_QUANTILES),
    default=DEFAULTS["ber_quantile"], show_default=True,
    help="Which DIMM of the vendor's measured population the BER curves describe: the "
         "mean, median, 90th percentile or worst DIMM at each VDD and tRCD. max: a "
         "deployed design must hold on the module it is given, and no measured DIMM has "
         "more errors (p90 accepts one module in ten above the design's BER).")
hw_option = click.option("--hw", default=DEFAULTS["hw"], show_default=True,
                         metavar="PRESET|FILE", help="SoC preset name or a TOML preset file.")
dram_option = click.option(
    "--dram", default=None, metavar="DEVICE|none",
    help="DRAM device preset or TOML file; 'none': compute only, no DRAM errors "
         "[default: the SoC's, lpddr4-3200 for DIANA].")
hardware_options = bundle(hw_option, dram_option, vendor_option, ber_quantile_option)
operating_point_options = bundle(
    click.option("--vdd", "vdd_v", type=float, default=None, metavar="VOLTS",
                 help="Supply voltage of the whole device, or of the approximate half "
                      "[default: nominal]."),
    click.option("--trcd", "trcd_ns", type=float, default=None, metavar="NS",
                 help="tRCD of the whole device, or of the approximate half "
                      "[default: nominal]."),
    click.option("--partition-layout", type=PartitionLayout(), default="whole-device",
                 show_default=True, metavar="LAYOUT|FILE",
                 help="Which DRAM partition holds each tensor: whole-device (one point for "
                      "the whole DRAM: what a BIOS sets); all-approximate, "
                      "weights-approximate, activations-approximate, all-nominal (two "
                      "halves, nominal and --vdd/--trcd); or a partition JSON file."),
    retired_option("--partitions", "--partition-layout",
                   "--partitions is the partition count of dse search"))
trainable_network_options = bundle(
    click.option("--network", default=DEFAULTS["network"], show_default=True,
                 help="Zoo name or package.module:function."),
    click.option("--dataset", default=DEFAULTS["dataset"], show_default=True,
                 help="digits (bundled); cifar10, tiny-imagenet or vww (--data-dir); or "
                      "synthetic."))
results_dir_option = click.option(
    "--results-dir", default=DEFAULTS["results_dir"], show_default=True,
    type=click.Path(file_okay=False),
    help="Where studies, checkpoints and the probe cache go.")
probe_batch_option = click.option(
    "--probe-batch", type=int, default=None, metavar="K",
    help="Fine-tunes the probe runs together as one model (the same results at any K; "
         "faster with more) [default: as many as a quarter of the free RAM or GPU memory "
         "holds, at most 64].")
threads_option = click.option(
    "--threads", type=int, default=None, metavar="N",
    help="Torch threads [default: the CPUs this process may use, shared among the dse "
         "workers of the same study on this host].")
data_options = bundle(
    click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                 help="Folder with the dataset files (cifar10: cifar-10-batches-py/)."),
    click.option("--download", is_flag=True,
                 help="Fetch the dataset into --data-dir when missing (checksum checked)."),
    results_dir_option,
    click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
                 help="Use this trained checkpoint instead of the cached or a new one."),
    click.option("--epochs", type=int, default=None,
                 help=f"Baseline training epochs [default: {DEFAULT_EPOCHS['digits']} for "
                      f"digits and {DEFAULT_EPOCHS['cifar10']} for cifar10]."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                 default=DEFAULTS["device"], show_default=True,
                 help="Where to train and fine-tune."),
    threads_option)
error_model_option = click.option(
    "--error-model", type=click.IntRange(0, 3), default=ProbeDefaults.error_model,
    show_default=True,
    help="EDEN error model: 0 uniform, 1 bitline, 2 wordline, 3 data-dependent.")
study_location_options = bundle(
    click.option("--storage", default=None, metavar="URL", help="Study storage URL."),
    click.option("--study", "study_name", default=None, help="Study name in --storage."),
    results_dir_option)


@click.group(cls=DseGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.version_option(__version__, prog_name="dse")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Design-space exploration of DNN accelerator mappings and approximate DRAM on a
    heterogeneous edge SoC (DIANA)."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# ---- catalogue ------------------------------------------------------------------------

@cli.command()
@json_option
def networks(as_json: bool) -> None:
    """List the network zoo on each network's reference dataset."""
    from dse.commands.catalogue import network_summaries
    from dse.commands.text import networks_text

    rows = network_summaries()
    echo_json(rows.to_json()) if as_json else click.echo(networks_text(rows))


@cli.command()
@click.argument("network")
@dataset_option
@json_option
def layers(network: str, dataset: str | None, as_json: bool) -> None:
    """Print the layer table of NETWORK (a zoo name or package.module:function)."""
    from dse.commands.catalogue import layer_report
    from dse.commands.text import layers_text

    report = layer_report(network, dataset)
    echo_json(report.to_json()) if as_json else click.echo(layers_text(report))


@cli.command()
@click.option("--network", required=True, help="Zoo name or package.module:function.")
@dataset_option
@click.option("--mapping", required=True, metavar="SPEC",
              help="all-digital, all-analog, diana-heuristic, min-latency, or a JSON file "
                   "({layer: n_analog} or a list in layer order).")
@hardware_options
@operating_point_options
@click.option("--overlap/--no-overlap", default=True, show_default=True,
              help="Double-buffer DRAM transfers with compute (layer latency = max) or not "
                   "(sum).")
@json_option
def cost(as_json: bool, **options: Any) -> None:
    """Latency and energy of one mapping on the SoC and its DRAM, per layer and in total."""
    from dse.commands.catalogue import CostRequest, cost_report
    from dse.commands.text import cost_text

    report = cost_report(CostRequest(**options))
    echo_json(report.to_json()) if as_json else click.echo(cost_text(report))


@cli.command()
@click.option("--dram", "device", default=None, metavar="DEVICE",
              help="DRAM device preset (see --list) or TOML file.")
@retired_option("--device", "--dram", "--device is the torch device in every command")
@vendor_option
@ber_quantile_option
@click.option("--vdd", "vdd_v", type=float, default=None, metavar="VOLTS",
              help="Supply voltage [default: nominal].")
@click.option("--trcd", "trcd_ns", type=float, default=None, metavar="NS",
              help="Row activation latency tRCD [default: nominal].")
@click.option("--list", "list_devices", is_flag=True,
              help="List devices with nominal points and allowed ranges.")
@json_option
def dram(device: str | None, vendor: str, ber_quantile: str, vdd_v: float | None,
         trcd_ns: float | None, list_devices: bool, as_json: bool) -> None:
    """Bit error rate, energy scale and row-miss latency of a DRAM operating point."""
    from dse.commands.catalogue import dram_devices, dram_report
    from dse.commands.text import dram_devices_text, dram_text

    if list_devices:
        rows = dram_devices(ber_quantile)
        echo_json(rows.to_json()) if as_json else click.echo(dram_devices_text(rows))
        return
    if device is None:
        raise click.UsageError("give --dram DEVICE (or --list)")
    point = dram_report(device, vendor, vdd_v, trcd_ns, ber_quantile)
    echo_json(point.to_json()) if as_json else click.echo(dram_text(point))


# ---- training and probing -------------------------------------------------------------

@cli.command()
@trainable_network_options
@data_options
@click.option("--retrain", is_flag=True, help="Train again even if a checkpoint is cached.")
@json_option
def train(retrain: bool, as_json: bool, threads: int | None, **options: Any) -> None:
    """Train (or find cached) the baseline checkpoint of a network on a dataset."""
    from dse.accuracy.probe_estimator import DataRequest
    from dse.commands.text import train_text
    from dse.commands.training import train_report
    from dse.threads import use_threads

    use_threads(threads)
    with progress_display() as display:
        report = train_report(DataRequest(**options), retrain=retrain,
                              progress=display.phase("training", "step"))
    echo_json(report.to_json()) if as_json else click.echo(train_text(report))


@cli.command()
@trainable_network_options
@click.option("--mapping", default="diana-heuristic", show_default=True, metavar="SPEC",
              help="all-digital, all-analog, diana-heuristic, min-latency, or a JSON file.")
@hardware_options
@operating_point_options
@error_model_option
@click.option("--steps", type=int, default=ProbeDefaults.steps, show_default=True,
              help="Quick fine-tune steps.")
@click.option("--finetune-seeds", type=int, default=ProbeDefaults.finetune_seeds,
              show_default=True, help="Independent fine-tunes (their spread is in the "
                                      "interval).")
@click.option("--error-seeds", type=int, default=ProbeDefaults.error_seeds, show_default=True,
              help="DRAM error masks evaluated per fine-tuned model.")
@click.option("--seeds", type=int, default=None, hidden=True,
              help="Retired: use --finetune-seeds and --error-seeds.")
@click.option("--interval-level", type=float, default=DEFAULTS["interval_level"],
              show_default=True, metavar="P",
              help="Coverage of the accuracy's interval (0.95: 95 %).")
@data_options
@json_option
def probe(as_json: bool, threads: int | None, **options: Any) -> None:
    """Accuracy of one mapping and DRAM point after a quick fine-tune."""
    from dse.commands.text import probe_text
    from dse.commands.training import probe_report, probe_request
    from dse.threads import use_threads

    request = probe_request(**options)
    use_threads(threads)
    with progress_display() as display:
        report = probe_report(request, progress=display.phase("training baseline", "step"),
                              step_progress=display.stage("fine-tune", "step"))
    echo_json(report.to_json()) if as_json else click.echo(probe_text(report))


# ---- search ---------------------------------------------------------------------------

search_options = bundle(
    trainable_network_options,
    click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                 help="Folder with the dataset files (cifar10: cifar-10-batches-py/)."),
    click.option("--download", is_flag=True,
                 help="Fetch the dataset into --data-dir when missing (checksum checked)."),
    hardware_options,
    click.option("--partitions", type=PartitionCount(), default="whole-device",
                 show_default=True, metavar="whole-device|N",
                 help="DRAM partitions, each with its own VDD and tRCD: whole-device (one "
                      "point for all of it, what a BIOS sets; 1) or N equal partitions of "
                      "the device's banks with every tensor in DRAM placed in one (EDEN's "
                      "fine-grained mode, which needs per-partition voltage regulation)."),
    click.option("--objectives", default=DEFAULTS["objectives"], show_default=True,
                 help="Comma-separated: accuracy, latency, energy, dram_energy, "
                      "compute_energy."),
    click.option("--max-accuracy-drop", "max_accuracy_drop_pp", type=float,
                 default=DEFAULTS["max_accuracy_drop_pp"], show_default=True, metavar="PP",
                 help="Largest accuracy drop vs all-digital at nominal DRAM, in percentage "
                      "points, paired on the same images and seeds (a constraint)."),
    click.option("--interval-level", type=float, default=DEFAULTS["interval_level"],
                 show_default=True, metavar="P",
                 help="Coverage of every accuracy interval (0.95: 95 %)."),
    click.option("--drop-rule", type=click.Choice(["mean", "upper"]),
                 default=DEFAULTS["drop_rule"], show_default=True,
                 help="What --max-accuracy-drop bounds: the paired drop's estimate (mean) "
                      "or the upper end of its two-sided --interval-level interval, a "
                      "one-sided (1 + level) / 2 bound: 97.5 % at 0.95 (upper: met with "
                      "confidence, as EDEN's 'strictly meet'; a candidate answering all "
                      "269 images of digits as the baseline has an upper end of 2.1 pp)."),
    equivalence_option,
    click.option("--latency-budget", "latency_budget_s", type=float, default=None,
                 metavar="S",
                 help="Latency budget in seconds (candidates over it are not probed)."),
    click.option("--energy-budget", "energy_budget_j", type=float, default=None, metavar="J",
                 help="Energy budget in joules (candidates over it are not probed)."),
    click.option("--trials", type=int, default=DEFAULTS["trials"], show_default=True,
                 help="Complete trials the study should hold (a rerun resumes up to this)."),
    click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True,
                 help="Seed of the sampler and the probe (worker k samples from "
                      "seed + 1000003 k)."),
    click.option("--study", default=None,
                 help="Study name [default: network-dataset-hw-dram]."),
    click.option("--storage", default=None, metavar="URL",
                 help="sqlite:///PATH, postgresql://..., mysql://... or journal:PATH "
                      "[default: sqlite:///RESULTS/STUDY/study.db]."),
    results_dir_option,
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                 default=DEFAULTS["device"], show_default=True,
                 help="Where to train and fine-tune."),
    threads_option,
    click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
                 help="Use this trained checkpoint."),
    click.option("--epochs", type=int, default=None, help="Baseline training epochs."),
    click.option("--probe-steps", type=int, default=DEFAULTS["probe_steps"],
                 show_default=True, help="Fine-tune steps of each candidate's probe."),
    click.option("--finetune-epochs", type=float, default=None, metavar="E",
                 help="The probe's fine-tune in epochs of the training split instead of "
                      "--probe-steps (ceil(E x images / 64) steps). It is the fine-tune "
                      "every candidate gets, the baselines' and each engine's alike (for "
                      "odimo, the fine-tune of its discretised split), so comparisons stay "
                      "paired."),
    click.option("--finetune-seeds", type=int, default=DEFAULTS["finetune_seeds"],
                 show_default=True,
                 help="Independent fine-tunes per probe (their spread is in the interval)."),
    click.option("--error-seeds", type=int, default=DEFAULTS["error_seeds"],
                 show_default=True, help="DRAM error masks evaluated per fine-tuned model."),
    click.option("--probe-seeds", type=int, default=None, hidden=True,
                 help="Retired: use --finetune-seeds and --error-seeds."),
    probe_batch_option,
    click.option("--confirm/--no-confirm", default=DEFAULTS["confirm"], show_default=True,
                 help="At the end, re-probe the front and the baselines on the test split "
                      "(what the summary's claims rest on); `dse confirm` does it later."),
    click.option("--confirm-steps", type=int, default=None, metavar="N",
                 help=f"Fine-tune steps of the test-split confirmation [default: "
                      f"{ConfirmDefaults.steps_factor}x "
                      "--probe-steps]."),
    click.option("--confirm-seeds", type=int, default=DEFAULTS["confirm_seeds"],
                 show_default=True, help="Independent fine-tunes per confirmed point."),
    error_model_option,
    click.option("--accuracy-estimator", default=None, metavar="PACKAGE.MODULE:FUNCTION",
                 help="Your own accuracy estimate instead of the probe: called with a "
                      "dse.accuracy.ProbeCandidate, returns a dse.accuracy.ProbeResult."),
    click.option("--trials-per-worker", type=int, default=None,
                 help="Run this many trials in this worker instead of filling the study "
                      "to --trials."),
    click.option("--worker", type=int, default=None,
                 help="Worker index for its own seed stream [default: "
                      "$SLURM_ARRAY_TASK_ID, else 0]."),
    click.option("--heartbeat-interval", "heartbeat_interval_s", type=int,
                 default=DEFAULTS["heartbeat_interval_s"], show_default=True, metavar="S",
                 help="Database and journal storages: how often a running trial reports "
                      "it is alive."),
    click.option("--grace-period", "grace_period_s", type=int,
                 default=DEFAULTS["grace_period_s"], show_default=True, metavar="S",
                 help="Database and journal storages: silence after which a trial's "
                      "worker counts as dead; its trial is failed and retried."))


ENGINE_OPTION = "engine_option_"  # the parameter names of the engines' own options


class SearchCommand(click.Command):
    """``dse search``: ``--engine`` and every engine's own options come from the engine
    registry (``dse.engines``), read when the command runs or shows its help."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        at = next(i for i, param in enumerate(params) if param.name == "trials") + 1
        return params[:at] + engine_params() + params[at:]


def engine_params() -> list[click.Parameter]:
    """--engine, then each engine option once (several engines may share one)."""
    from dse.engines import EngineOption, engine_specs
    specs = engine_specs()
    params: list[click.Parameter] = [click.Option(
        ["--engine"], type=click.Choice([spec.name for spec in specs]),
        default=DEFAULTS["engine"], show_default=True,
        help="Search engine: " + "; ".join(f"{spec.name} ({spec.summary})" for spec in specs)
             + ".")]
    owners: dict[str, list[str]] = {}
    first: dict[str, EngineOption] = {}
    for spec in specs:
        for option in spec.options():
            owners.setdefault(option.flag, []).append(spec.name)
            first.setdefault(option.flag, option)
    for flag, option in first.items():
        choices = option.choices()
        params.append(click.Option(
            [flag, ENGINE_OPTION + flag.lstrip("-").replace("-", "_")],
            type=click.Choice(choices) if choices else option.kind, default=None,
            metavar=option.shown.metavar,
            help=f"{', '.join(owners[flag])}: {option.shown.help}.  [default: "
                 f"{option.default_text()}]"))
    return params


def search_config(options: dict[str, Any]) -> SearchConfig:
    """The search's settings from its options: the chosen engine's settings from its own
    options (an option of another engine is refused, naming whose it is)."""
    from dse.engines import engine_spec
    settings = {name: value for name, value in options.items()
                if not name.startswith(ENGINE_OPTION)}
    given = {"--" + name[len(ENGINE_OPTION):].replace("_", "-"): value
             for name, value in options.items()
             if name.startswith(ENGINE_OPTION) and value is not None}
    return SearchConfig.from_options(
        **settings, engine_settings=engine_spec(options["engine"]).make_settings(given))


@cli.command(cls=SearchCommand)
@search_options
@json_option
def search(as_json: bool, **options: Any) -> None:
    """Explore accelerator splits and approximate-DRAM settings; write Pareto fronts."""
    import optuna

    from dse.commands.search import (
        SearchInterrupted,
        prepare,
        resolve,
        run_search,
        worker_threads,
    )
    from dse.commands.text import search_text

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports trials
    given = click.get_current_context().get_parameter_source("probe_steps")
    if options["finetune_epochs"] is not None and given == ParameterSource.COMMANDLINE:
        raise ConfigError("give --probe-steps or --finetune-epochs, not both")
    resolved = resolve(search_config(options))
    with worker_threads(resolved) as threads, progress_display() as display:
        prepared = prepare(resolved, progress=display.phase("training baseline", "step"),
                           step_progress=display.stage("fine-tune", "step"))
        try:
            summary = run_search(
                prepared, progress=display.phase("search", "trial"), stage=display.stage,
                notice=display.write, threads=threads,
                confirm_progress=display.phase("confirming on the test split", "point"),
                announce=announce_confirmation(display, in_search=True))
        except SearchInterrupted as exc:
            display.close()  # the bars end before the line that says why
            fail(str(exc), exc.exit_code)
    echo_json(summary.to_json()) if as_json else click.echo(search_text(summary))


# ---- reading a study ------------------------------------------------------------------

@cli.command()
@click.argument("target", required=False)
@study_location_options
@click.option("--x", "x_axis", default=None,
              help="Objective (or test_accuracy: the confirmed points only) for an extra "
                   "plot's x axis.")
@click.option("--y", "y_axis", default=None, help="The same for its y axis.")
@click.option("--color", default=None, help="The same colouring its points.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: the study's results folder].")
@equivalence_option
@json_option
def pareto(target: str | None, storage: str | None, study_name: str | None,
           x_axis: str | None, y_axis: str | None, color: str | None, out: str | None,
           results_dir: str, equivalence_margin_pp: float | None, as_json: bool) -> None:
    """Plots and CSVs of a study, at any time (also while it runs).

    TARGET is a study name (under --results-dir) or its results folder [default: the only
    study in --results-dir].
    """
    from dse.commands.inspect import pareto_report
    from dse.commands.text import search_text

    summary = pareto_report(target, storage=storage, study_name=study_name, x=x_axis,
                            y=y_axis, color=color, out=out, results_dir=results_dir,
                            margin_pp=equivalence_margin_pp)
    echo_json(summary.to_json()) if as_json else click.echo(search_text(summary))


@cli.command()
@click.argument("target", required=False)
@study_location_options
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Folder with the dataset files [default: the search's].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              default=DEFAULTS["device"], show_default=True, help="Where to fine-tune.")
@threads_option
@click.option("--confirm-steps", type=int, default=None, metavar="N",
              help=f"Fine-tune steps of each confirmation [default: "
                   f"{ConfirmDefaults.steps_factor}x the search's "
                   "--probe-steps].")
@click.option("--confirm-seeds", type=int, default=DEFAULTS["confirm_seeds"],
              show_default=True, help="Independent fine-tunes per confirmed point.")
@probe_batch_option
@equivalence_option
@json_option
def confirm(target: str | None, storage: str | None, study_name: str | None, results_dir: str,
            data_dir: str | None, device: str, threads: int | None, confirm_steps: int | None,
            confirm_seeds: int, probe_batch: int | None, equivalence_margin_pp: float | None,
            as_json: bool) -> None:
    """Re-probe a study's front and baselines on the test split; rewrite its summary.

    TARGET is a study name (under --results-dir) or its results folder [default: the only
    study in --results-dir]. Each point is stored once measured: a stopped run resumes, and
    workers running it at once share the points. The summary's claims rest on these numbers
    only.
    """
    from dse.commands.confirm import confirm_report
    from dse.commands.text import search_text
    from dse.threads import use_threads

    use_threads(threads)
    with progress_display() as display:
        summary = confirm_report(
            target, storage=storage, study_name=study_name, results_dir=results_dir,
            data_dir=data_dir, device=device, confirm_steps=confirm_steps,
            confirm_seeds=confirm_seeds, margin_pp=equivalence_margin_pp,
            probe_batch=probe_batch,
            progress=display.phase("confirming on the test split", "point"),
            training_progress=display.phase("training baseline", "step"),
            step_progress=display.stage("fine-tune", "step"),
            announce=announce_confirmation(display, in_search=False))
    echo_json(summary.to_json()) if as_json else click.echo(search_text(summary))


@cli.command()
@click.argument("target", required=False)
@click.option("--trial", "trial_number", type=int, required=True, help="Trial number.")
@click.option("--storage", default=None, metavar="URL", help="Study storage URL.")
@results_dir_option
@json_option
def show(target: str | None, trial_number: int, storage: str | None, results_dir: str,
         as_json: bool) -> None:
    """One trial in full: per-layer split, DRAM settings, costs, probe result.

    TARGET is a study name (under --results-dir) or its results folder [default: the only
    study in --results-dir].
    """
    from dse.commands.inspect import show_report
    from dse.commands.text import show_text

    report = show_report(target, trial_number, storage=storage, results_dir=results_dir)
    echo_json(report.to_json()) if as_json else click.echo(show_text(report))


@cli.command()
@click.argument("target", required=False)
@study_location_options
@json_option
def status(target: str | None, storage: str | None, study_name: str | None, results_dir: str,
           as_json: bool) -> None:
    """Trials by state and by worker, front size and last completion of a study.

    TARGET is a study name (under --results-dir) or its results folder [default: the only
    study in --results-dir].
    """
    from dse.commands.inspect import status_report
    from dse.commands.text import status_text

    report = status_report(target, storage=storage, study_name=study_name,
                           results_dir=results_dir)
    echo_json(report.to_json()) if as_json else click.echo(status_text(report))


@cli.command()
@click.argument("target", required=False)
@study_location_options
@json_option
def tolerance(target: str | None, storage: str | None, study_name: str | None,
              results_dir: str, as_json: bool) -> None:
    """Error tolerance per data type that --engine eden characterised in a study.

    TARGET is a study name (under --results-dir) or its results folder [default: the only
    study in --results-dir].
    """
    from dse.commands.inspect import tolerance_report
    from dse.commands.text import tolerance_text

    report = tolerance_report(target, storage=storage, study_name=study_name,
                              results_dir=results_dir)
    echo_json(report.to_json()) if as_json else click.echo(tolerance_text(report))


@cli.command("repair-journal")
@click.argument("path")
@json_option
def repair_journal(path: str, as_json: bool) -> None:
    """Remove the torn last line a lost worker left in a journal file (PATH or journal:PATH).

    Every complete record is kept; the original is kept as PATH.bak-<time>. Run it while no
    worker writes to the journal.
    """
    from dse.commands.inspect import repair_journal_report
    from dse.commands.text import repair_text

    report = repair_journal_report(path)
    echo_json(report.to_json()) if as_json else click.echo(repair_text(report))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
