"""Dataset loaders: CIFAR-10 format and download on tiny fixtures, digits, synthetic, batches."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hw_models.errors import ConfigError
from networks import datasets
from networks.datasets import DataBundle, clear_dataset_cache, load_dataset

IMAGES_PER_BATCH = 20
TRAIN_FILES = [f"data_batch_{index}" for index in range(1, 6)]
# Red plane of every fixture image: pixel (row, col) = (32 * row + col) % 256.
RED_PATTERN = (np.arange(1024) % 256).astype(np.uint8)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def cifar_batch(seed: int, str_keys: bool = False) -> dict:
    """A batch dict like the original pickles: random pixels, red plane RED_PATTERN."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(IMAGES_PER_BATCH, 3072), dtype=np.uint8)
    data[:, :1024] = RED_PATTERN
    batch = {"batch_label": "fixture", "labels": rng.integers(0, 10, IMAGES_PER_BATCH).tolist(),
             "data": data}
    if str_keys:
        return batch
    return {key.encode(): value.encode() if isinstance(value, str) else value
            for key, value in batch.items()}


def write_cifar(root: Path, str_keys: bool = False) -> dict[str, dict]:
    """Write five data batches and a test batch under root/cifar-10-batches-py."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for seed, name in enumerate([*TRAIN_FILES, "test_batch"]):
        batches[name] = cifar_batch(seed, str_keys)
        # Protocol 2 with bytes keys is what the Python 2 originals decode to.
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2 if not str_keys
                                                 else pickle.DEFAULT_PROTOCOL))
    return batches


def entry(batch: dict, key: str):
    return batch[key] if key in batch else batch[key.encode()]


def rows_to_labels(batches: list[dict]) -> dict[bytes, int]:
    return {row.tobytes(): label for batch in batches
            for row, label in zip(entry(batch, "data"), entry(batch, "labels"))}


# ---- CIFAR-10 format ----------------------------------------------------------------------

@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar10_fixture_is_read(tmp_path: Path, str_keys: bool) -> None:
    batches = write_cifar(tmp_path, str_keys)
    bundle = load_dataset("cifar10", tmp_path)

    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (90, 10, 20)
    assert bundle.train.images.shape == (90, 3, 32, 32)
    assert bundle.train.images.dtype == torch.uint8
    assert bundle.val.labels.dtype == torch.int64
    assert bundle.augment == "crop-flip"
    assert bundle.spec.name == "cifar10"
    expected = rows_to_labels([batches[name] for name in TRAIN_FILES])
    for split in (bundle.train, bundle.val):
        for image, label in zip(split.images, split.labels):
            assert expected[image.numpy().reshape(-1).tobytes()] == label
    test = batches["test_batch"]
    assert torch.equal(bundle.test.images.reshape(20, -1),
                       torch.from_numpy(entry(test, "data")))
    assert bundle.test.labels.tolist() == entry(test, "labels")


def test_cifar10_red_plane_is_channel_0(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    images = load_dataset("cifar10", tmp_path).train.images
    assert torch.equal(images[:, 0], torch.from_numpy(RED_PATTERN.reshape(32, 32)).expand(
        len(images), 32, 32))
    assert images[0, 0, 1, 2] == 34  # row 1, column 2


def test_cifar10_batches_folder_itself_and_cache(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    bundle = load_dataset("cifar10", tmp_path)
    assert load_dataset("cifar10", str(tmp_path / "cifar-10-batches-py")) is bundle
    clear_dataset_cache()
    again = load_dataset("cifar10", tmp_path)
    assert again is not bundle
    assert torch.equal(again.val.images, bundle.val.images)


def test_cifar10_needs_data_dir() -> None:
    with pytest.raises(ConfigError, match=r"cifar10 needs --data-dir \(or --download\)"):
        load_dataset("cifar10")


def test_cifar10_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'.*nowhere' does not exist"):
        load_dataset("cifar10", tmp_path / "nowhere")


def test_cifar10_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no CIFAR-10 batches"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_missing_batch_is_named(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="'data_batch_3' is missing"):
        load_dataset("cifar10", tmp_path)


def corrupt(tmp_path: Path, name: str, content: bytes) -> None:
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / name).write_bytes(content)


def test_cifar10_garbage_file_is_corrupt(tmp_path: Path) -> None:
    corrupt(tmp_path, "data_batch_2", os.urandom(256))
    with pytest.raises(ConfigError, match="data_batch_2' is corrupt"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("batch, problem", [
    ({b"data": np.zeros((20, 3000), np.uint8), b"labels": [0] * 20}, "expected uint8"),
    ({b"data": np.zeros((20, 3072), np.float32), b"labels": [0] * 20}, "expected uint8"),
    ({b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 19}, "19 labels for 20"),
    ({b"data": np.zeros((20, 3072), np.uint8), b"labels": [10] * 20}, "not integers 0..9"),
    ({b"labels": [0] * 20}, "no 'data' array"),
    ([1, 2, 3], "no 'data' array"),
])
def test_cifar10_wrong_content_is_corrupt(tmp_path: Path, batch: object, problem: str) -> None:
    corrupt(tmp_path, "test_batch", pickle.dumps(batch))
    with pytest.raises(ConfigError, match=f"test_batch' is corrupt: .*{problem}"):
        load_dataset("cifar10", tmp_path)


class RemovesFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.remove, (str(self.path),)


def test_cifar10_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    corrupt(tmp_path, "data_batch_1", pickle.dumps({b"data": RemovesFile(marker)}))
    with pytest.raises(ConfigError, match="corrupt: does not unpickle"):
        load_dataset("cifar10", tmp_path)
    assert marker.exists()


# ---- CIFAR-10 download --------------------------------------------------------------------

def make_archive(tmp_path: Path) -> Path:
    write_cifar(tmp_path / "source")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "source" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def serve(monkeypatch: pytest.MonkeyPatch, archive: Path, md5: str | None = None) -> None:
    monkeypatch.setattr(datasets, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(datasets, "CIFAR10_MD5",
                        md5 or hashlib.md5(archive.read_bytes()).hexdigest())


def test_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(tmp_path)
    serve(monkeypatch, archive)
    calls: list[tuple[int, int]] = []
    bundle = load_dataset("cifar10", tmp_path / "data", download=True,
                          progress=lambda done, total: calls.append((done, total)))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (90, 10, 20)
    assert calls[-1] == (archive.stat().st_size, archive.stat().st_size)
    clear_dataset_cache()
    # Already there: nothing is fetched, so a dead URL does not matter.
    monkeypatch.setattr(datasets, "CIFAR10_URL", (tmp_path / "gone.tar.gz").as_uri())
    assert len(load_dataset("cifar10", tmp_path / "data", download=True).test) == 20


def test_download_to_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, make_archive(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_dataset("cifar10", download=True)
    assert (tmp_path / "cache" / "dse" / "cifar-10-batches-py" / "test_batch").is_file()


def test_download_md5_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, make_archive(tmp_path), md5="0" * 32)
    with pytest.raises(ConfigError, match="MD5 .* expected 0{32}; removed it"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert list((tmp_path / "data").iterdir()) == []


def test_download_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, tmp_path / "missing.tar.gz", md5="0" * 32)
    with pytest.raises(ConfigError, match="download from file:.* failed") as error:
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert "\n" not in str(error.value)
    assert list((tmp_path / "data").iterdir()) == []


def test_download_rejects_escaping_members(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("../escaped")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    serve(monkeypatch, archive)
    with pytest.raises(ConfigError, match="unsafe member '../escaped'"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert not (tmp_path / "escaped").exists()


# ---- digits and synthetic -----------------------------------------------------------------

def test_digits_split() -> None:
    bundle = load_dataset("digits")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (1258, 269, 270)
    assert bundle.train.images.shape == (1258, 1, 8, 8)
    assert bundle.train.images.dtype == torch.uint8
    assert bundle.augment == "shift"
    images = torch.cat([bundle.train.images, bundle.val.images, bundle.test.images])
    assert images.max() == 16
    for split in (bundle.train, bundle.val, bundle.test):
        counts = torch.bincount(split.labels, minlength=10)
        assert len(counts) == 10
        assert counts.min() > 0.6 * len(split) / 10


def test_digits_split_is_fixed() -> None:
    first = load_dataset("digits")
    assert load_dataset("digits") is first
    clear_dataset_cache()
    second = load_dataset("digits")
    assert second is not first
    for name in ("train", "val", "test"):
        assert torch.equal(first.split(name).images, second.split(name).images)
        assert torch.equal(first.split(name).labels, second.split(name).labels)


@pytest.mark.slow
def test_synthetic_is_deterministic_and_learnable() -> None:
    bundle = load_dataset("synthetic")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (512, 128, 128)
    assert bundle.train.images.shape[1:] == (3, 16, 16)
    clear_dataset_cache()
    assert torch.equal(load_dataset("synthetic").test.images, bundle.test.images)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                          nn.Flatten(), nn.Linear(128, 4))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(4):  # 32 steps
        for images, labels in bundle.batches("train", 64, shuffle=True, seed=epoch):
            optimiser.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimiser.step()
    with torch.no_grad():
        images, labels = next(bundle.batches("val", 128, shuffle=False))
        accuracy = (model(images).argmax(1) == labels).float().mean()
    assert accuracy > 0.9


@pytest.mark.parametrize("name", ["vww", "tiny-imagenet"])
def test_image_folder_datasets_need_their_folder(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} needs --data-dir"):
        load_dataset(name)


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


# ---- batches ------------------------------------------------------------------------------

def epoch(bundle: DataBundle, **options) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = list(bundle.batches("train", 100, **options))
    return torch.cat([images for images, _ in pairs]), torch.cat([labels for _, labels in pairs])


def raw(bundle: DataBundle, images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: back to raw pixel units."""
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std).view(1, -1, 1, 1)
    return images * std + mean


