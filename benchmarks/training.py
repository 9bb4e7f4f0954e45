"""Everything the benchmark uses of the training code, in one place.

The benchmark drives the real training job, so that what it times is what a study runs: the entry
point ``python -m study.train`` (start-up section), its ``main`` with ``train_run`` replaced by a
first-step probe (start-up), ``train_run`` and ``pick_device`` (throughput loop (a)), and the
torch.optim patch the job applies before its first optimizer call. Should the training code move,
only this module changes.
"""

from __future__ import annotations

# The module a workflow job runs with ``python -m``; its import is timed on its own as well.
TRAIN_ENTRY = "study.train"

# The real job's entry point with only the data left out: ``study.train.main`` (config, logging,
# the batch's per-run reset), then what ``train_run`` imports and builds up to and including its
# first optimizer step.
JOB_PROBE = """
import json, sys
import study.train as train

def first_step(cfg):
    import torch
    import torch.nn.functional as F
    from study.components.augmentations import augment_batch, is_active
    from study.components.data import load_splits, normalize
    from study.components.layers import set_progress
    from study.components.models import build_model
    from study.components.optimizers import build_optimizer
    from study.components.regularizers import penalty
    from study.components.schedules import lr_factor

    torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, (1, 28, 28), 10)
    optimizer = build_optimizer(cfg.optim, model)
    x = torch.randn(cfg.train.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (cfg.train.batch_size,))
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    loaded = [m for m in sys.modules if m.split(".")[0] in HEAVY or m == "torch._dynamo"]
    print(json.dumps(sorted({m.split(".")[0] if m != "torch._dynamo" else m for m in loaded})))

train.train_run = first_step
# The batch form (shared overrides, then each run's after "--") that the workflow's jobs use.
sys.argv = ["study.train", "threads=1", "device=cpu", "run.verbose=false", "--", "run.out=" + OUT]
train.main()
"""


def avoid_compiler_import() -> bool:
    """The job's patch that keeps torch.optim from importing the compiler stack."""
    from study.startup import avoid_compiler_import as patch

    return patch()


def pick_device(name: str):
    """The torch device a job with ``device=name`` trains on."""
    from study.training.run import pick_device as pick

    return pick(name)


def train_run(cfg) -> dict:
    """One training run as a job performs it; returns its metrics (wall_s, train_s, eval_s,
    images_per_s, ...)."""
    from study.training.run import train_run as run

    return run(cfg)
