# Planning: read and validate every ablation file, expand it into runs. Runs at `snakemake -n`,
# so a malformed ablation stops the study before anything trains.
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from study.planning.ablation import AblationError, plan
from study.schemas import config_error

try:  # also fills in the schema's defaults (scale, train_threads)
    validate(config, schema="../schemas/workflow.schema.yaml")
except WorkflowError as err:
    sys.exit(f"error: {config_error(err)}")
SCALE = str(config.get("scale", "default"))
R = f"{config['results']}/{SCALE}"
PAPER = config["paper"]
ABLATION_DIR = config["ablations"]
CLAIMS = config["claims"]
TRAIN_THREADS = int(config.get("train_threads", 1))

try:
    PLAN = plan(ABLATION_DIR, SCALE)
except AblationError as err:
    sys.exit(f"error: {err}")

ABLATIONS = PLAN.ablations
RUNS = {(r.ablation, r.variant, str(r.seed)): r for r in PLAN.runs}
TUNING = {(t.ablation, t.variant, t.level): t for t in PLAN.tuning}
DATASETS = {r.dataset: r.data_root for r in [*PLAN.runs, *PLAN.tuning]}


wildcard_constraints:
    ablation=r"[a-z0-9][a-z0-9_.-]*",
    variant=r"[a-z0-9][a-z0-9_.-]*",
    level=r"lr-[0-9.e+-]+",
    seed=r"\d+",
    dataset=r"[a-z0-9_]+",


def quoted(overrides):
    return " ".join(shlex.quote(o) for o in overrides)


def run_of(wildcards):
    return RUNS[(wildcards.ablation, wildcards.variant, wildcards.seed)]


def tuning_run_of(wildcards):
    return TUNING[(wildcards.ablation, wildcards.variant, wildcards.level)]


def gpus(job):
    # Training jobs claim a GPU only when their config asks for CUDA, so `--resources gpu=N`
    # (locally) and the SLURM profile (on a cluster) can place them.
    return 1 if job.device == "cuda" else 0


def run_files(ablation=None, name="metrics.json"):
    return [
        f"{R}/{r.folder}/{name}"
        for r in PLAN.runs
        if ablation is None or r.ablation == ablation
    ]


def shift_files():
    return [
        f"{R}/{r.folder}/shift.csv" for r in PLAN.runs if ABLATIONS[r.ablation].shift
    ]


def tuning_files(ablation):
    return [f"{R}/{t.folder}/metrics.json" for t in PLAN.tuning if t.ablation == ablation]


def selections():
    return [f"{R}/selection/{name}.json" for name, a in ABLATIONS.items() if a.tune]


def figure_names(ablation):
    return ["learning_curves", "test_accuracy", *ABLATIONS[ablation].figures]


def figure_files(ext="png"):
    return [
        f"{R}/figures/{name}/{figure}.{ext}"
        for name in ABLATIONS
        for figure in figure_names(name)
    ]


def table_files():
    names = ["runs", "history", "shift", "tuning", "claims"]
    per_ablation = [f"{name}.{ext}" for name in ABLATIONS for ext in ("csv", "md", "tex")]
    return [f"{R}/tables/{name}.csv" for name in names] + [
        f"{R}/tables/{name}" for name in per_ablation
    ]
