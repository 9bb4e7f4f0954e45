"""Datasets as uint8 tensors: decoded once into a cache, split deterministically, kept on device.

Fashion-MNIST is vendored under ``resources/fashion-mnist`` (MIT license) and checked against
SHA-256 sums before decoding. MNIST and CIFAR-10 go through torchvision's own on-disk layouts
(downloaded when missing and the network allows it, or read from ``data.root``).

Splits: the validation set is held out of the official training set with a fixed seed (it is used
for selection only), the training set is a stratified subsample of what remains (``data.n_train``),
and the official test set is only reported. The split depends on ``data.split_seed``, never on the
run's seed, so every run of a study sees the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from study.components.checks import check_name, check_rules, int_at_least, optional_int_at_least
from study.errors import ConfigError
from study.outputs import atomic_path
from study.registry import Registry

FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CACHE_KEYS = ("train_x", "train_y", "test_x", "test_y")


class DataError(Exception):
    """A dataset file is missing, corrupt or inconsistent; the message names file and fix."""


@dataclass
class Splits:
    train_x: torch.Tensor  # uint8 N×C×H×W
    train_y: torch.Tensor  # int64 N
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # per channel, of the training subsample, in [0, 1] pixel units
    std: tuple[float, ...]

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> Splits:
        moved = {
            k: getattr(self, k).to(device)
            for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
        }
        return Splits(**moved, classes=self.classes, mean=self.mean, std=self.std)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_idx(raw: bytes, source: Path) -> torch.Tensor:
    """Decode an IDX file (LeCun's MNIST format): magic 0x000008<ndim>, big-endian sizes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            f"{source}: not an unsigned-byte IDX file (bad magic number); "
            "replace it with the official file"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header; replace it with the official file")
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    n_values = 1
    for size in shape:
        n_values *= size
    if len(raw) != header + n_values:
        raise DataError(
            f"{source}: holds {len(raw) - header} values but its header promises {n_values} "
            "(truncated or corrupt); replace it with the official file"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def read_fashion_mnist(root: Path, verify: bool = True) -> dict:
    root = Path(root)
    out = {}
    for key, name in FASHION_MNIST_FILES.items():
        path = root / name
        if not path.is_file():
            raise DataError(
                f"{path}: missing; restore it with `git checkout -- {path}` (the vendored copy) "
                "or point data.root at a folder holding the four official gzip IDX files"
            )
        if verify and sha256(path) != FASHION_MNIST_SHA256[name]:
            raise DataError(
                f"{path}: SHA-256 does not match the official file (corrupt or modified); "
                f"restore it with `git checkout -- {path}`"
            )
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable gzip file ({err}); restore it") from None
        out[key] = parse_idx(raw, path)
    out["train_x"] = out["train_x"].unsqueeze(1)
    out["test_x"] = out["test_x"].unsqueeze(1)
    out["train_y"] = out["train_y"].long()
    out["test_y"] = out["test_y"].long()
    out["classes"] = list(FASHION_MNIST_CLASSES)
    return out


def _torchvision_dataset(name: str, root: Path, train: bool):
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_CLASSES[name])
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        raise DataError(
            f"{root}: no {name} files found there and downloading failed ({type(err).__name__}); "
            f"put torchvision's {name} files under {root} (data.root) or run once online"
        ) from None


def read_torchvision(name: str, root: Path) -> dict:
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = _torchvision_dataset(name, Path(root), train)
        data = ds.data
        if not isinstance(data, torch.Tensor):  # CIFAR-10 keeps a N×H×W×C numpy array
            data = torch.from_numpy(data)
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        y = ds.targets
        y = y.clone() if isinstance(y, torch.Tensor) else torch.tensor(y)
        out[f"{split}_x"] = x.contiguous().to(torch.uint8)
        out[f"{split}_y"] = y.long()
        out["classes"] = list(ds.classes)
    return out


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: ``read(root)`` decodes its source files under ``root`` (``data.root``)."""

    read: Callable[[Path], dict]


DATASETS: Registry[DatasetSpec] = Registry("dataset", "data.name")
"""Config name (``data.name``) → :class:`DatasetSpec`."""
# Fashion-MNIST is vendored and checked against its official hashes; the others come through
# torchvision (its files under data.root, or downloaded once).
TORCHVISION_CLASSES = {"mnist": "MNIST", "cifar10": "CIFAR10"}
DATASETS.register("fashion_mnist", DatasetSpec(read_fashion_mnist))
for _name in TORCHVISION_CLASSES:
    DATASETS.register(_name, DatasetSpec(partial(read_torchvision, _name)))


def read_dataset(name: str, root: str | Path) -> dict:
    """Decode a dataset from its source files into uint8 tensors (train_x, train_y, test_x, ...)."""
    raw = DATASETS.get(name).read(Path(root))
    check_consistent(raw, str(root))
    return raw


CONFIG_RULES = {
    "data.n_train": optional_int_at_least(10),
    "data.n_val": int_at_least(10),
    "data.n_test": optional_int_at_least(10),
    "data.split_seed": int_at_least(0),
}


def validate_config(cfg) -> None:
    """Check ``data.name`` and the split sizes (``data.*``)."""
    check_name(cfg, DATASETS)
    check_rules(cfg, CONFIG_RULES)


def check_consistent(raw: dict, source: str) -> None:
    for split in ("train", "test"):
        x, y = raw[f"{split}_x"], raw[f"{split}_y"]
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise DataError(f"{source}: {split} images are not uint8 N×C×H×W; rebuild the cache")
        if len(x) != len(y):
            raise DataError(
                f"{source}: {len(x)} {split} images but {len(y)} labels; replace the files"
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(raw["classes"])):
            raise DataError(f"{source}: {split} labels outside 0..{len(raw['classes']) - 1}")


# ---------------------------------------------------------------------------------------------
# Cache (the prepare step writes it once; every run reads it)
# ---------------------------------------------------------------------------------------------


def write_cache(raw: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save({k: raw[k] for k in (*CACHE_KEYS, "classes")}, tmp)


def read_cache(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing data cache; build it with `snakemake {path}`")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises many types
        raise DataError(
            f"{path}: unreadable data cache ({type(err).__name__}); delete it and rerun "
            "(the prepare step rebuilds it)"
        ) from None
    if not isinstance(raw, dict) or any(k not in raw for k in (*CACHE_KEYS, "classes")):
        raise DataError(f"{path}: not a data cache of this study; delete it and rerun")
    check_consistent(raw, str(path))
    return raw


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def stratified_take(y: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` samples with ``y``'s class proportions (largest-remainder rounding)."""
    if n >= len(y):
        return torch.randperm(len(y), generator=generator)
    counts = torch.bincount(y)
    exact = counts.double() * n / len(y)
    take = exact.floor().long()
    short = n - int(take.sum())
    if short:
        take[torch.argsort(exact - take.double(), descending=True)[:short]] += 1
    order = torch.randperm(len(y), generator=generator)
    chosen = []
    for c in range(len(counts)):
        members = order[y[order] == c]
        chosen.append(members[: int(take[c])])
    picked = torch.cat(chosen)
    return picked[torch.randperm(len(picked), generator=generator)]


def make_splits(
    raw: dict, n_train: int | None, n_val: int, split_seed: int = 0, n_test: int | None = None
) -> Splits:
    train_x, train_y = raw["train_x"], raw["train_y"]
    if n_val >= len(train_y):
        raise DataError(f"data.n_val={n_val} leaves no training data ({len(train_y)} images)")
    generator = torch.Generator().manual_seed(split_seed)
    val_idx = stratified_take(train_y, n_val, generator)
    rest = torch.ones(len(train_y), dtype=torch.bool)
    rest[val_idx] = False
    pool = rest.nonzero().squeeze(1)
    if n_train is None or n_train >= len(pool):
        train_idx = pool[torch.randperm(len(pool), generator=generator)]
    else:
        train_idx = pool[stratified_take(train_y[pool], n_train, generator)]
    test_x, test_y = raw["test_x"], raw["test_y"]
    if n_test is not None and n_test < len(test_y):
        test_idx = torch.sort(stratified_take(test_y, n_test, generator)).values
        test_x, test_y = test_x[test_idx], test_y[test_idx]
    x = train_x[train_idx]
    pixels = x.float().div_(255).transpose(0, 1).reshape(x.shape[1], -1)
    mean = tuple(float(v) for v in pixels.mean(1))
    std = tuple(float(v) for v in pixels.std(1))
    return Splits(
        train_x=x,
        train_y=train_y[train_idx],
        val_x=train_x[val_idx],
        val_y=train_y[val_idx],
        test_x=test_x,
        test_y=test_y,
        classes=list(raw["classes"]),
        mean=mean,
        std=std,
    )


def load_splits(cfg_data, cache_path: str | Path | None = None) -> Splits:
    """The run's splits, from the prepared cache when given, else decoded from ``cfg_data.root``."""
    raw = read_cache(cache_path) if cache_path else read_dataset(cfg_data.name, cfg_data.root)
    return make_splits(
        raw,
        n_train=cfg_data.n_train,
        n_val=cfg_data.n_val,
        split_seed=cfg_data.split_seed,
        n_test=cfg_data.get("n_test"),
    )


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 N×C×H×W → float32 standardized with the training set's per-channel statistics."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    # In place on a fresh copy: one float buffer per batch instead of three.
    y = x.to(torch.float32, copy=True)
    return y.div_(255).sub_(m).div_(s)


def main(argv: list[str] | None = None) -> int:
    """``python -m study.components.data NAME ROOT CACHE``: decode, check, write the cache."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m study.components.data <name> <root> <cache.pt>", file=sys.stderr)
        return 2
    name, root, cache = args
    try:
        raw = read_dataset(name, root)
        write_cache(raw, cache)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{name}: {len(raw['train_y'])} training and {len(raw['test_y'])} test images → {cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
