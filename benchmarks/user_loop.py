"""Loop (b) of the throughput comparison: the training loop users would write instead of the
study's, with torchvision's FashionMNIST Dataset, per-image PIL transforms and a DataLoader."""

from __future__ import annotations

import gzip
from pathlib import Path

from benchmarks.workflow import FASHION_ROOT


def write_torchvision_layout(root: Path) -> Path:
    """torchvision's FashionMNIST folder (``<root>/FashionMNIST/raw``) from the vendored files,
    so (b) uses torchvision's own Dataset class offline."""
    from study.components.data import FASHION_MNIST_FILES

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES.values():
        (raw / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((FASHION_ROOT / name).read_bytes())
        )
    return root


class Cutout:
    """The per-image cutout users add to a transform pipeline (DeVries & Taylor's reference
    code): zero one size×size square, clipped at the border, at a uniform random centre. It runs
    on the ToTensor output, before Normalize, so it erases to black as the study's cutout does."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img):
        import torch

        _, h, w = img.shape
        cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
        top, left = cy - self.size // 2, cx - self.size // 2
        img[:, max(top, 0) : top + self.size, max(left, 0) : left + self.size] = 0
        return img


def user_loader(splits, root: Path, batch_size: int, workers: int, seed: int, device):
    """What a user writes: torchvision's Dataset (a PIL image per item), per-image transforms and
    a shuffling DataLoader. The Dataset holds the study's 10,000 training images, as a Subset of
    the official training set would."""
    import torch
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(28, padding=2),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            Cutout(10),
            transforms.Normalize(splits.mean, splits.std),
        ]
    )
    dataset = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform)
    dataset.data, dataset.targets = splits.train_x[:, 0].cpu(), splits.train_y.cpu()
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,  # as the study's loop, which drops a ragged last batch
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
