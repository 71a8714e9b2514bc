"""Loaders for datasets that come as folders of image files: Tiny-ImageNet and any
ImageFolder-style tree (Visual Wake Words as usually exported).

* **Tiny-ImageNet** in its standard layout (the ``tiny-imagenet-200`` folder or the folder
  holding it): ``train/<wnid>/images/*.JPEG`` (500 per class), ``val/images/*.JPEG`` with
  ``val/val_annotations.txt`` (file, wnid, box). The official test images have no labels, so
  dse's test split is the official validation set, and its validation split a seeded 10 % of
  the training images.
* **ImageFolder** trees (``vww``): ``train/<class>/*`` and ``val/<class>/*``, one folder per
  class, the classes in sorted order (for VWW: ``non-person``, ``person`` -> 0, 1). Test is
  ``val/``; validation a seeded 10 % of ``train/``.

Images are decoded with Pillow (JPEG, PNG, BMP), converted to RGB and kept as uint8. They are
not resized: every image must already have the dataset's size (64 x 64, 96 x 96), so that
what a network sees is what the user prepared; a tree with mixed sizes is refused, naming a
file of each size.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from hw_models.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_images(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """(N, 3, H, W) uint8 from image files that are all ``size`` (height, width)."""
    out = np.empty((len(paths), 3, *size), dtype=np.uint8)
    for index, path in enumerate(paths):
        (height, width), pixels = _decoded(path, size)
        if pixels is None:
            raise ConfigError(f"image {path} is {width}x{height}, the "
                              f"dataset's images are {size[1]}x{size[0]} (mixed sizes: "
                              f"resize the tree first, e.g. {paths[0]} is the right size)"
                              if index else
                              f"image {path} is {width}x{height}, not the "
                              f"dataset's {size[1]}x{size[0]}: resize the tree first")
        out[index] = pixels.transpose(2, 0, 1)
    return out


def _decoded(path: Path, size: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray | None]:
    """The image's (height, width) and its (H, W, 3) RGB pixels, None when it is not
    ``size``: the size is read from the header and a wrong one refused before decoding (a
    huge image, which Pillow takes for a decompression bomb, included)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # the size is checked before any decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                found = (image.height, image.width)
                return found, np.asarray(image.convert("RGB")) if found == size else None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def image_folder_splits(root: Path, *, classes: int, size: tuple[int, int]
                        ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(images, labels) of ``root/train`` and ``root/val``, one folder per class."""
    if not root.is_dir():
        raise ConfigError(f"data folder '{root}' does not exist")
    parts = []
    names: list[str] | None = None
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise ConfigError(f"'{root}' has no {split}/ folder (expected {split}/<class>/"
                              "images, one folder per class)")
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if not found:
            raise ConfigError(f"'{folder}' has no class folders (expected {split}/<class>/...)")
        if names is None:
            names = found
            if len(names) != classes:
                raise ConfigError(f"'{folder}' has {len(names)} class folders, the dataset "
                                  f"has {classes} classes")
        elif found != names:
            raise ConfigError(f"the class folders of '{folder}' differ from those of train/ "
                              f"({', '.join(sorted(set(found) ^ set(names))[:3])})")
        paths, labels = [], []
        for label, name in enumerate(names):
            files = _images_in(folder / name)
            if not files:
                raise ConfigError(f"class folder '{folder / name}' holds no images "
                                  f"({', '.join(IMAGE_SUFFIXES)})")
            paths += files
            labels += [label] * len(files)
        parts.append((read_images(paths, size), np.array(labels, dtype=np.int64)))
    return parts[0], parts[1]


def tiny_imagenet_splits(folder: Path, *, classes: int, size: tuple[int, int]
                         ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(images, labels) of Tiny-ImageNet's train and (official) val sets."""
    if not folder.is_dir():
        raise ConfigError(f"data folder '{folder}' does not exist")
    root = folder / TINY_IMAGENET_FOLDER if (folder / TINY_IMAGENET_FOLDER).is_dir() else folder
    train, annotations = root / "train", root / "val" / "val_annotations.txt"
    if not train.is_dir() or not annotations.is_file():
        raise ConfigError(f"'{folder}' is not a Tiny-ImageNet folder (expected "
                          f"{TINY_IMAGENET_FOLDER}/train/<wnid>/images/ and "
                          "val/val_annotations.txt)")
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
    if len(wnids) != classes:
        raise ConfigError(f"'{train}' has {len(wnids)} class folders, Tiny-ImageNet has "
                          f"{classes}")
    index = {wnid: label for label, wnid in enumerate(wnids)}
    paths, labels = [], []
    for wnid in wnids:
        images = train / wnid / "images"
        files = _images_in(images) if images.is_dir() else []
        if not files:
            raise ConfigError(f"class folder '{images}' holds no images")
        paths += files
        labels += [index[wnid]] * len(files)
    val_paths, val_labels = [], []
    try:
        text = annotations.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{annotations} is not UTF-8 text (byte {exc.start:,} is not): "
                          "restore the file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {annotations}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise ConfigError(f"{annotations} line {number}: expected 'file<TAB>wnid...' with a "
                              "wnid of train/")
        val_paths.append(root / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    if not val_paths:
        raise ConfigError(f"{annotations} lists no images")
    return ((read_images(paths, size), np.array(labels, dtype=np.int64)),
            (read_images(val_paths, size), np.array(val_labels, dtype=np.int64)))
