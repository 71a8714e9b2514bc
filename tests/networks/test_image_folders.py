"""Tiny-ImageNet and ImageFolder (VWW) loaders, on tiny generated image trees."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import cli
from hw_models import ConfigError
from networks.datasets import clear_dataset_cache, load_dataset


def write_image(path, size, value, suffix=".png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size, size, 3), value, dtype=np.uint8)
    pixels[0, 0] = (value * 7) % 256  # not flat: the files differ
    Image.fromarray(pixels).save(path.with_suffix(suffix))


def header_only_png(path, size):
    """A PNG whose header declares ``size`` x ``size`` pixels, and no pixel data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def vww_tree(root, *, per_class=10, size=96, classes=("non-person", "person")):
    for split, count in (("train", per_class), ("val", 3)):
        for label, name in enumerate(classes):
            for index in range(count):
                write_image(root / split / name / f"{index:03d}", size, 40 + 100 * label)
    return root


def tiny_imagenet_tree(folder, *, classes=200, per_class=2):
    root = folder / "tiny-imagenet-200"
    wnids = [f"n{index:08d}" for index in range(classes)]
    for label, wnid in enumerate(wnids):
        for index in range(per_class):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{index}", 64, label,
                        ".JPEG")
    lines = []
    for index, wnid in enumerate(wnids[:5]):
        write_image(root / "val" / "images" / f"val_{index}", 64, index, ".JPEG")
        lines.append(f"val_{index}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def test_an_image_folder_tree_becomes_three_splits(tmp_path):
    bundle = load_dataset("vww", vww_tree(tmp_path / "vww"))
    assert len(bundle.train) + len(bundle.val) == 20 and len(bundle.val) == 2
    assert len(bundle.test) == 6 and bundle.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert tuple(bundle.train.images.shape[1:]) == (3, 96, 96)
    assert bundle.train.images.dtype.is_floating_point is False
    # the class folders in sorted order: non-person 0 (pixels 40), person 1 (pixels 140)
    first = bundle.test.images[0]
    assert int(first[0, 1, 1]) == 40 and int(bundle.test.images[3][0, 1, 1]) == 140


def test_tiny_imagenet_in_its_standard_layout(tmp_path):
    bundle = load_dataset("tiny-imagenet", tiny_imagenet_tree(tmp_path))
    assert len(bundle.train) + len(bundle.val) == 400
    assert bundle.test.labels.tolist() == [0, 1, 2, 3, 4]
    assert tuple(bundle.test.images.shape[1:]) == (3, 64, 64)
    again = load_dataset("tiny-imagenet", tmp_path / "tiny-imagenet-200")  # or the folder itself
    assert len(again.test) == 5


@pytest.mark.parametrize("damage, words", [
    (lambda root: (root / "val").rename(root / "elsewhere"), "has no val/ folder"),
    (lambda root: [p.unlink() for p in (root / "train" / "person").iterdir()],
     "holds no images"),
    (lambda root: write_image(root / "train" / "person" / "odd", 80, 9), "mixed sizes"),
    (lambda root: (root / "train" / "person" / "bad.png").write_bytes(b"not an image"),
     "cannot read image"),
    (lambda root: (root / "val" / "person").rename(root / "val" / "people"),
     "differ from those of train/"),
    (lambda root: header_only_png(root / "train" / "person" / "huge.png", 15000),
     "cannot read image .*huge.png: .*exceeds limit"),  # Pillow: a decompression bomb
    (lambda root: header_only_png(root / "val" / "person" / "big.png", 10000),
     "big.png is 10000x10000, the dataset's images are 96x96"),  # refused undecoded
])
def test_a_damaged_tree_is_one_config_error(tmp_path, damage, words):
    root = vww_tree(tmp_path / "vww")
    damage(root)
    with pytest.raises(ConfigError, match=words):
        load_dataset("vww", root)


def test_annotations_that_are_not_utf8_are_one_config_error(tmp_path):
    tiny_imagenet_tree(tmp_path, per_class=1)
    annotations = tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    annotations.write_bytes(b"val_0.JPEG\tn\xff\xfe\t0\t0\t63\t63\n")
    with pytest.raises(ConfigError, match="val_annotations.txt is not UTF-8 text"):
        load_dataset("tiny-imagenet", tmp_path)


def test_a_huge_image_in_the_tree_is_one_line_and_nothing_is_written(tmp_path):
    root = vww_tree(tmp_path / "vww", per_class=2)
    header_only_png(root / "train" / "person" / "huge.png", 15000)
    result = CliRunner().invoke(cli, ["train", "--network", "mobilenetv1", "--dataset", "vww",
                                      "--data-dir", str(root), "--epochs", "1",
                                      "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("dse: error: cannot read image")
    assert not (tmp_path / "results").exists()


def test_a_tree_with_no_classes_or_the_wrong_count_is_refused(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(ConfigError, match="has no class folders"):
        load_dataset("vww", tmp_path / "empty")
    with pytest.raises(ConfigError, match="has 3 class folders, the dataset has 2"):
        load_dataset("vww", vww_tree(tmp_path / "three", classes=("a", "b", "c")))
    with pytest.raises(ConfigError, match="not the dataset's 96x96"):
        load_dataset("vww", vww_tree(tmp_path / "small", size=32))


def test_folder_datasets_need_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="vww needs --data-dir"):
        load_dataset("vww")
    with pytest.raises(ConfigError, match="--download fetches cifar10 only"):
        load_dataset("tiny-imagenet", tmp_path, download=True)
    with pytest.raises(ConfigError, match="is not a Tiny-ImageNet folder"):
        load_dataset("tiny-imagenet", tmp_path)


@pytest.mark.parametrize("args", [("--dataset", "vww"), ("--dataset", "vww", "--data-dir",
                                                          "/nonexistent/vww")])
def test_train_on_a_missing_tree_is_one_line(args, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--network", "mobilenetv1", *args,
                                      "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output


@pytest.mark.slow
def test_mobilenet_searches_a_vww_tree_end_to_end(tmp_path):
    root = vww_tree(tmp_path / "vww", per_class=16)
    result = CliRunner().invoke(cli, [
        "search", "--network", "mobilenetv1", "--dataset", "vww", "--data-dir", str(root),
        "--epochs", "1", "--trials", "5", "--probe-steps", "1", "--finetune-seeds", "1",
        "--error-seeds", "1", "--confirm-steps", "1", "--confirm-seeds", "1",
        "--results-dir", str(tmp_path / "results"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"COMPLETE": 5} and summary["confirmation"]["measured"] >= 4


@pytest.mark.slow
def test_resnet18_searches_a_tiny_imagenet_tree_end_to_end(tmp_path):
    folder = tiny_imagenet_tree(tmp_path / "data", per_class=1)
    result = CliRunner().invoke(cli, [
        "search", "--network", "resnet18", "--dataset", "tiny-imagenet", "--data-dir",
        str(folder), "--epochs", "1", "--trials", "5", "--probe-steps", "1",
        "--finetune-seeds", "1", "--error-seeds", "1", "--confirm-steps", "1",
        "--confirm-seeds", "1", "--results-dir", str(tmp_path / "results"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"COMPLETE": 5} and summary["confirmation"]["measured"] >= 4