def test_batches_are_seeded() -> None:
    bundle = load_dataset("synthetic")
    first, second = epoch(bundle, shuffle=True, seed=3), epoch(bundle, shuffle=True, seed=3)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = epoch(bundle, shuffle=True, seed=4)
    assert not torch.equal(first[0], other[0])
    assert torch.equal(epoch(bundle, shuffle=False)[1], bundle.train.labels)


def test_batches_sizes_and_types() -> None:
    bundle = load_dataset("synthetic")
    pairs = list(bundle.batches("val", 50, shuffle=False, device="cpu"))
    assert [len(labels) for _, labels in pairs] == [50, 50, 28]
    assert bundle.num_batches("val", 50) == 3
    images, labels = pairs[0]
    assert images.dtype == torch.float32 and images.shape == (50, 3, 16, 16)
    assert labels.dtype == torch.int64 and images.device.type == "cpu"


def test_batches_reject_bad_arguments() -> None:
    bundle = load_dataset("synthetic")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        bundle.batches("dev", 8, shuffle=False)
    with pytest.raises(ConfigError, match="batch size must be at least 1"):
        bundle.num_batches("train", 0)


def test_every_sample_once_per_epoch() -> None:
    bundle = load_dataset("synthetic")
    images, labels = epoch(bundle, shuffle=True, seed=0)
    seen = torch.round(raw(bundle, images)).to(torch.uint8).reshape(len(images), -1)
    position = {row.numpy().tobytes(): index
                for index, row in enumerate(bundle.train.images.reshape(len(images), -1))}
    order = [position[row.numpy().tobytes()] for row in seen]
    assert sorted(order) == list(range(len(bundle.train)))
    assert torch.equal(labels, bundle.train.labels[order])


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_normalised_train_split(name: str) -> None:
    bundle = load_dataset(name)
    images, _ = epoch(bundle, shuffle=False)
    channels = images.transpose(0, 1).reshape(images.shape[1], -1)
    assert torch.allclose(channels.mean(1), torch.zeros(len(channels)), atol=1e-4)
    assert torch.allclose(channels.std(1, correction=0), torch.ones(len(channels)), atol=1e-4)


