"""Data: vendored files verified, decoding exact, splits fixed and stratified, bad files refused."""

from __future__ import annotations

import gzip
import pickle
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from study.components.data import (
    DataError,
    load_splits,
    make_splits,
    normalize,
    parse_idx,
    read_cache,
    read_dataset,
    write_cache,
)


def idx_bytes(t: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, t.ndim]) + b"".join(s.to_bytes(4, "big") for s in t.shape)
    return header + t.to(torch.uint8).numpy().tobytes()


def test_fashion_mnist_decodes_the_official_sizes(fashion_cache):
    raw = read_cache(fashion_cache)
    assert raw["train_x"].shape == (60000, 1, 28, 28)
    assert raw["test_x"].shape == (10000, 1, 28, 28)
    assert raw["train_x"].dtype == torch.uint8
    assert torch.bincount(raw["train_y"]).tolist() == [6000] * 10
    assert torch.bincount(raw["test_y"]).tolist() == [1000] * 10
    assert raw["classes"][0] == "T-shirt/top"


def test_splits_are_disjoint_stratified_and_independent_of_run_seed(fashion_cache):
    raw = read_cache(fashion_cache)
    a = make_splits(raw, n_train=1000, n_val=500, split_seed=0)
    b = make_splits(raw, n_train=1000, n_val=500, split_seed=0)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert torch.bincount(a.train_y).tolist() == [100] * 10
    assert torch.bincount(a.val_y).tolist() == [50] * 10
    # No validation image is also a training image.
    train = {bytes(x.numpy()) for x in a.train_x}
    assert not any(bytes(x.numpy()) in train for x in a.val_x[:200])
    assert len(a.test_y) == 10000  # the official test set, untouched
    c = make_splits(raw, n_train=1000, n_val=500, split_seed=1)
    assert not torch.equal(a.train_y, c.train_y)


def test_normalize_uses_training_statistics(fashion_cache):
    splits = make_splits(read_cache(fashion_cache), n_train=2000, n_val=500)
    x = normalize(splits.train_x, splits.mean, splits.std)
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std()) - 1) < 1e-3


def test_parse_idx_round_trip_and_truncation(tmp_path):
    t = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    assert torch.equal(parse_idx(idx_bytes(t), tmp_path), t)
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(idx_bytes(t)[:-7], tmp_path)
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(b"\x01\x02" + idx_bytes(t)[2:], tmp_path)


def copy_fashion(root, tmp_path):
    folder = tmp_path / "fashion"
    shutil.copytree(root / "resources/fashion-mnist", folder)
    return folder


def test_corrupt_fashion_file_is_refused_by_checksum(root, tmp_path):
    folder = copy_fashion(root, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256 does not match") as err:
        read_dataset("fashion_mnist", folder)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value)


def test_missing_fashion_file_names_it(root, tmp_path):
    folder = copy_fashion(root, tmp_path)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: missing"):
        read_dataset("fashion_mnist", folder)


def test_corrupt_cache_is_refused_and_nothing_trains(tmp_path):
    cache = tmp_path / "fashion_mnist.pt"
    cache.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="unreadable data cache"):
        read_cache(cache)
    with pytest.raises(DataError, match="missing data cache"):
        read_cache(tmp_path / "absent.pt")


def test_mnist_loader_reads_torchvision_layout(tmp_path):
    raw_dir = tmp_path / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    images = {
        s: torch.randint(0, 256, (n, 28, 28), generator=gen)
        for s, n in [("train", 60), ("t10k", 20)]
    }
    labels = {s: torch.arange(len(images[s])) % 10 for s in images}
    for s in images:
        (raw_dir / f"{s}-images-idx3-ubyte").write_bytes(idx_bytes(images[s]))
        (raw_dir / f"{s}-labels-idx1-ubyte").write_bytes(idx_bytes(labels[s]))
    raw = read_dataset("mnist", tmp_path)
    assert raw["train_x"].shape == (60, 1, 28, 28)
    assert torch.equal(raw["train_x"][:, 0], images["train"].to(torch.uint8))
    assert torch.equal(raw["test_y"], labels["t10k"])
    cfg = OmegaConf.create(
        {"name": "mnist", "root": str(tmp_path), "n_train": 20, "n_val": 10, "split_seed": 0}
    )
    splits = load_splits(cfg)
    assert len(splits.train_y) == 20 and len(splits.val_y) == 10


def test_cifar10_loader_reads_torchvision_layout(tmp_path, monkeypatch):
    import hashlib

    import numpy as np
    import torchvision

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 6)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batches[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [i % 10 for i in range(n)]}, f)
    names = [f"airplane{i}" for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    # torchvision checks the official checksums; point them at the files this test wrote.
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(
        cls, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setitem(cls.meta, "md5", md5("batches.meta"))
    raw = read_dataset("cifar10", tmp_path)
    assert raw["train_x"].shape == (20, 3, 32, 32)
    assert raw["test_x"].shape == (6, 3, 32, 32)
    # CHW order: torchvision stores HWC, the study stores NCHW.
    first = torch.from_numpy(batches["data_batch_1"][0].reshape(3, 32, 32))
    assert torch.equal(raw["train_x"][0], first)
    assert raw["classes"] == names


def test_missing_torchvision_data_offline_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    with pytest.raises(DataError, match="no mnist files found there and downloading failed"):
        read_dataset("mnist", tmp_path)


def test_cache_round_trip(tmp_path):
    raw = {
        "train_x": torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        "train_y": torch.tensor([0, 1, 0, 1]),
        "test_x": torch.ones(2, 1, 2, 2, dtype=torch.uint8),
        "test_y": torch.tensor([1, 0]),
        "classes": ["a", "b"],
    }
    write_cache(raw, tmp_path / "c.pt")
    back = read_cache(tmp_path / "c.pt")
    assert torch.equal(back["test_x"], raw["test_x"]) and back["classes"] == ["a", "b"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_gzip_that_is_not_gzip_is_refused(root, tmp_path, monkeypatch):
    import study.components.data as data

    folder = copy_fashion(root, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02"))
    monkeypatch.setitem(data.FASHION_MNIST_SHA256, path.name, data.sha256(path))
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_dataset("fashion_mnist", folder)


def test_unknown_dataset_is_one_line_listing_the_valid_names(tmp_path):
    from study.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        read_dataset("imagenet", tmp_path)
    assert str(error.value) == (
        "data.name='imagenet' is an unknown dataset; use one of cifar10, fashion_mnist, mnist"
    )
