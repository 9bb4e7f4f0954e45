"""One training run: ``python -m study.train run.out=<folder> seed=<k> [overrides...]``.

A run is a pure function of its composed config and seed: the data split is fixed, the model's
initialization and every random draw (batch order, augmentation, dropout masks) come from seeded
generators, so the same config on the same machine gives the same numbers.

The job imports torch and the config library only (no pandas, no plotting): start-up time is paid
once per run, hundreds of times per study. Every output is written atomically into ``run.out``,
``metrics.json`` last, so a killed job never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from study.config import CONF_DIR, ConfigError, config_hash, validate
from study.outputs import atomic_path, write_text
from study.training.batches import iid_order, non_iid_order
from study.training.checkpoint import BestEpoch, Checkpoint

log = logging.getLogger("study.train")

HISTORY_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "eval_seconds",
)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def finite_or_none(value):
    """JSON has no NaN: a diverged run's missing numbers are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_history(path: Path, rows: list[dict]) -> None:
    def fmt(v):
        v = finite_or_none(v)
        return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(fmt(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def evaluate(
    model, x, y, mean, std, batch_size: int, precision: str = "fp32", memory_format=None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (one host sync per split)."""
    from study.components.data import normalize

    model.eval()
    memory_format = memory_format or torch.contiguous_format
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size], mean, std).contiguous(memory_format=memory_format)
        with autocast(x.device, precision):
            logits = model(xb).float()
        target = y[i : i + batch_size]
        loss += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
    n = max(len(x), 1)
    return float(loss) / n, int(correct) / n


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast when asked for (GPU runs): matmuls in bf16, weights and loss in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def weight_statistics(model) -> tuple[float, float]:
    """Fraction of weights with |w| < 1e-3 (the L1-sparsity claim) and their total L2 norm."""
    from study.components.regularizers import weights

    flat = torch.cat([w.detach().flatten().float() for w in weights(model)])
    return float((flat.abs() < 1e-3).float().mean()), float(flat.norm())


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or auto")
    return torch.device(name)


def apply_tuned_lr(cfg: DictConfig) -> None:
    """Take the learning rate chosen on the validation split by the ablation's tuning step."""
    path = Path(cfg.train.lr_from)
    try:
        selection = json.loads(path.read_text())
        lr = selection[cfg.run.variant]["lr"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"train.lr_from={path}: no learning rate for variant {cfg.run.variant!r} "
            f"({type(err).__name__}); rerun the tuning step"
        ) from None
    cfg.optim.lr = float(lr)


def git_state() -> dict:
    """The study's commit and whether the working tree had changes (provenance of the numbers)."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip()) if commit else None}


def environment(device: torch.device) -> tuple[dict, dict]:
    import hydra

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hydra": hydra.__version__,
        **git_state(),
    }
    hardware = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        hardware["gpu"] = torch.cuda.get_device_name(device)
    return versions, hardware


def train_run(cfg: DictConfig) -> dict:
    """Train, evaluate every epoch, write the run folder; returns the metrics."""
    from study.components.augmentations import augment_batch, is_active
    from study.components.data import load_splits, normalize
    from study.components.layers import set_progress
    from study.components.models import build_model
    from study.components.optimizers import build_optimizer
    from study.components.regularizers import penalty
    from study.components.schedules import schedule_fn

    wall_start = time.perf_counter()
    out = Path(cfg.run.out)
    if cfg.train.lr_from:
        apply_tuned_lr(cfg)
    validate(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)  # a stale result must not outlive a rerun
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        # Same config, same numbers on a GPU too: deterministic kernels, no autotuning.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    digest = config_hash(cfg)

    splits = load_splits(cfg.data, cfg.run.get("cache")).to(device)
    mean, std = splits.mean, splits.std
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, splits.in_shape, splits.n_classes).to(device)
    # channels_last lets cuDNN pick its fastest convolution kernels on tensor-core GPUs.
    channels_last = device.type == "cuda" and cfg.model.name == "resnet"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    precision = cfg.train.precision
    optimizer = build_optimizer(cfg.optim, model)
    n_params = sum(p.numel() for p in model.parameters())
    n_train, batch_size = len(splits.train_y), cfg.train.batch_size
    if n_train < batch_size:
        raise ConfigError(
            f"train.batch_size={batch_size} exceeds the {n_train} training images; lower it"
        )
    steps_per_epoch = n_train // batch_size
    if cfg.train.batches == "non_iid":
        steps_per_epoch = (
            len(
                non_iid_order(
                    splits.train_y,
                    batch_size,
                    cfg.train.classes_per_batch,
                    torch.Generator(device=device).manual_seed(0),
                )
            )
            // batch_size
        )
    epochs = min(cfg.train.epochs, cfg.train.max_epochs or cfg.train.epochs)
    total_steps = steps_per_epoch * epochs
    lr_factor = schedule_fn(total_steps, steps_per_epoch, cfg.schedule)  # resolved once
    eval_n = min(cfg.train.eval_train_max, n_train)
    augmenting = is_active(cfg.augment)
    l1, l2 = float(cfg.regularization.l1), float(cfg.regularization.l2)
    penalized = l1 > 0 or l2 > 0
    progress_aware = any(hasattr(m, "set_progress") for m in model.modules())
    needs_closure = cfg.optim.name == "lbfgs"
    base_lr = float(cfg.optim.lr)
    # A loss this far above chance level (ln C) means the run has left any sensible basin.
    diverge_at = cfg.train.diverge_factor * math.log(splits.n_classes)

    checkpoint = Checkpoint(out, cfg.train.checkpoint, digest)
    history: list[dict] = []
    best = BestEpoch(cfg.train.early_stopping, cfg.train.patience)
    status, diverged_step, train_s, eval_s, start_epoch = "ok", None, 0.0, 0.0, 1
    resumed = checkpoint.load()
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        generator.set_state(resumed["generator"])
        torch.set_rng_state(resumed["torch_rng"])
        history = resumed["history"]
        best.load_state_dict(resumed["best"])
        train_s, eval_s = resumed["train_s"], resumed["eval_s"]
        start_epoch = resumed["epoch"] + 1
        log.info("resumed from %s at epoch %d", checkpoint.path, start_epoch)

    log.info(
        "%s/%s seed %d: %s (%d parameters) on %d %s images, %d epochs × %d steps, %s at lr %g",
        cfg.run.ablation,
        cfg.run.variant,
        cfg.seed,
        cfg.model.name,
        n_params,
        n_train,
        cfg.data.name,
        epochs,
        steps_per_epoch,
        cfg.optim.name,
        base_lr,
    )
    step = (start_epoch - 1) * steps_per_epoch
    for epoch in range(start_epoch, epochs + 1):
        model.train()
        if cfg.train.batches == "non_iid":
            order = non_iid_order(
                splits.train_y, batch_size, cfg.train.classes_per_batch, generator
            )
        else:
            order = iid_order(n_train, batch_size, generator)
        losses = torch.empty(steps_per_epoch, device=device)
        checked = 0
        t0 = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb = splits.train_x.index_select(0, idx)
            if augmenting:
                xb = augment_batch(xb, cfg.augment, generator)
            xb = normalize(xb, mean, std).contiguous(memory_format=memory_format)
            yb = splits.train_y.index_select(0, idx)
            lr = base_lr * lr_factor(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if progress_aware:
                set_progress(model, step / total_steps)

            def closure(xb=xb, yb=yb):
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, precision):
                    logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
                objective = loss + penalty(model, l1, l2) if penalized else loss
                objective.backward()
                closure.loss = loss.detach()
                return objective

            if needs_closure:
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
            losses[i] = closure.loss
            step += 1
            # On the CPU a check per step is free; on a GPU it would sync, so check per 50 steps.
            if device.type == "cpu" or i % 50 == 49 or i == steps_per_epoch - 1:
                seen = losses[checked : i + 1]  # only the steps not checked yet
                checked = i + 1
                bad = ~torch.isfinite(seen) | (seen > diverge_at)
                if bool(bad.any()):
                    first = checked - len(seen) + int(bad.nonzero()[0])
                    diverged_step = step - (i + 1) + first
                    status = "diverged"
                    break
        epoch_s = time.perf_counter() - t0
        train_s += epoch_s
        if status == "diverged":
            log.warning(
                "diverged at step %d (epoch %d): loss %s",
                diverged_step,
                epoch,
                float(losses[diverged_step - (step - (i + 1))]),
            )
            break

        t0 = time.perf_counter()
        scores = [
            evaluate(model, x, y, mean, std, cfg.train.eval_batch_size, precision, memory_format)
            for x, y in (
                (splits.train_x[:eval_n], splits.train_y[:eval_n]),
                (splits.val_x, splits.val_y),
                (splits.test_x, splits.test_y),
            )
        ]
        (train_loss, train_acc), (val_loss, val_acc), (test_loss, test_acc) = scores
        epoch_eval_s = time.perf_counter() - t0
        eval_s += epoch_eval_s
        row = dict(
            epoch=epoch,
            step=step,
            lr=lr,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=epoch_s,
            eval_seconds=epoch_eval_s,
        )
        history.append(row)
        log.info(
            "epoch %d/%d  train %.4f/%.3f  val %.4f/%.3f  test %.4f/%.3f  %.1fs (+%.1fs eval)",
            epoch,
            epochs,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
            test_loss,
            test_acc,
            epoch_s,
            epoch_eval_s,
        )
        if not math.isfinite(val_loss):
            status, diverged_step = "diverged", step
            break
        if best.update(epoch, val_loss, model):
            status = "stopped_early"
            log.info("early stop: no lower validation loss for %d epochs", cfg.train.patience)
            break
        checkpoint.save(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            generator=generator.get_state(),
            torch_rng=torch.get_rng_state(),
            history=history,
            best=best.state_dict(),
            train_s=train_s,
            eval_s=eval_s,
            epoch=epoch,
        )

    if status != "diverged" and best.restore(model):
        final = history[best.epoch - 1]  # the returned model is the best validation epoch's
    else:
        final = history[-1] if history else {}
    epochs_run = len(history)
    sparsity, norm = weight_statistics(model)
    best_row = history[best.epoch - 1] if best.epoch else {}
    nan = math.nan
    metrics = {
        "status": status,
        "ablation": cfg.run.ablation,
        "variant": cfg.run.variant,
        "seed": cfg.seed,
        "scale": OmegaConf.select(cfg, "run.scale", default=None),
        **{
            k: final.get(k, nan)
            for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
        },
        "gap_acc": final.get("train_acc", nan) - final.get("test_acc", nan),
        "gap_loss": final.get("test_loss", nan) - final.get("train_loss", nan),
        "best_epoch": best.epoch or None,
        "best_val_loss": best_row.get("val_loss", nan),
        "best_val_acc": best_row.get("val_acc", nan),
        "epochs_run": epochs_run,
        "diverged_step": diverged_step,
        "wall_s": time.perf_counter() - wall_start,
        "train_s": train_s,
        "eval_s": eval_s,
        "s_per_epoch": train_s / max(epochs_run, 1),
        "images_per_s": (step - (start_epoch - 1) * steps_per_epoch) * batch_size / train_s
        if train_s > 0
        else nan,
        "n_params": n_params,
        "weight_sparsity": sparsity,
        "weight_norm": norm,
        "lr": base_lr,
        "steps_per_epoch": steps_per_epoch,
        "config_hash": digest,
    }
    metrics = {k: finite_or_none(v) for k, v in metrics.items()}
    versions, hardware = environment(device)
    metrics.update(
        config=OmegaConf.to_container(cfg, resolve=True), versions=versions, hardware=hardware
    )
    write_history(out / "history.csv", history)
    with atomic_path(out / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    checkpoint.remove()
    log.info(
        "%s: test acc %.4f, val loss %.4f (best epoch %s), %.1f s",
        status,
        metrics["test_acc"] or nan,
        metrics["val_loss"] or nan,
        metrics["best_epoch"],
        metrics["wall_s"],
    )
    return metrics


def setup_logging(out: Path, verbose: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    # A run resuming from its checkpoint keeps the log of the part before the interruption.
    resuming = (out / "checkpoint.pt").exists()
    file_handler = logging.FileHandler(out / "train.log", mode="a" if resuming else "w")
    console = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(fmt)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    log.handlers[:] = [file_handler, console]
    log.setLevel(logging.INFO)
    log.propagate = False


def run(cfg: DictConfig) -> int:
    if not cfg.run.out:
        print("error: run.out is not set; pass run.out=<run folder>", file=sys.stderr)
        return 2
    from study.components.data import DataError

    out = Path(cfg.run.out)
    setup_logging(out, cfg.run.get("verbose", True))
    try:
        train_run(cfg)
    except (ConfigError, DataError) as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    import hydra

    # Hydra's own logging files and output folders are switched off: the run writes only run.out.
    sys.argv += [
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(
        lambda cfg: sys.exit(run(cfg))
    )
    app()


if __name__ == "__main__":
    main()