def translations(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop of ``image`` (C, H, W) zero-padded by ``pad`` pixels."""
    padded = F.pad(image, (pad, pad, pad, pad))
    height, width = image.shape[1:]
    return [padded[:, row:row + height, col:col + width]
            for row in range(2 * pad + 1) for col in range(2 * pad + 1)]


def test_shift_moves_digits_by_at_most_one_pixel() -> None:
    bundle = load_dataset("digits")
    images, _ = epoch(bundle, shuffle=False, augment=True, seed=0)
    shifted = torch.round(raw(bundle, images))
    assert shifted.shape == bundle.train.images.shape
    originals = bundle.train.images.float()
    assert (shifted != originals).flatten(1).any(1).float().mean() > 0.5
    for image, original in zip(shifted, originals):
        assert any(torch.equal(image, crop) for crop in translations(original, 1))


def test_crop_flip(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    bundle = load_dataset("cifar10", tmp_path)
    images, _ = epoch(bundle, shuffle=False, augment=True, seed=0)
    augmented = torch.round(raw(bundle, images))
    assert augmented.shape == bundle.train.images.shape
    flipped = 0
    for image, original in zip(augmented, bundle.train.images.float()):
        crops = translations(original, 4)
        if any(torch.equal(image, crop.flip(-1)) for crop in crops):
            flipped += 1
        else:
            assert any(torch.equal(image, crop) for crop in crops)
    assert 20 < flipped < 70
    assert torch.equal(epoch(bundle, shuffle=False, augment=False)[0],
                       epoch(bundle, shuffle=False)[0])


def test_no_augmentation_for_synthetic() -> None:
    bundle = load_dataset("synthetic")
    assert torch.equal(epoch(bundle, shuffle=False, augment=True, seed=1)[0],
                       epoch(bundle, shuffle=False)[0])


def test_the_validation_halves_are_disjoint_and_make_the_validation_split() -> None:
    """EDEN characterises on val-a and validates on val-b: never the same image."""
    bundle = load_dataset("digits")
    a, b = bundle.split("val-a"), bundle.split("val-b")
    assert (len(a), len(b)) == (135, 134)  # 269 validation images, even and odd index
    assert torch.equal(a.images, bundle.val.images[0::2])  # images 0, 2, 4, ...
    assert torch.equal(b.images, bundle.val.images[1::2])  # images 1, 3, 5, ...
    assert torch.equal(b.labels, bundle.val.labels[1::2])
    batches = list(bundle.batches("val-b", 100, shuffle=False))
    assert sum(len(labels) for _, labels in batches) == 134
    with pytest.raises(ConfigError, match="unknown split 'val-c' .*val-a, val-b"):
        bundle.split("val-c")
