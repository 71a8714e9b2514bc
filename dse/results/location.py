"""Which study a results folder belongs to, stored so that it survives a change of
directory and a copy of the folder.

``config.json`` keeps the storage URL as given and, when the storage is a SQLite or journal
file inside the folder (the default), also its path relative to the folder
(``storage_in_folder``). Reading the folder resolves that path against the folder itself,
never against the working directory, so a folder that was moved or copied to another
machine opens its own study, and never a study of the same name elsewhere.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from dse.storage.storage import DEFAULT_DATABASE, journal_path, shown_url, sqlite_path
from hw_models.errors import ConfigError

IN_FOLDER_KEY = "storage_in_folder"


def _file_of(url: str) -> Path | None:
    return journal_path(url) or sqlite_path(url)


def storage_record(storage_url: str, folder: Path) -> dict[str, Any]:
    """What ``config.json`` stores about the storage (password masked)."""
    record: dict[str, Any] = {"storage": shown_url(storage_url)}
    path = _file_of(storage_url)
    if path is not None:
        try:
            record[IN_FOLDER_KEY] = str(path.resolve().relative_to(folder.resolve()))
        except ValueError:  # outside the folder: the URL, with an absolute path
            record["storage"] = _with_path(storage_url, path.resolve())
    return record


def _with_path(url: str, path: Path) -> str:
    return f"journal:{path}" if journal_path(url) is not None else f"sqlite:///{path}"


def resolve(document: dict[str, Any], folder: Path) -> str:
    """The storage URL of the study whose ``config.json`` is ``document`` in ``folder``."""
    url = document["storage"]
    if not isinstance(url, str):
        raise TypeError("storage is not text")
    inside = document.get(IN_FOLDER_KEY)
    if isinstance(inside, str):
        return _with_path(url, folder / inside)
    path = _file_of(url)
    if path is not None and not path.is_absolute():
        # written before the folder-relative path was kept: relative to where the study
        # was created, which is the folder's own file whenever that exists
        own = folder / path.name
        return _with_path(url, own) if own.is_file() else url
    return url


def check_own_database(url: str, folder: Path) -> None:
    """A folder holding its own study database (the default file) whose ``config.json``
    names another storage is refused: which of the two is the study's cannot be told, and
    reading the other would replace this folder's results with another study's."""
    own = folder / DEFAULT_DATABASE
    if own.is_file() and not same_storage(url, f"sqlite:///{own}"):
        raise ConfigError(f"{folder / 'config.json'} names the storage {shown_url(url)}, but "
                          f"the folder holds its own study database {own}: restore "
                          "config.json, or pass --storage URL --study NAME")


def only_study(results_dir: Path) -> Path:
    """The results folder of the only study in ``results_dir`` (a folder holding a
    ``config.json``); none or several: a ConfigError naming the choices."""
    studies = (sorted(path.name for path in results_dir.iterdir()
                      if (path / "config.json").is_file())
               if results_dir.is_dir() else [])
    if len(studies) == 1:
        return results_dir / studies[0]
    if not studies:
        raise ConfigError(f"no study in {results_dir}: give a study name, its results folder, "
                          "or --storage and --study (or --results-dir where the search wrote)")
    raise ConfigError(f"{len(studies)} studies in {results_dir} ({', '.join(studies)}): "
                      "name one")


def study_target(folder: Path, storage_url: str, study_name: str) -> str:
    """How a command names the study: its results folder when that folder's settings open
    it, else ``--storage URL --study NAME`` (a password shown masked, to fill in)."""
    if (folder / "config.json").is_file() and shown_url(storage_url) == storage_url:
        return shlex.quote(str(folder))
    return f"--storage {shlex.quote(shown_url(storage_url))} --study {shlex.quote(study_name)}"


def same_storage(first: str, second: str) -> bool:
    """Whether two URLs name the same storage (file storages by their resolved path)."""
    first_path, second_path = _file_of(first), _file_of(second)
    if first_path is not None or second_path is not None:
        return (first_path is not None and second_path is not None
                and (journal_path(first) is None) == (journal_path(second) is None)
                and first_path.resolve() == second_path.resolve())
    return shown_url(first) == shown_url(second)


def check_folder_is_ours(folder: Path, storage_url: str, study_name: str,
                         read: Any) -> None:
    """Refuse to write into a results folder that belongs to another storage's study of the
    same name (``read(config_path)`` -> ``(url, name)``)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return
    url, name = read(config_path)
    if name != study_name or not same_storage(url, storage_url):
        raise ConfigError(f"results folder {folder} belongs to study '{name}' in "
                          f"{shown_url(url)}, not to '{study_name}' in "
                          f"{shown_url(storage_url)}: pass another --results-dir or --study")
    gone = missing_file(url)
    if gone is not None:  # a new study in its place would overwrite the old one's results
        raise ConfigError(f"results folder {folder} holds study '{name}', whose database "
                          f"{gone} is gone: restore it, or pass another --results-dir or "
                          "--study")


def missing_file(storage_url: str) -> Path | None:
    """The file of a SQLite or journal storage when it does not exist, else None."""
    path = _file_of(storage_url)
    return path if path is not None and not path.exists() else None
