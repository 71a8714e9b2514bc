"""A dataset's identity: the digest of its loaded data, the same for the same data wherever
it lies, another for other data (swapped class folders, other CIFAR-10 labels), cached by
the folder's listing; the built-in datasets keep the keys of dse 0.3.0."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from networks import data_identity
from networks.data_identity import (
    DIGEST_CACHE_FILE,
    FIXED_DATA_SHA256,
    arrays_sha256,
    data_key,
    data_sha256,
)
from networks.datasets import (
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES,
    clear_dataset_cache,
    load_dataset,
)

pytestmark = pytest.mark.usefixtures("fresh_data_caches")


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The datasets whose arrays were hashed (not read back from a cache)."""
    calls: list[str] = []
    original = data_identity.bundle_sha256

    def counting(bundle):
        calls.append(bundle.spec.name)
        return original(bundle)

    monkeypatch.setattr(data_identity, "bundle_sha256", counting)
    return calls


def vww_tree(root, *, per_class=4, seed=0):
    """A 96x96 ImageFolder tree: ``per_class`` training and 2 test images per class, each
    image its own random pixels."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("val", 2)):
        for name in ("non-person", "person"):
            (root / split / name).mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{index:03d}.png")
    return root


def swapped(tree, target):
    """A copy of a vww tree with its two class folders swapped: the same images, the
    other labels."""
    shutil.copytree(tree, target)
    for split in ("train", "val"):
        (target / split / "person").rename(target / split / "kept")
        (target / split / "non-person").rename(target / split / "person")
        (target / split / "kept").rename(target / split / "non-person")
    return target


def cifar10_folder(folder, *, labels_seed: int):
    """Six CIFAR-10 batch files of four images each; the images fixed, the labels drawn
    with ``labels_seed``."""
    pixels = np.random.default_rng(0)
    labels = np.random.default_rng(labels_seed)
    folder.mkdir(parents=True)
    for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
        batch = {b"data": pixels.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": labels.integers(0, 10, 4).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_the_built_in_datasets_hold_the_data_of_dse_0_3_0():
    for name in ("digits", "synthetic"):
        digest = data_sha256(load_dataset(name))
        assert digest == FIXED_DATA_SHA256[name]
        assert data_key(name, digest) is None  # keyed by their names, as in dse 0.3.0
    assert data_key("digits", FIXED_DATA_SHA256["synthetic"]) == FIXED_DATA_SHA256["synthetic"]
    assert data_key("vww", "ab" * 32) == "ab" * 32 and data_key("vww", None) is None


def test_swapped_class_folders_are_other_data_a_copy_is_the_same(tmp_path):
    tree = vww_tree(tmp_path / "a")
    digest = data_sha256(load_dataset("vww", tree))
    other = data_sha256(load_dataset("vww", swapped(tree, tmp_path / "b")))
    copy = data_sha256(load_dataset("vww", shutil.copytree(tree, tmp_path / "c")))
    assert other != digest and copy == digest
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_cifar10_subsets_with_other_labels_are_other_data(tmp_path):
    first = data_sha256(load_dataset("cifar10", cifar10_folder(tmp_path / "a", labels_seed=1)))
    second = data_sha256(load_dataset("cifar10", cifar10_folder(tmp_path / "b", labels_seed=2)))
    nested = tmp_path / "c" / "cifar-10-batches-py"
    shutil.copytree(tmp_path / "a", nested)
    assert first != second
    assert data_sha256(load_dataset("cifar10", tmp_path / "c")) == first  # the same batches


def test_the_digest_is_kept_while_no_file_changes(tmp_path, hashed):
    tree = vww_tree(tmp_path / "a")
    cache = tmp_path / "results" / DIGEST_CACHE_FILE
    digest = data_sha256(load_dataset("vww", tree), cache_file=cache)
    assert hashed == ["vww"]
    stored = json.loads(cache.read_text())
    assert [entry["data_sha256"] for entry in stored["folders"].values()] == [digest]
    data_identity.forget_digests()  # as a new process
    clear_dataset_cache()
    assert data_sha256(load_dataset("vww", tree), cache_file=cache) == digest
    assert hashed == ["vww"]  # read back


def test_the_digest_is_computed_again_when_a_file_changes(tmp_path, hashed):
    tree = vww_tree(tmp_path / "a")
    cache = tmp_path / "results" / DIGEST_CACHE_FILE
    digest = data_sha256(load_dataset("vww", tree), cache_file=cache)
    image = tree / "train" / "person" / "000.png"
    vww_tree(tmp_path / "other", per_class=1, seed=1)  # other pixels
    shutil.copyfile(tmp_path / "other" / "train" / "person" / "000.png", image)
    status = image.stat()
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    data_identity.forget_digests()
    clear_dataset_cache()
    changed = data_sha256(load_dataset("vww", tree), cache_file=cache)
    assert changed != digest and hashed == ["vww", "vww"]
    stored = json.loads(cache.read_text())
    assert [entry["data_sha256"] for entry in stored["folders"].values()] == [changed]


def test_a_damaged_or_unwritable_cache_costs_only_the_hashing(tmp_path, hashed, caplog):
    tree = vww_tree(tmp_path / "a")
    cache = tmp_path / DIGEST_CACHE_FILE
    cache.write_text("{not json")
    digest = data_sha256(load_dataset("vww", tree), cache_file=cache)
    assert json.loads(cache.read_text())["format"] == data_identity.DIGEST_CACHE_FORMAT
    data_identity.forget_digests()
    blocked = tmp_path / "file"
    blocked.write_text("a file where the results folder should be\n")
    assert data_sha256(load_dataset("vww", tree), cache_file=blocked / "x.json") == digest
    assert hashed == ["vww", "vww"] and "cannot keep the data's digest" in caplog.text


def test_the_digest_covers_names_shapes_and_values():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2)
    labels = np.array([0, 1])
    digest = arrays_sha256([("train", images, labels)])
    assert digest == arrays_sha256([("train", images.copy(), labels.astype(">i8"))])
    for other in ([("val", images, labels)], [("train", images.reshape(1, 6, 2, 2), labels)],
                  [("train", images, labels[::-1])], [("train", images, labels.astype(np.int32))]):
        assert arrays_sha256(other) != digest
