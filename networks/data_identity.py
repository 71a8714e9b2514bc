"""A dataset's identity (no torch): the SHA-256 of the data a network sees, every split's
images and labels as loaded, so that a checkpoint, a probe result or a study made on other
data is never taken for one made on this data.

The digest covers what training and evaluation read and nothing else: the split names, each
array's dtype and shape and its bytes. The same files in another folder give the same
digest; the same images under swapped class folders, another subset or another split do
not. Hashing a large dataset's arrays takes seconds, so the digest of a dataset read from a
folder is cached in a small JSON file (``data_sha256.json`` under the results folder), keyed
by the folder and the path, size and modification time of every file under it, up to four
levels deep (its *listing*, taken before the files are read): while no file is added,
removed, resized or written, the digest is read back; after that it is computed again.

The built-in datasets (``digits``, ``synthetic``) are read from no folder: their data is
dse's own and its digest is pinned (``FIXED_DATA_SHA256``). Cache keys name the data by
``data_key``, which is None for that fixed data, so that the keys of dse 0.3.0 (which named
a dataset by its name alone) stay valid for it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from networks.datasets import DataBundle

log = logging.getLogger(__name__)

DIGEST_CACHE_FILE = "data_sha256.json"  # under the results folder
DIGEST_CACHE_FORMAT = 1
LISTING_DEPTH = 4  # files this deep under the folder count (train/<wnid>/images/<file>)
SPLIT_NAMES = ("train", "val", "test")

# The data of the built-in datasets as dse 0.3.0 loaded it (and still does:
# tests/networks/test_data_identity.py)
FIXED_DATA_SHA256 = {
    "digits": "00d1e11e78bd9b6f11b2b068abd933bd4cabbb10ae248add7612cc7d231fe371",
    "synthetic": "45c741dbacecfc9ea457d99ed4cdd6e8cec75ad521d77ca476c6bf9c9f71704a",
}

_KNOWN: dict[tuple[str, str, str], str] = {}  # (dataset, folder, listing) -> digest


@dataclass(frozen=True)
class DataSource:
    """The folder a dataset was read from and its ``listing`` taken just before."""

    folder: Path
    listing: str


def source_of(folder: Path) -> DataSource:
    """``folder`` with its listing as it is now (take it before reading the files, so that
    a file written while they are read makes the next listing differ)."""
    return DataSource(folder, folder_listing(folder))


def folder_listing(folder: Path) -> str:
    """SHA-256 of the relative path, size and modification time (ns) of every file up to
    ``LISTING_DEPTH`` levels under ``folder`` (links followed); a folder that cannot be read
    lists what can be (a loader reports what is missing)."""
    digest = hashlib.sha256()
    for relative, status in sorted(_files(folder, "", LISTING_DEPTH)):
        digest.update(json.dumps([relative, status.st_size, status.st_mtime_ns]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _files(folder: Path, prefix: str, depth: int) -> Iterator[tuple[str, os.stat_result]]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        relative = f"{prefix}{entry.name}"
        try:
            if entry.is_file():
                yield relative, entry.stat()
            elif entry.is_dir() and depth > 1:
                yield from _files(Path(entry.path), f"{relative}/", depth - 1)
        except OSError:  # gone or unreadable since it was listed
            continue


def arrays_sha256(splits: Iterable[tuple[str, Any, Any]]) -> str:
    """SHA-256 of (split name, images, labels) triples: for each array in order, a header
    (split, its role, dtype, shape) and its bytes, little-endian and row-major, each
    length-prefixed. Arrays are numpy arrays or anything ``np.asarray`` reads (CPU tensors)."""
    digest = hashlib.sha256()
    for name, images, labels in splits:
        for role, values in (("images", images), ("labels", labels)):
            array = np.asarray(values)
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            header = json.dumps([name, role, array.dtype.str, list(array.shape)]).encode()
            for part in (header, array.reshape(-1).view(np.uint8).data):
                digest.update(len(part).to_bytes(8, "little"))
                digest.update(part)
    return digest.hexdigest()


def bundle_sha256(bundle: DataBundle) -> str:
    """The digest of every split of ``bundle`` (``arrays_sha256``), computed now."""
    return arrays_sha256((name, bundle.split(name).images, bundle.split(name).labels)
                         for name in SPLIT_NAMES)


def data_sha256(bundle: DataBundle, *, cache_file: Path | None = None) -> str:
    """The identity of ``bundle``'s data. For data read from a folder, the digest kept for
    its listing (in this process, then in ``cache_file``) when there is one, else computed
    and kept (a cache file that cannot be written only costs the next run the hashing)."""
    source = bundle.source
    if source is None:
        return bundle_sha256(bundle)
    known = (bundle.spec.name, str(source.folder), source.listing)
    if known in _KNOWN:
        return _KNOWN[known]
    entries = _read_cache(cache_file)
    entry = entries.get(_entry_name(*known[:2]))
    if isinstance(entry, dict) and entry.get("listing") == source.listing \
            and isinstance(entry.get("data_sha256"), str):
        digest = entry["data_sha256"]
    else:
        digest = bundle_sha256(bundle)
        entries[_entry_name(*known[:2])] = {"listing": source.listing, "data_sha256": digest}
        _write_cache(cache_file, entries)
    _KNOWN[known] = digest
    return digest


def data_key(dataset: str, data_sha256: str | None) -> str | None:
    """The data as cache keys name it: None for a built-in dataset's fixed data (its name
    says it all, as it did in dse 0.3.0) or for unknown data, else its digest."""
    if data_sha256 is None or FIXED_DATA_SHA256.get(dataset) == data_sha256:
        return None
    return data_sha256


def forget_digests() -> None:
    """Forget the digests this process computed or read (the cache files stay)."""
    _KNOWN.clear()


def _entry_name(dataset: str, folder: str) -> str:
    return f"{dataset} {folder}"


def _read_cache(cache_file: Path | None) -> dict[str, Any]:
    """The cache's entries; none when it is absent, unreadable or of another format."""
    if cache_file is None:
        return {}
    try:
        document = json.loads(Path(cache_file).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("format") != DIGEST_CACHE_FORMAT \
            or not isinstance(document.get("folders"), dict):
        return {}
    return document["folders"]


def _write_cache(cache_file: Path | None, entries: dict[str, Any]) -> None:
    """Write the entries atomically (workers may share the file: the last one wins)."""
    if cache_file is None:
        return
    path = Path(cache_file)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"format": DIGEST_CACHE_FORMAT, "folders": entries},
                                        indent=1, sort_keys=True))
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        log.warning("cannot keep the data's digest in %s (%s): it is computed again next "
                    "time", path, exc.strerror)
