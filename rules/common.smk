# Planning: read and validate every ablation file, expand it into runs. Runs at `snakemake -n`,
# so a malformed ablation stops the study before anything trains.
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from study.config import compose
from study.errors import ConfigError
from study.figure_catalog import check_figure_names
from study.figure_catalog import figure_names as ablation_figures
from study.paths import ScaleDir, report_dir
from study.planning.ablation import AblationError, plan
from study.schemas import config_error

try:  # also fills in the schema's defaults (scale, train_threads)
    validate(config, schema="../schemas/workflow.schema.yaml")
except WorkflowError as err:
    sys.exit(f"error: {config_error(err)}")
SCALE = str(config.get("scale", "default"))
S = ScaleDir.of(config["results"], SCALE)  # every path of this scale's results
R = str(S.root)
# The default scale's report is the paper in the repository; other scales keep theirs in results/.
PAPER = str(report_dir(SCALE, config["results"], config["paper"]))
# Every setting of a scale is in conf/scale/<scale>.yaml; the workflow's own are under run:.
SCALE_RUN = compose([f"scale={SCALE}"]).run
ABLATION_DIR = config["ablations"]
CLAIMS = config["claims"]
TRAIN_THREADS = int(config.get("train_threads", 1))

try:
    PLAN = plan(ABLATION_DIR, SCALE)
except AblationError as err:
    sys.exit(f"error: {err}")

# Every figure an ablation asks for must be one it can have: refused here, before anything runs
# (from the figure catalog, which needs no plotting library).
try:
    for _ablation in PLAN.ablations.values():
        check_figure_names(_ablation)
except ConfigError as err:
    sys.exit(f"error: {err}")

ABLATIONS = PLAN.ablations
RUNS = {(r.ablation, r.variant, str(r.seed)): r for r in PLAN.runs}
TUNING = {(t.ablation, t.variant, t.level, str(t.seed)): t for t in PLAN.tuning}
DATASETS = {r.dataset: r.data_root for r in [*PLAN.runs, *PLAN.tuning]}


wildcard_constraints:
    ablation=r"[a-z0-9][a-z0-9_.-]*",
    variant=r"[a-z0-9][a-z0-9_.-]*",
    level=r"[a-z0-9_]+-[0-9.e+-]+",
    seed=r"\d+",
    dataset=r"[a-z0-9_]+",


def quoted(overrides):
    return " ".join(shlex.quote(o) for o in overrides)


def run_of(wildcards):
    return RUNS[(wildcards.ablation, wildcards.variant, wildcards.seed)]


def tuning_run_of(wildcards):
    return TUNING[(wildcards.ablation, wildcards.variant, wildcards.level, wildcards.seed)]


def gpus(job):
    # Training jobs claim a GPU only when their config asks for CUDA, so `--resources gpu=N`
    # (locally) and the SLURM profile (on a cluster) can place them.
    return 1 if job.device == "cuda" else 0


def scale_dir(wildcards):
    # A function, not a string: jobs then get the folder from the workflow (snakemake --lint).
    return R


def run_path(name, ablation="{ablation}", variant="{variant}", seed="{seed}"):
    """A file of a run folder; with the default arguments, the rules' wildcard pattern."""
    return str(S.run(ablation, variant, seed) / name)


def tuning_path(name, ablation="{ablation}", variant="{variant}", level="{level}", seed="{seed}"):
    return str(S.tuning_run(ablation, variant, level, seed) / name)


def run_files(ablation=None, name="metrics.json"):
    return [
        run_path(name, r.ablation, r.variant, r.seed)
        for r in PLAN.runs
        if ablation is None or r.ablation == ablation
    ]


def shift_files():
    return [
        run_path("shift.csv", r.ablation, r.variant, r.seed)
        for r in PLAN.runs
        if ABLATIONS[r.ablation].shift
    ]


def tuning_files(ablation):
    return [
        tuning_path("metrics.json", t.ablation, t.variant, t.level, t.seed)
        for t in PLAN.tuning
        if t.ablation == ablation
    ]


def searched_keys(ablation):
    """``variant=key`` of every searched variant, for the selection step."""
    searches = ABLATIONS[ablation].tune["searches"]
    return " ".join(f"--key {variant}={search.key}" for variant, search in searches.items())


