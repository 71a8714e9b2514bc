"""Atomic writes (a reader, or another worker, never sees half a file), and the check that
a folder can take them, made before any long work."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from hw_models.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A private temporary name to write to, renamed over ``path`` on success; a write the
    file system refuses is a ConfigError naming ``path`` (``path`` is left as it was)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        temporary.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {write_failure(exc)}") from None
    finally:
        with contextlib.suppress(OSError):  # its folder may be what failed
            temporary.unlink(missing_ok=True)


def write_failure(exc: OSError) -> str:
    """Why a write failed, in words for the message."""
    if isinstance(exc, IsADirectoryError):
        return "a folder of that name is in the way; remove it"
    return exc.strerror or type(exc).__name__


def write_json(path: Path, document: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def check_writable_folder(folder: str | Path, *, what: str, hint: str) -> None:
    """Refuse a folder that cannot be made or written: one that is a file, lies under a
    file, or whose nearest existing ancestor is read-only. Nothing is created, so that a
    command refused later leaves no empty folders behind. ``what`` names the folder in
    the message (``results folder``), ``hint`` says what to do (``pass another
    --results-dir``)."""
    folder = Path(folder)
    try:
        existing = _nearest_existing(folder)
        is_folder = existing.is_dir()
    except OSError as exc:  # a parent the user may not enter
        raise ConfigError(f"cannot reach {what} {folder}: {exc.strerror}; {hint}") from None
    if not is_folder:
        where = "" if existing == folder else f" cannot be created: {existing}"
        raise ConfigError(f"{what} {folder}{where} is a file, not a folder; {hint}")
    # os.access also sees a read-only file system; as root, write permissions do not bind
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" cannot be created: {existing}"
        raise ConfigError(f"{what} {folder}{where} is not writable; {hint}")


def check_not_folders(folder: Path, names: tuple[str, ...], *, hint: str) -> None:
    """None of the files dse writes into ``folder`` has a folder in its place."""
    for name in names:
        if (folder / name).is_dir():
            raise ConfigError(f"{folder / name} is a folder where dse writes a file; remove "
                              f"it or {hint}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` ends a relative path)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
