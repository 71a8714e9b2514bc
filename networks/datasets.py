"""Datasets: their shapes (channels, size, classes) and loaders for the ones with data here.

``DATASETS`` holds the shape of every dataset a network can be built for; ``load_dataset``
reads the ones that have a loader (``digits``, ``cifar10``, ``synthetic``) into a
:class:`DataBundle` of train / validation / test splits. Splits are fixed by ``SPLIT_SEED`` so
that every run (and every user) trains and evaluates on the same images.

Images are kept in their raw pixel scale (uint8, 0..16 for digits and 0..255 otherwise);
:meth:`DataBundle.batches` normalises them with the train split's per-channel mean and standard
deviation, after augmentation, so zero padding is black in the raw image as in torchvision.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import pickle
import tarfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hw_models.errors import ConfigError
from networks.data_identity import DataSource, source_of


@dataclass(frozen=True)
class DatasetSpec:
    """Input shape (channels, height, width) and class count of a dataset."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (
        DatasetSpec("digits", (1, 8, 8), 10, "UCI handwritten digits, 1797 8x8 grey images"),
        DatasetSpec("cifar10", (3, 32, 32), 10, "CIFAR-10, 32x32 colour images"),
        DatasetSpec("tiny-imagenet", (3, 64, 64), 200, "Tiny-ImageNet, 64x64 colour images"),
        DatasetSpec("vww", (3, 96, 96), 2, "Visual Wake Words, 96x96 colour images"),
        DatasetSpec("synthetic", (3, 16, 16), 4, "random tensors for tests"),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset '{name}' (known: {', '.join(sorted(DATASETS))})"
        ) from None


DIGITS_FILE = Path(__file__).parent / "data" / "digits.csv.gz"
SPLIT_SEED = 0  # fixed on purpose: results are only comparable on the same split
DIGITS_FRACTIONS = (0.70, 0.15, 0.15)  # train, val, test
CIFAR10_VAL_FRACTION = 0.10  # of the 50 000 training images
SYNTHETIC_SIZES = (512, 128, 128)  # train, val, test

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_ROW_PIXELS = 3 * 32 * 32

