"""Search engines: what proposes candidates. Every engine writes into the same ledger.

The lifecycle of a run: the caller builds the ``Problem`` and the accuracy model, opens
the ledger (the study) and enters a ``SignalGuard``; then ``engine.run(job)`` proposes
candidates, evaluates them with ``dse.evaluate.evaluate`` inside
``job.guard.interruptible()`` blocks (and nowhere else: a signal must never cut a write)
and records each as a complete trial, until the study holds ``job.budget.total_trials``
complete trials (or this worker ran ``job.budget.per_worker_trials``). A rerun of the same
study resumes: trials already complete count toward the budget. A signal propagates as
``KeyboardInterrupt`` (``dse.signals.Terminated`` for SIGTERM) after the trial in hand is
marked failed; the caller writes the results. ``dse.engines.testing.EngineContract`` is
the contract every engine passes.

An engine is one module: next to its code it declares its settings (a frozen dataclass whose
fields are ``setting(...)``: default, help, unit, and the check of its value), what it needs
and its factory, and registers that ``EngineSpec`` by one call of ``register``. The command
line, the checks of ``dse search``, the benchmark and the documentation read the registry;
nothing else names an engine. ``dse/README.md`` says how to add one.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

from dse.accuracy import AccuracyModel
from dse.problem import Problem
from dse.results.ledger import Ledger
from dse.signals import SignalGuard
from hw_models.errors import ConfigError

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]   # (done, total, status text)
WAITING_STATUS = "waiting for other workers"  # told when a worker starts to wait for others
Stage = Callable[[str, str], Progress]       # (what, unit) -> the progress of that work


@dataclass(frozen=True)
class Budget:
    """How much an engine may run: the study's total of complete trials, or this worker's
    own count instead."""

    total_trials: int
    per_worker_trials: int | None = None


@dataclass
class EngineJob:
    """What one run of an engine gets.

    Attributes:
        problem: what is searched and how it is costed.
        ledger: where candidates are recorded (the study).
        budget: when to stop.
        seed: this worker's seed.
        accuracy: the accuracy estimator and its baseline, when accuracy is an objective.
        guard: the active signal guard (entered by the caller).
        progress: told (trials done, total, status) when the run starts, after trials, and
            (``WAITING_STATUS``) when the worker starts to wait for others' trials.
        stage: opens the progress of long work inside one trial, by its name and unit
            (ODiMO's DNAS: "DNAS", "step"; EDEN's retraining: "EDEN retraining", "step",
            and its characterisation: "EDEN", "probe");
            each call starts that work's count afresh.
        before_trial: called before each trial; returns attributes of this worker to record
            with the trial (host, pid, threads: see ``dse.threads``).
    """

    problem: Problem
    ledger: Ledger
    budget: Budget
    seed: int
    accuracy: AccuracyModel | None = None
    guard: SignalGuard = field(default_factory=SignalGuard)
    progress: Progress | None = None
    stage: Stage | None = None
    before_trial: Callable[[], dict[str, Any]] | None = None


class Engine(Protocol):
    """A search method (see the module docstring for the lifecycle)."""

    name: str

    def run(self, job: EngineJob) -> None: ...


# ---- the registry ---------------------------------------------------------------------

# the engines that come with dse, registered when their module is imported (each module
# imports Optuna at most, never torch: the registry is read by `dse search --help`)
BUILTIN_MODULES = ("dse.engines.optuna_engine", "dse.engines.odimo", "dse.engines.eden",
                   "dse.engines.frontier")
# installed packages add engines here: [project.entry-points."dse.engines"] NAME = "MODULE"
ENTRY_POINT_GROUP = "dse.engines"
NEEDS = {  # what an engine may need, as the refusal names it
    "accuracy": "accuracy among the objectives",
    "probe": "the built-in probe",          # its data and checkpoint, or its fine-tune
    "dram": "a DRAM device",
}
_OPTION = "dse.engine_option"
_BINDING = "dse.binding"


@dataclass(frozen=True)
class OptionHelp:
    """How a setting shows on the command line (``--FLAG``; default: the field's name)."""

    help: str
    flag: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | Callable[[], Iterable[str]] | None = None
    parse: Callable[[str, str], Any] | None = None  # (text, flag) -> value; None: by type
    shown_default: str | None = None                 # None: the default as it prints


def setting(default: Any, *, help: str, binding: bool = False, **shown: Any) -> Any:
    """A field of an engine's settings: its default, and how ``dse search`` offers it
    (``OptionHelp``'s fields: ``flag``, ``metavar``, ``choices``, ``parse``,
    ``shown_default``). Units go in the field name and the help, as everywhere.

    ``binding``: the engine's work in a study means something else under another value
    (ODiMO's target, EDEN's retraining), so a study that engine has run keeps it: a
    resume with another value is refused. A setting that only adds or steers work (the
    lambdas, the sampler) is not binding."""
    return field(default=default, metadata={_OPTION: OptionHelp(help=help, **shown),
                                            _BINDING: binding})


@dataclass(frozen=True)
class EngineOption:
    """One setting of one engine as an option of ``dse search``."""

    field: str        # the settings' field
    flag: str         # --name
    kind: type        # int, float or str: what the command line reads (before ``parse``)
    default: Any
    shown: OptionHelp

    def value(self, given: Any) -> Any:
        """The setting from what the command line read."""
        return given if self.shown.parse is None else self.shown.parse(given, self.flag)

    def choices(self) -> tuple[str, ...] | None:
        found = self.shown.choices
        return None if found is None else tuple(found() if callable(found) else found)

    def default_text(self) -> str:
        if self.shown.shown_default is not None:
            return self.shown.shown_default
        if isinstance(self.default, tuple):
            return ",".join(f"{value:g}" if isinstance(value, float) else str(value)
                            for value in self.default)
        return "none" if self.default is None else str(self.default)


Factory = Callable[[Any, Problem, "optuna.Study"], Engine]


@dataclass(frozen=True)
class EngineSpec:
    """An engine as the registry holds it.

    Attributes:
        name: what ``--engine`` takes.
        summary: one line for ``dse search --help`` (what it searches, how).
        settings: a frozen dataclass of ``setting(...)`` fields; its ``__post_init__``
            checks the values (one ``ConfigError`` line naming the option).
        factory: (settings, problem, study) -> the engine, built once the study is open.
        needs: what it needs of the search (``NEEDS``' keys).
        needs_of: what given settings add to ``needs`` (EDEN's own retraining: the probe).
        needs_of_why: what the refusal adds when a need ``needs_of`` added is not met (which
            setting asks for it, and how to do without).
        check: settings against the problem, before any training (a split that does not
            fit the network).
        removed: binding options the engine had and no longer has, by flag, with why: a
            study that bound one is refused on resume in one line saying so.
    """

    name: str
    summary: str
    settings: type
    factory: Factory
    needs: frozenset[str] = frozenset()
    needs_of: Callable[[Any], Iterable[str]] | None = None
    needs_of_why: str | None = None
    check: Callable[[Any, Problem], None] | None = None
    removed: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"engine {self.name}: unknown needs {sorted(unknown)}")
        if not (dataclasses.is_dataclass(self.settings)
                and self.settings.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            raise TypeError(f"engine {self.name}: settings must be a frozen dataclass")

    def options(self) -> tuple[EngineOption, ...]:
        hints = typing.get_type_hints(self.settings)
        found = []
        for each in dataclasses.fields(self.settings):
            shown = each.metadata.get(_OPTION)
            if shown is None:
                continue
            kind = str if shown.parse is not None else _option_type(hints[each.name])
            found.append(EngineOption(each.name, shown.flag or "--" + each.name.replace(
                "_", "-"), kind, each.default, shown))
        return tuple(found)

    def make_settings(self, given: Mapping[str, Any] | None = None) -> Any:
        """The settings from options given by flag (``{"--lambdas": "0.1,1"}``), the rest
        at their defaults; an option of another engine is refused, naming whose it is."""
        by_flag = {option.flag: option for option in self.options()}
        values = {}
        for flag, text in (given or {}).items():
            option = by_flag.get(flag)
            if option is None:
                owners = [spec.name for spec in engine_specs()
                          if any(o.flag == flag for o in spec.options())]
                whose = f"of --engine {', '.join(owners)}" if owners else "unknown"
                raise ConfigError(f"{flag} is an option {whose}, not of --engine "
                                  f"{self.name}")
            values[option.field] = option.value(text)
        return self.settings(**values)

    def binding(self, settings: Any) -> dict[str, Any]:
        """The binding settings (``setting(binding=True)``) by option flag, as JSON values."""
        flags = {option.field: option.flag for option in self.options()}
        return {flags.get(each.name, each.name): _json_value(getattr(settings, each.name))
                for each in dataclasses.fields(self.settings)
                if each.metadata.get(_BINDING)}

    def needs_for(self, settings: Any) -> frozenset[str]:
        extra = () if self.needs_of is None else self.needs_of(settings)
        return frozenset(self.needs) | frozenset(extra)

    def check_search(self, settings: Any, *, objectives: tuple[str, ...], probe: bool,
                     dram: str | None = None) -> None:
        """Refuse a search this engine cannot serve (``probe``: the built-in probe measures
        accuracy, not --accuracy-estimator; ``dram``: the device's name, "none" without),
        saying what it needs."""
        needs = self.needs_for(settings)
        missing = [need for need, met in (
            ("accuracy", "accuracy" in objectives),
            ("probe", probe or "accuracy" not in objectives),  # nothing to probe: no need
            ("dram", dram != "none")) if need in needs and not met]
        if missing:
            named = [NEEDS[need] for need in NEEDS if need in needs]
            wanted = (", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1
                      else named[0])
            why = ""
            if self.needs_of_why and missing[0] not in self.needs:
                why = f" ({self.needs_of_why})"
            raise ConfigError(f"--engine {self.name} needs {wanted}; not with "
                              f"{_what_is_missing(missing[0])}{why}")


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _what_is_missing(need: str) -> str:
    return {"accuracy": "objectives without accuracy",
            "probe": "--accuracy-estimator", "dram": "--dram none"}[need]


def _option_type(hint: Any) -> type:
    """int, float or str: what the command line reads for a field of this type."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = options[0]
    return kind if kind in (int, float, str, bool) else str


_REGISTRY: dict[str, EngineSpec] = {}
_loaded = False


def register(spec: EngineSpec) -> EngineSpec:
    """Add ``spec`` to the registry (again under its name: replaced); returns it."""
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    """Import the built-in engines' modules, then those that installed packages name under
    the entry-point group ``dse.engines`` (each registers its engines when imported); a
    package whose engine fails to load is reported and left out."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except Exception as exc:  # another package's code: any error, one warning
                logger.warning("engine plug-in %s (%s) not loaded: %s: %s", entry.name,
                               entry.value, type(exc).__name__, exc)


def engine_specs() -> tuple[EngineSpec, ...]:
    """Every registered engine: the built-in ones first, in ``BUILTIN_MODULES`` order."""
    _load_builtins()
    order = {name: i for i, name in enumerate(_REGISTRY)}  # registration order

    def builtin_first(spec: EngineSpec) -> tuple[int, int]:
        module = spec.settings.__module__
        found = [i for i, name in enumerate(BUILTIN_MODULES)
                 if module == name or module.startswith(name + ".")]
        return (found[0] if found else len(BUILTIN_MODULES), order[spec.name])
    return tuple(sorted(_REGISTRY.values(), key=builtin_first))


def engine_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in engine_specs())


def engine_spec(name: str) -> EngineSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown engine '{name}' (choose from {', '.join(engine_names())})")
    return _REGISTRY[name]


def make_engine(name: str, settings: Any = None, *, problem: Problem | None = None,
                study: "optuna.Study | None" = None, **given: Any) -> Engine:
    """The engine ``name`` with ``settings`` (its settings dataclass; default: from
    ``given`` by field name, e.g. ``sampler="nsga2"``, the rest at their defaults)."""
    spec = engine_spec(name)
    if settings is None:
        settings = spec.settings(**given)
    elif given:
        raise TypeError("give settings or their fields, not both")
    if not isinstance(settings, spec.settings):
        raise TypeError(f"engine {name} takes {spec.settings.__name__}, not "
                        f"{type(settings).__name__}")
    return spec.factory(settings, problem, study)  # type: ignore[arg-type]