def selections():
    return [str(S.selection(name)) for name, a in ABLATIONS.items() if a.tune]


def figure_names(ablation):
    return ablation_figures(ABLATIONS[ablation])


def figure_files(ext="png"):
    return [
        str(S.figure(name, figure, ext)) for name in ABLATIONS for figure in figure_names(name)
    ]


def table_files():
    names = ["runs", "history", "shift", "tuning", "claims"]
    per_ablation = [(name, ext) for name in ABLATIONS for ext in ("csv", "md", "tex")]
    return [str(S.table(name)) for name in names] + [
        str(S.table(name, ext)) for name, ext in per_ablation
    ]


# Batches of runs per job (runs_per_job in conf/workflow.yaml); see rules/train.smk.
RUNS_PER_JOB = int(config.get("runs_per_job", 1))
RUN_FILES = ("metrics.json", "history.csv", "model.pt", "config.yaml")


def batched(jobs, member, size):
    """{members tuple: ["<ablation>/<variant>", ...]}: each variant's jobs in plan order, cut
    into batches of ``size``."""
    by_variant = {}
    for job in jobs:
        by_variant.setdefault(f"{job.ablation}/{job.variant}", []).append(str(member(job)))
    groups = {}
    for pair, items in by_variant.items():
        for i in range(0, len(items), size):
            groups.setdefault(tuple(items[i : i + size]), []).append(pair)
    return groups


TRAIN_BATCHES = batched(PLAN.runs, lambda r: r.seed, RUNS_PER_JOB)
# A tuning run is a level (the searched value) at a tuning seed: "<level>@<seed>".
TUNING_BATCHES = batched(PLAN.tuning, lambda t: f"{t.level}@{t.seed}", RUNS_PER_JOB)


def level_seed(member):
    level, seed = member.split("@")
    return level, seed


def batch_rules(kind, groups):
    """(rule name, members, variants) per group; the largest group's rule is named ``kind``."""
    ordered = sorted(groups.items(), key=lambda g: -len(g[1]))
    return [(kind if i == 0 else f"{kind}_{i}", m, p) for i, (m, p) in enumerate(ordered)]


def pair_pattern(pairs):
    return "|".join(re.escape(p) for p in pairs)


def pair_path(path_of, name, member):
    """A run file's pattern with one {pair} wildcard for "<ablation>/<variant>"."""
    return path_of(name, "{ablation}", "{variant}", member).replace("{ablation}/{variant}", "{pair}")


def tuning_pair_path(name, member):
    """A tuning run file's pattern with the {pair} wildcard, for a "<level>@<seed>" member."""
    return tuning_path(name, "{ablation}", "{variant}", *level_seed(member)).replace(
        "{ablation}/{variant}", "{pair}"
    )


def split_pair(wildcards):
    return wildcards.pair.split("/", 1)


def batch_run(wildcards):
    """The batch's first run: the batch shares its overrides, dataset and device."""
    ablation, variant = split_pair(wildcards)
    return next(r for r in PLAN.runs if r.ablation == ablation and r.variant == variant)


def batch_tuning_run(wildcards):
    ablation, variant = split_pair(wildcards)
    return next(t for t in PLAN.tuning if t.ablation == ablation and t.variant == variant)


def selection_input(run):
    """The selection file a tuned run reads: its own ablation's, or the one tuned_from names."""
    return [str(S.selection(run.selection[0]))] if run.selection else []


def tuned_lr(run, input):
    """train.lr_from for a tuned run; <json>@<entry> when its entry is another variant's."""
    if not input.selection:
        return []
    entry = "" if run.selection[1] == run.variant else f"@{run.selection[1]}"
    return [f"train.lr_from={input.selection[0]}{entry}"]


def where(job):
    """The run's place in the study, shared by the batch."""
    return [f"run.ablation={job.ablation}", f"run.variant={job.variant}",
            f"run.cache={S.data_cache(job.dataset)}"]  # fmt: skip


def members(overrides):
    """Each run's own overrides after a ``--`` (python -m study.train's batch form)."""
    return " ".join(f"-- {o}" for o in overrides)