AUGMENTATIONS = ("none", "shift", "crop-flip")
SPLITS = ("train", "val", "test")
# The two halves of the validation split, images of even and of odd index: EDEN
# characterises tolerances on one and validates the composed mapping on the other
# (``dse.engines.eden``), so that the point it keeps is not chosen and judged on the same
# images. Deterministic (by index), disjoint, together the whole validation split.
VALIDATION_HALVES = {"val-a": 0, "val-b": 1}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Split:
    """Images and labels of one split.

    Attributes:
        images: (N, C, H, W), uint8 or float32, raw pixel scale (not normalised).
        labels: (N,), int64 class indices.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DataBundle:
    """The three splits of a dataset plus what is needed to feed them to a network.

    A bundle may be shared through the loader's cache: do not modify its tensors in place.

    Attributes:
        spec: shape and class count.
        train, val, test: the splits.
        mean, std: per channel, raw pixel units, computed on the train split.
        augment: training augmentation, one of ``AUGMENTATIONS``: "none"; "shift" (random
            translation by up to 1 pixel, no flip); "crop-flip" (random crop of the image
            zero-padded by 4 pixels, then random horizontal flip).
        source: the folder it was read from and that folder's listing before it was read
            (None for the built-in datasets): what ``networks.data_identity`` caches the
            data's digest by.
    """

    spec: DatasetSpec
    train: Split
    val: Split
    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str
    source: DataSource | None = None

    def split(self, name: str) -> Split:
        """The split called ``name`` ("train", "val", "test", or a half of the validation
        split: ``VALIDATION_HALVES``)."""
        if name in VALIDATION_HALVES:
            start = VALIDATION_HALVES[name]
            return Split(self.val.images[start::2], self.val.labels[start::2])
        if name not in SPLITS:
            raise ConfigError(f"unknown split '{name}' (known: "
                              f"{', '.join((*SPLITS, *VALIDATION_HALVES))})")
        return getattr(self, name)

    def num_batches(self, split: str, batch_size: int) -> int:
        """Batches per epoch of ``split``; the last one may be smaller."""
        _check_batch_size(batch_size)
        return math.ceil(len(self.split(split)) / batch_size)

    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int | None = None,
                augment: bool = False, device: str | torch.device = "cpu",
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``split`` in batches of ``batch_size`` (the last one may be smaller).

        Shuffling and augmentation draw only from a ``torch.Generator`` seeded with ``seed``,
        so the same seed gives the same batches; ``seed=None`` draws a fresh seed.

        Yields:
            images: (B, C, H, W) float32 on ``device``, augmented (if ``augment``) and then
                normalised to (x - mean) / std.
            labels: (B,) int64 on ``device``.
        """
        data = self.split(split)
        _check_batch_size(batch_size)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        augmenter = _AUGMENTERS[self.augment] if augment else None
        return self._iterate(data, batch_size, shuffle, generator, augmenter, torch.device(device))

    def _iterate(self, data: Split, batch_size: int, shuffle: bool, generator: torch.Generator,
                 augmenter: Augmenter | None, device: torch.device,
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(
            len(data))
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        for index in order.split(batch_size):
            # Move raw (often uint8) pixels first: four times fewer bytes than float32.
            images = data.images[index].to(device).float()
            if augmenter is not None:
                images = augmenter(images, generator)
            yield (images - mean) / std, data.labels[index].to(device)


def clear_dataset_cache() -> None:
    """Forget the bundles that ``load_dataset`` keeps in memory."""
    _load_cached.cache_clear()


def load_dataset(name: str, data_dir: str | Path | None = None, *, download: bool = False,
                 progress: Progress | None = None) -> DataBundle:
    """Load dataset ``name`` into train / val / test splits; cached in memory.

    Args:
        name: ``digits`` (packaged with dse), ``cifar10``, ``tiny-imagenet``, ``vww`` (folders
            of image files: ``networks.image_folders``) or ``synthetic`` (generated, for
            tests).
        data_dir: the folder of cifar10 (holding ``cifar-10-batches-py/``, or that folder),
            tiny-imagenet (holding ``tiny-imagenet-200/``, or that folder) or vww
            (``train/<class>/``, ``val/<class>/``).
        download: cifar10 only: fetch and unpack the archive into ``data_dir`` (default
            ``$XDG_CACHE_HOME/dse``) if the batches are not there.
        progress: called with (bytes done, bytes total; 0 if unknown) while downloading.

    Raises:
        ConfigError: unknown dataset, no loader, missing or corrupt files, failed download.
    """
    spec = get_dataset_spec(name)
    if spec.name not in _LOADERS:
        raise ConfigError(f"dataset '{name}' has no loader here: only its shape is known "
                          "(use it with dse layers / dse cost)")
    if spec.name not in FOLDER_DATASETS:
        return _load_cached(spec.name, None)
    if spec.name != "cifar10":
        if download:
            raise ConfigError(f"--download fetches cifar10 only; give {name} with --data-dir")
        if data_dir is None:
            raise ConfigError(f"{name} needs --data-dir ({FOLDER_DATASETS[name]})")
        return _load_cached(spec.name, Path(data_dir).expanduser().resolve())
    if data_dir is None and not download:
        raise ConfigError("cifar10 needs --data-dir (or --download)")
    folder = Path(data_dir).expanduser().resolve() if data_dir is not None else _cache_dir()
    if download:
        _ensure_cifar10(folder, progress)
    # Keyed by the batches folder, so both ways of naming it share one cache entry.
    return _load_cached(spec.name, _cifar10_folder(folder))


@functools.lru_cache(maxsize=4)  # a full CIFAR-10 bundle is about 180 MB
def _load_cached(name: str, data_dir: Path | None) -> DataBundle:
    if data_dir is None:
        return _LOADERS[name](data_dir)
    source = source_of(data_dir)  # before reading: a file written meanwhile is noticed
    return replace(_LOADERS[name](data_dir), source=source)


def _cache_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser().resolve() / "dse"


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")


# ---- bundle construction ------------------------------------------------------------------

def _make_bundle(name: str, splits: list[tuple[np.ndarray, np.ndarray]],
                 augment: str) -> DataBundle:
    """Bundle (images (N, C, H, W) uint8, labels (N,)) for train, val, test, in that order."""
    train, val, test = (Split(torch.from_numpy(np.ascontiguousarray(images)),
                              torch.from_numpy(labels.astype(np.int64)))
                        for images, labels in splits)
    mean, std = _channel_stats(train.images)
    return DataBundle(DATASETS[name], train, val, test, mean, std, augment)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of (N, C, H, W) images."""
    channels = images.shape[1]
    sums = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    # Chunks keep the float64 copy small (all of CIFAR-10 in float64 would be 1.2 GB).
    for chunk in images.split(1024):
        pixels = chunk.to(torch.float64)
        sums += pixels.sum(dim=(0, 2, 3))
        squares += pixels.square().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = sums / count
    std = (squares / count - mean.square()).clamp(min=1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _split_indices(count: int, fractions: tuple[float, ...]) -> list[np.ndarray]:
    """Cut a permutation of range(count), seeded with SPLIT_SEED, into parts of ``fractions``.

    A plain (not stratified) permutation: part sizes are exact, class balance holds only in
    expectation.
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    bounds = np.round(np.cumsum(fractions)[:-1] * count).astype(int)
    return np.split(order, bounds)


# ---- digits -------------------------------------------------------------------------------

def _load_digits(_: Path | None) -> DataBundle:
    """The packaged UCI digits: (1797, 1, 8, 8) pixels 0..16, 70/15/15 % split."""
    source = DIGITS_FILE
    try:
        with source.open("rb") as packed, gzip.open(packed, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the packaged digits data '{source}' "
                          f"(is dse installed with its package data?): {error}") from None
    if table.shape[1] != 65:
        raise ConfigError(f"'{source}' has {table.shape[1]} columns, expected 64 pixels + label")
    images = table[:, :64].astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = table[:, 64]
    parts = _split_indices(len(labels), DIGITS_FRACTIONS)
    return _make_bundle("digits", [(images[part], labels[part]) for part in parts], "shift")


# ---- synthetic ----------------------------------------------------------------------------

def _load_synthetic(_: Path | None) -> DataBundle:
    """Four classes, each a smooth random template (3, 16, 16) plus pixel noise, 0..255."""
    spec = DATASETS["synthetic"]
    channels, height, width = spec.input_shape
    rng = np.random.default_rng(SPLIT_SEED)
    coarse = torch.from_numpy(rng.normal(size=(spec.num_classes, channels, 4, 4)))
    # Upsampling a 4x4 grid keeps the templates low-frequency, so small convolutions see them.
    templates = F.interpolate(coarse, size=(height, width), mode="bilinear",
                              align_corners=False).numpy()
    count = sum(SYNTHETIC_SIZES)
    labels = rng.permutation(np.arange(count) % spec.num_classes)
    noise = rng.normal(size=(count, channels, height, width))
    pixels = 128.0 + 48.0 * templates[labels] + 32.0 * noise
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    parts = np.split(np.arange(count), np.cumsum(SYNTHETIC_SIZES)[:-1])
    return _make_bundle("synthetic", [(images[part], labels[part]) for part in parts], "none")


# ---- CIFAR-10 -----------------------------------------------------------------------------

def _load_cifar10(folder: Path | None) -> DataBundle:
    """CIFAR-10 python batches in ``folder``: train minus a seeded 10 % validation split, test."""
    assert folder is not None  # load_dataset always passes one for cifar10
    batches = [_read_cifar10_batch(folder / file) for file in CIFAR10_TRAIN_FILES]
    images = np.concatenate([batch[0] for batch in batches])
    labels = np.concatenate([batch[1] for batch in batches])
    train, val = _split_indices(len(labels), (1 - CIFAR10_VAL_FRACTION, CIFAR10_VAL_FRACTION))
    test = _read_cifar10_batch(folder / CIFAR10_TEST_FILE)
    splits = [(images[train], labels[train]), (images[val], labels[val]), test]
    return _make_bundle("cifar10", splits, "crop-flip")


def _cifar10_folder(data_dir: Path) -> Path:
    """The folder holding the batches: ``data_dir/cifar-10-batches-py`` or ``data_dir``."""
    if not data_dir.is_dir():
        raise ConfigError(f"cifar10 data folder '{data_dir}' does not exist")
    nested = data_dir / CIFAR10_FOLDER
    folder = nested if nested.is_dir() else data_dir
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [name for name in names if not (folder / name).is_file()]
    if len(missing) == len(names):
        raise ConfigError(f"'{data_dir}' holds no CIFAR-10 batches (expected {CIFAR10_FOLDER}/"
                          "data_batch_1..5 and test_batch; --download fetches them)")
    if missing:
        raise ConfigError(f"cifar10 batch file '{missing[0]}' is missing in '{folder}'")
    return folder


def _has_cifar10(data_dir: Path) -> bool:
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    return any(all((folder / name).is_file() for name in names)
               for folder in (data_dir / CIFAR10_FOLDER, data_dir))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of lists and numpy arrays only, so a bad file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in pickle protocols 0-2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    try:
        with path.open("rb") as file:
            batch = _ArrayUnpickler(file, encoding="bytes").load()
    except Exception as error:  # garbage bytes make pickle raise almost any exception type
        raise ConfigError(f"cifar10 batch file '{path}' is corrupt: does not unpickle "
                          f"({type(error).__name__})") from None
    data, labels = _batch_arrays(batch)
    problem = _batch_problem(data, labels)
    if problem:
        raise ConfigError(f"cifar10 batch file '{path}' is corrupt: {problem}")
    # A row is 1024 R, then 1024 G, then 1024 B values, each plane row-major 32 x 32.
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _batch_arrays(batch: Any) -> tuple[Any, Any]:
    """The ``data`` and ``labels`` entries of an unpickled batch, whatever its key type."""
    if not isinstance(batch, dict):
        return None, None
    entries = {key.decode("latin1") if isinstance(key, bytes) else key: value
               for key, value in batch.items()}
    return entries.get("data"), entries.get("labels")


def _batch_problem(data: Any, labels: Any) -> str:
    """What is wrong with a batch's arrays, or "" if nothing."""
    if not isinstance(data, np.ndarray) or not isinstance(labels, (list, np.ndarray)):
        return "no 'data' array and 'labels' list"
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR10_ROW_PIXELS:
        return f"'data' is {data.dtype} {data.shape}, expected uint8 (N, {CIFAR10_ROW_PIXELS})"
    if len(labels) != data.shape[0]:
        return f"{len(labels)} labels for {data.shape[0]} images"
    label_array = np.asarray(labels)
    if label_array.dtype.kind not in "iu" or not np.all((label_array >= 0) & (label_array <= 9)):
        return "labels are not integers 0..9"
    return ""


# ---- CIFAR-10 download --------------------------------------------------------------------

def _ensure_cifar10(data_dir: Path, progress: Progress | None) -> None:
    """Download and unpack CIFAR-10 into ``data_dir`` unless its batches are already there."""
    if _has_cifar10(data_dir):
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the cifar10 data folder '{data_dir}': "
                          f"{error.strerror}") from None
    archive = data_dir / CIFAR10_ARCHIVE
    # An archive left by an earlier run is reused only if it is complete.
    if not (archive.is_file() and _md5(archive) == CIFAR10_MD5):
        _fetch(CIFAR10_URL, archive, progress)
        digest = _md5(archive)
        if digest != CIFAR10_MD5:
            archive.unlink()
            raise ConfigError(f"cifar10 download from {CIFAR10_URL} has MD5 {digest}, expected "
                              f"{CIFAR10_MD5}; removed it")
    _extract_tar(archive, data_dir)


