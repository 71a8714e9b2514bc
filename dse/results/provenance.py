"""Where a result came from: the resolved settings, library versions, git revision, and one
line per run or worker that joined a study."""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import dse
from dse.config import SearchConfig
from dse.host import worker_identity
from dse.metrics import BY_NAME
from dse.results.files import write_failure
from hw_models.errors import ConfigError

LIBRARIES = ("optuna", "numpy", "pandas", "torch")


def resolved_config(*, study: str, storage_shown: str, config: Any, identity: dict[str, Any],
                    objectives: tuple[str, ...], baseline_accuracy: float | None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of a run (``config``: a ``SearchConfig``, recorded flat, or another
    dataclass; passwords already masked by the caller in ``storage_shown`` and
    ``extra``)."""
    settings = config.flat() if isinstance(config, SearchConfig) else dataclasses.asdict(config)
    return {
        "study": study, "storage": storage_shown,
        "config": {**settings, **(extra or {})},
        "identity": identity,
        "objectives": {name: [BY_NAME[name].direction, BY_NAME[name].column]
                       for name in objectives},
        "baseline_accuracy": baseline_accuracy,
        "versions": versions(),
        "git_revision": git_revision(),
    }


def versions() -> dict[str, str | None]:
    """dse, Python and the libraries that shape results (read without importing them)."""
    found: dict[str, str | None] = {"dse": dse.__version__,
                                    "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def append_run(path: Path, record: dict[str, Any]) -> None:
    """One line per run or worker that joined the study (its sampler, seed, trials, ...):
    config.json keeps the settings of the run that created it."""
    line = json.dumps({"started": datetime.datetime.now().isoformat(timespec="seconds"),
                       "worker": worker_identity(), **record}, default=str)
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {write_failure(exc)}") from None
