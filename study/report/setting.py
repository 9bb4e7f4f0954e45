"""The regime of a study in one phrase, as a person would write it: the model and the dataset by
their readable names, the training-set size most runs used (with the other sizes named as what
they are) and the range of epochs, from the runs' own configs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# Config names (model.name, data.name) → the names a reader knows them by; a name not listed is
# shown with its underscores as spaces.
MODEL_NAMES = {"resmlp": "residual MLP", "resnet": "ResNet", "mlp": "MLP"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}


def _readable(name: Any, names: dict[str, str]) -> str:
    return names.get(str(name), str(name).replace("_", " "))


def _distinct(runs: pd.DataFrame, column: str) -> list[Any]:
    return list(dict.fromkeys(runs[column].dropna())) if column in runs.columns else []


def _count(n: Any) -> str:
    """A training-set size with thousands separators; an empty size is the whole set."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "all"
    return f"{int(float(n)):,}"


def _images(runs: pd.DataFrame, dataset: str) -> str:
    """``"10,000 Fashion-MNIST training images (2,500 in the data-size comparison)"``: the size
    most runs used, then each other size, named by the comparison it serves (a size that shares
    an ablation with the main one is there to vary the data) or by its ablations."""
    column = "config.data.n_train"
    if column not in runs.columns:
        return f"{dataset} training images".strip()
    sizes = runs[column].astype(object).where(runs[column].notna(), None)
    counts = sizes.map(_count).value_counts(sort=False)
    main = counts.sort_values(ascending=False, kind="stable").index[0]
    text = f"{main} {dataset} training images".replace("  ", " ")
    others = [s for s in counts.index if s != main]
    if not others:
        return text
    shown = sizes.map(_count)
    by_ablation = runs["ablation"] if "ablation" in runs.columns else pd.Series("", runs.index)
    with_main = set(by_ablation[shown == main])
    where = []
    for size in others:
        ablations = [a for a in dict.fromkeys(by_ablation[shown == size]) if a]
        if ablations and set(ablations) <= with_main:
            where.append(f"{size} in the data-size comparison")
        else:
            where.append(f"{size} in {', '.join(map(str, ablations)) or 'some runs'}")
    return f"{text} ({'; '.join(where)})"


def _epochs(runs: pd.DataFrame) -> str:
    values = sorted({int(float(v)) for v in _distinct(runs, "config.train.epochs")})
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]} epoch{'s' if values[0] != 1 else ''}"
    return f"{values[0]} to {values[-1]} epochs"


def setting(runs: pd.DataFrame) -> dict[str, str]:
    """``model`` (readable, singular), ``dataset``, ``images`` (the sizes phrase, without the
    dataset, to follow a sentence that names it), ``epochs`` and ``text``, the whole phrase (e.g.
    "residual MLPs on 10,000 Fashion-MNIST training images (2,500 in the data-size comparison)
    for 3 to 15 epochs"); all empty without runs."""
    models = [_readable(m, MODEL_NAMES) for m in _distinct(runs, "config.model.name")]
    if not models:
        return {"model": "", "dataset": "", "images": "", "epochs": "", "text": ""}
    datasets = [_readable(d, DATASET_NAMES) for d in _distinct(runs, "config.data.name")]
    dataset = " and ".join(datasets)
    epochs = _epochs(runs)
    text = f"{' and '.join(m + 's' for m in models)} on {_images(runs, dataset)}"
    if epochs:
        text += f" for {epochs}"
    return {"model": " and ".join(models), "dataset": dataset, "images": _images(runs, ""),
            "epochs": epochs, "text": text}  # fmt: skip