def _fetch(url: str, target: Path, progress: Progress | None) -> None:
    """Copy ``url`` to ``target`` through a temporary file, so a failure leaves nothing."""
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as file:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                file.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        partial.replace(target)
    except (OSError, ValueError, http.client.HTTPException) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise ConfigError(f"cifar10 download from {url} failed: {reason}") from None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_tar(archive: Path, data_dir: Path) -> None:
    """Unpack ``archive`` into ``data_dir``; refuse links, devices and paths escaping it."""
    root = data_dir.resolve()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                target = (root / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
                    raise ConfigError(f"cifar10 archive '{archive}' has an unsafe member "
                                      f"'{member.name}'")
            # The "data" filter (Python >= 3.10.12 / 3.11.4) double-checks the same.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:
                tar.extractall(root, members=members)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ConfigError(f"cannot unpack the cifar10 archive '{archive}': {error}") from None


# ---- augmentation -------------------------------------------------------------------------

Augmenter = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _random_translate(images: torch.Tensor, pad: int,
                      generator: torch.Generator) -> torch.Tensor:
    """Crop each of (N, C, H, W) ``images`` at a random offset from its ``pad``-zero-padded copy.

    Equivalent to a random shift by -pad..pad pixels along each axis, filling with zeros.
    """
    count, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, count), generator=generator).to(device)
    rows = offsets[0, :, None] + torch.arange(height, device=device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(width, device=device)  # (N, W)
    batch = torch.arange(count, device=device).view(-1, 1, 1, 1)
    channel = torch.arange(channels, device=device).view(1, -1, 1, 1)
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each of (N, C, H, W) ``images`` left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return _random_translate(images, 1, generator)


def _crop_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return _random_flip(_random_translate(images, 4, generator), generator)


def _no_augmentation(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return images


_AUGMENTERS: dict[str, Augmenter] = {
    "none": _no_augmentation, "shift": _shift, "crop-flip": _crop_flip,
}
def _load_folder_dataset(name: str, folder: Path | None) -> DataBundle:
    """Tiny-ImageNet or an ImageFolder tree: train minus a seeded validation split, and the
    tree's own validation set as the test split (see ``networks.image_folders``)."""
    from networks import image_folders

    assert folder is not None  # load_dataset always passes one
    spec = DATASETS[name]
    size = spec.input_shape[1:]
    reader = (image_folders.tiny_imagenet_splits if name == "tiny-imagenet"
              else image_folders.image_folder_splits)
    (images, labels), test = reader(folder, classes=spec.num_classes, size=size)
    train, val = _split_indices(len(labels), (1 - FOLDER_VAL_FRACTION, FOLDER_VAL_FRACTION))
    return _make_bundle(name, [(images[train], labels[train]), (images[val], labels[val]),
                               test], "crop-flip")


FOLDER_VAL_FRACTION = 0.10  # of the training images, for datasets given as image folders
FOLDER_DATASETS = {  # datasets read from --data-dir, and what the folder holds
    "cifar10": "the python batches", "tiny-imagenet": "tiny-imagenet-200/ or its contents",
    "vww": "train/<class>/ and val/<class>/ image folders",
}
_LOADERS: dict[str, Callable[[Path | None], DataBundle]] = {
    "digits": _load_digits, "cifar10": _load_cifar10, "synthetic": _load_synthetic,
    "tiny-imagenet": functools.partial(_load_folder_dataset, "tiny-imagenet"),
    "vww": functools.partial(_load_folder_dataset, "vww"),
}
