# Planning: read and validate every ablation file, expand it into runs. Runs at `snakemake -n`,
# so a malformed ablation stops the study before anything trains.
import re
import shlex
import sys
from pathlib import PurePosixPath

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from study.analysis.ledger.claims_file import ClaimsError, load_claims
from study.config import compose
from study.errors import ConfigError
from study.figure_catalog import check_figure_names
from study.figure_catalog import figure_names as ablation_figures
from study.paths import ScaleDir, report_dir
from study.planning.ablation import AblationError, plan
from study.planning.job_batches import batches, slots_of
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
    PLAN = plan(ABLATION_DIR, SCALE, int(config.get("first_seed", 0)))
except AblationError as err:
    sys.exit(f"error: {err}")

# Every figure an ablation asks for must be one it can have: refused here, before anything runs
# (from the figure catalog, which needs no plotting library).
try:
    for _ablation in PLAN.ablations.values():
        check_figure_names(_ablation)
except ConfigError as err:
    sys.exit(f"error: {err}")

# The claims file too: a malformed claim is refused here, not after the study has trained.
try:
    load_claims(CLAIMS)
except ClaimsError as err:
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
        if r.variant in ABLATIONS[r.ablation].shift
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


# Which ready job a free core takes first (Snakemake runs higher priorities first; it otherwise
# prefers the jobs with the largest inputs, so a shift evaluation, whose inputs are saved models,
# went before a training batch, and the last training batch and its shift job then ran alone at
# the end of the study). Tuning gates the final runs of its ablation; the second-order
# experiment is the longest single job; training gates the shorter shift evaluations, which fill
# the end. Longest first leaves no core idle through a long last job.
PRIORITY = {"tune": 3, "second_order": 2, "train": 1, "shift": 0}

# Batches of runs per job (runs_per_job in conf/workflow.yaml); see rules/train.smk.
RUNS_PER_JOB = int(config.get("runs_per_job", 1))
RUN_FILES = ("metrics.json", "history.csv", "model.pt", "config.yaml")


def selection_input(job):
    """The selection file a tuned run reads: its own ablation's, or the one tuned_from names."""
    selection = getattr(job, "selection", None)
    return [str(S.selection(selection[0]))] if selection else []


def tuned_lr(job):
    """train.lr_from for a tuned run; <json>@<entry> when its entry is another variant's (a grid
    cell reading the rate its optimizer was tuned to in another ablation)."""
    selection = getattr(job, "selection", None)
    if not selection:
        return []
    entry = "" if selection[1] == job.variant else f"@{selection[1]}"
    return [f"train.lr_from={S.selection(selection[0])}{entry}"]


def upstream(job):
    """What a run waits for besides its own config: its ablation's tuning selection (final runs
    of a tuned variant), its data cache, and a GPU or not. Runs batched together share it, so no
    run waits for an input it does not need and no batch joins two branches of the DAG."""
    return (job.ablation, tuple(selection_input(job)), job.dataset, job.device)


def given_slots():
    """Runs of one group that may train at once (`--config slots=N`, default 1: batches of
    runs_per_job runs). Read from the config, not from --cores: the batches are the jobs' params,
    so a grouping that followed --cores would make a later `snakemake -n`, or a rerun with other
    cores, see every regrouped job as changed and plan it again."""
    return slots_of(int(config.get("slots", 1)), 1, None)


SLOTS = given_slots()


def batched(jobs, most):
    """The jobs in plan order, cut into batches of runs with the same upstream inputs (a batch
    spans the variants, and seeds or tuning levels, of one ablation): as many batches per group
    as runs can train at once, of at most ``most`` runs (study/planning/job_batches.py)."""
    return batches(jobs, upstream, lambda job: SLOTS(job.device), most)


TRAIN_BATCHES = batched(PLAN.runs, RUNS_PER_JOB)
TUNING_BATCHES = batched(PLAN.tuning, RUNS_PER_JOB)
# Shift evaluations follow the training batches: a batch's saved models are scored by one job.
# A batch keeps only the runs of the variants its ablation scores under shift.
SHIFT_BATCHES = [
    kept
    for kept in ([r for r in b if r.variant in ABLATIONS[r.ablation].shift] for b in TRAIN_BATCHES)
    if kept
]


def run_dir(run):
    return S.run(run.ablation, run.variant, run.seed)


def tuning_dir(run):
    return S.tuning_run(run.ablation, run.variant, run.level, run.seed)


def batch_rules(kind, batches):
    """(rule name, batch) per batch; the first keeps the plain name ``kind``."""
    return [(kind if i == 0 else f"{kind}_{i}", batch) for i, batch in enumerate(batches)]


def batch_log(kind, batch):
    """The job's log, named after its first run and how many follow it, e.g.
    <ablation>/<variant>_seed<k>+5 (tuning runs: <variant>_<level>_seed<k>+5). Batches share no
    run, so the first names the batch; the name stays short whatever the batch size, variant
    names (at most study.planning.ablation.MAX_NAME characters) and seeds. Snakemake prints the
    job's command, which names every run, beside the log's path."""
    first = "_".join(PurePosixPath(batch[0].folder).parts[2:])
    more = f"+{len(batch) - 1}" if len(batch) > 1 else ""
    return str(S.log(f"{kind}/{batch[0].ablation}/{first}{more}"))


def shared_overrides(batch):
    """The overrides every run of the batch has: its place in the study and its inputs."""
    job = batch[0]
    return quoted([f"run.ablation={job.ablation}", f"run.cache={S.data_cache(job.dataset)}"])


def members(batch, folder):
    """Each run's own overrides after a ``--`` (python -m study.train's batch form)."""
    own = [
        [*job.overrides, *tuned_lr(job), f"run.variant={job.variant}", f"seed={job.seed}",
         f"run.out={folder(job)}"]
        for job in batch
    ]  # fmt: skip
    return " ".join(f"-- {quoted(overrides)}" for overrides in own)


def profile_resources(kind):
    """The resources a profile sets for ``kind`` (set-resources in profiles/slurm), given to each
    batch's own rules too: a batch of runs needs the time and memory of a ``train`` (``tune``)
    job, which set-resources gives only to the rules named so."""
    settings = workflow.resource_settings.overwrite_resources.get(kind, {})
    return {name: getattr(value, "raw", value) for name, value in settings.items()}
