"""What each package may load (the layers of ``dse/README.md``).

For each rule a fresh interpreter imports every module of the rule's packages, one after
another, and reports what each import added to ``sys.modules``; the rule names what must not
be there. A failure names the module whose import first loaded the forbidden one.
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("cli", "dse", "hw_models", "networks")
# where a network is traced, trained or fine-tuned: the only modules of dse that load torch
RUNS_NETWORKS = ("dse.workload", "dse.accuracy.probe_estimator", "dse.commands.training")

CHILD = """
import importlib, json, sys
imports = []
for name in json.loads(sys.argv[1]):
    before = set(sys.modules)
    module = importlib.import_module(name)
    imports.append([name, module.__file__, sorted(set(sys.modules) - before)])
print(json.dumps(imports))
"""


@dataclass(frozen=True)
class Rule:
    """The modules of ``packages`` (all but ``skip``) must not load ``forbidden`` (names and
    their submodules); ``third_party``, when given, lists every installed package (neither
    the standard library nor this project's) they may load."""

    name: str
    packages: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    third_party: tuple[str, ...] | None = None


RULES = (
    # tomli: the standard library's tomllib on Python 3.10
    Rule("hw_models", ("hw_models",), forbidden=("cli", "dse", "networks"),
         third_party=("numpy", "tomli")),
    # the fine-tune probe's cache, keys and records are dse's (dse/accuracy/): networks
    # measures, and takes every setting as a plain value
    Rule("networks", ("networks",),
         forbidden=("cli", "dse", "matplotlib", "optuna", "pandas")),
    Rule("dse.storage", ("dse.storage",),
         forbidden=("dse.commands", "dse.engines", "networks", "torch")),
    Rule("dse.results", ("dse.results",),
         forbidden=("dse.commands", "dse.engines", "networks", "torch")),
    # what `dse pareto`, `show`, `status`, `tolerance` and `repair-journal` import (the
    # commands themselves, run: tests/dse/results/test_torch_free.py)
    Rule("read-side commands", ("cli", "dse.commands.inspect", "dse.commands.text"),
         forbidden=("networks", "torch")),
    Rule("dse without networks", ("dse",), skip=RUNS_NETWORKS, forbidden=("networks", "torch")),
)


def modules_of(package: str) -> list[str]:
    """The package and its modules, found on disk (so that listing them imports nothing)."""
    folder = ROOT.joinpath(*package.split("."))
    if not folder.is_dir():
        return [package]
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def fresh_imports(modules: list[str]) -> list[tuple[str, str, list[str]]]:
    """For each of ``modules``, imported in this order by a new interpreter: its file and
    the modules its import loaded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(modules)], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [tuple(entry) for entry in json.loads(result.stdout)]


def matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def breaches(rule: Rule, loaded: list[str]) -> list[str]:
    """What of ``loaded`` the rule does not allow: forbidden names, other installed packages."""
    found = {prefix for prefix in rule.forbidden for name in loaded if matches(name, (prefix,))}
    if rule.third_party is not None:
        tops = {name.split(".")[0] for name in loaded}
        found |= {top for top in tops & set(installed_packages())
                  if top not in rule.third_party and top not in FIRST_PARTY}
    return sorted(found)


@functools.cache
def installed_packages() -> dict[str, list[str]]:
    """Every top-level name an installed distribution provides (not the interpreter's own
    modules, such as those Cython or sysconfig make)."""
    return importlib.metadata.packages_distributions()


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_packages_load_only_what_their_layer_allows(rule: Rule) -> None:
    modules = [name for package in rule.packages for name in modules_of(package)
               if not matches(name, rule.skip)]
    problems = []
    for module, path, loaded in fresh_imports(modules):
        assert Path(path).resolve().is_relative_to(ROOT), f"{module} came from {path}"
        problems += [f"importing {module} loads {name}" for name in breaches(rule, loaded)]
    assert not problems, f"{rule.name} may not load these:\n" + "\n".join(problems)


# what needs no torch in networks/ (whose __init__ loads torch): loaded from its file by an
# interpreter in which importing torch fails
TORCH_FREE = ("networks/data_identity.py",)
LOAD_FILE = """
import importlib.util, json, sys
sys.modules["torch"] = None
spec = importlib.util.spec_from_file_location("loaded", sys.argv[1])
module = sys.modules["loaded"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(name for name, found in sys.modules.items() if found is not None
                        and name.split(".")[0] in ("torch", "networks", "dse", "cli"))))
"""


@pytest.mark.parametrize("path", TORCH_FREE)
def test_torch_free_modules_of_networks_load_without_torch(path: str) -> None:
    result = subprocess.run([sys.executable, "-c", LOAD_FILE, str(ROOT / path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
