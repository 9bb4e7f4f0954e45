"""Batch orders for one epoch, as index tensors on the data's device (no DataLoader, no per-sample
Python): i.i.d. batches from a seeded permutation, or non-i.i.d. batches of a few classes each."""

from __future__ import annotations

import torch


def iid_order(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A fresh permutation each epoch, cut into full batches (a ragged last batch is dropped:
    a BatchNorm batch of one or two images would make the comparison of norms unfair)."""
    steps = n // batch_size
    return torch.randperm(n, generator=generator, device=generator.device)[: steps * batch_size]


def non_iid_order(
    y: torch.Tensor, batch_size: int, classes_per_batch: int, generator: torch.Generator
) -> torch.Tensor:
    """Batches drawn from only ``classes_per_batch`` classes each (Ioffe 2017, Sec. 4.3, used
    16 labels × 2 images): shuffle within each class, cut the classes into equal chunks, shuffle
    the chunks, and put ``classes_per_batch`` consecutive chunks into a batch."""
    chunk = batch_size // classes_per_batch
    perm = torch.randperm(len(y), generator=generator, device=generator.device)
    by_class = perm[torch.argsort(y[perm], stable=True)]
    counts = torch.bincount(y)
    pieces, start = [], 0
    for count in counts.tolist():
        usable = count - count % chunk
        pieces.append(by_class[start : start + usable].view(-1, chunk))
        start += count
    chunks = torch.cat(pieces)
    chunks = chunks[torch.randperm(len(chunks), generator=generator, device=generator.device)]
    usable = len(chunks) - len(chunks) % classes_per_batch
    return chunks[:usable].reshape(-1)
