"""Which pairs of variants an ablation may compare: one factor at a time.

A comparison (reference, variant) is a finding about one technique only if the two composed
training configs differ in that technique alone. Its *factor* is the set of config keys it may
differ in:

* declared: ``{variants: [ref, a, b], factor: [model.dropout, augment]}`` in the ablation file's
  ``compare`` list; a key covers itself and every key below it (``augment`` covers
  ``augment.shift``). For deliberate combinations (a "what practitioners do" recipe).
* inferred (a plain list ``[ref, a, b]``): every differing key must belong to one technique of
  :data:`TECHNIQUES`. A technique is a set of keys that one decision sets together: choosing an
  optimizer sets its own rate, betas and decay; a normalization layer brings its own options; early
  stopping comes with its patience. Budget keys (epochs, batch size, training-set size) are each
  their own factor, so a variant that changes the norm *and* the batch size is refused.

Keys of the run's identity and of the workflow (``run.*``, ``plan.*``, ``seed``) are not compared.
Besides the keys, the settings that both compared norms use are compared as their layers apply
them (:func:`shared_setting_differences`): a default inside a component counts like a key.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

# Technique → the key prefixes it sets together. A key not listed is a technique of its own.
TECHNIQUES: dict[str, tuple[str, ...]] = {
    "optimizer": ("optim",),
    "schedule": ("schedule",),
    "normalization": ("model.norm", "model.renorm", "model.batchnorm", "model.groups"),
    "dropout": ("model.dropout",),
    "dropconnect": ("model.dropconnect",),
    "stochastic depth": ("model.stochastic_depth",),
    "augmentation": ("augment",),
    "l1 penalty": ("regularization.l1",),
    "l2 penalty": ("regularization.l2",),
    "early stopping": ("train.early_stopping", "train.patience"),
    "non-i.i.d. batches": ("train.batches", "train.classes_per_batch"),
    "model": ("model.name", "model.width", "model.blocks"),
}
IGNORED = ("run", "plan", "seed", "threads", "device")


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def technique_of(key: str) -> str:
    """The technique a config key belongs to (the key itself when none claims it)."""
    for name, prefixes in TECHNIQUES.items():
        if any(_under(key, p) for p in prefixes):
            return name
    return key


def flat(cfg: DictConfig | Mapping, prefix: str = "") -> dict[str, object]:
    """Dotted key → value of a composed config (lists are compared whole)."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    out: dict[str, object] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def differing_keys(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """Keys whose values differ between two flat configs (absent counts as different)."""
    keys = sorted(set(a) | set(b))
    missing = object()
    return [
        k
        for k in keys
        if not any(_under(k, i) for i in IGNORED) and a.get(k, missing) != b.get(k, missing)
    ]


def setting_key(setting: str) -> str:
    """The name of a norm's effective setting among the compared keys: a factor of its own,
    never covered by the normalization technique (``model.norm[momentum]``)."""
    return f"model.norm[{setting}]"


def shared_setting_differences(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """The settings both norms use (study.components.norms.effective_settings) with different
    values: a norm may bring keys only it reads, but a setting both use (the moving averages'
    momentum) is a second factor unless declared."""
    return [setting_key(k) for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def confound(differing: list[str], factor: tuple[str, ...] | None) -> str | None:
    """Why a comparison differing in ``differing`` is not one factor, or None when it is."""
    if factor is not None:
        outside = [k for k in differing if not any(_under(k, f) for f in factor)]
        if outside:
            return f"differs outside its declared factor {list(factor)} in {outside}"
        return None
    techniques = sorted({technique_of(k) for k in differing})
    if len(techniques) > 1:
        return f"differs in more than one factor ({', '.join(techniques)}): keys {differing}"
    return None
