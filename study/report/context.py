"""The report's context: everything the templates show, from the tables, captions and run folders
of one scale (claims ledger, setup, provenance, every run), as plain formatted values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from study import contracts, provenance
from study.analysis.ledger.rule import RULE
from study.paths import ScaleDir
from study.report.answers import abstract, disagreements, interaction_sentence, opening
from study.report.course import course_context, pathologies_sentence
from study.report.experiments import (
    PATHOLOGIES_CAPTION,
    ablation_setup,
    effective_epochs,
    pathologies,
    prior_shift,
    read_shift,
    second_order,
    shift_definitions,
)
from study.report.formatting import (
    anchor,
)
from study.report.ledger import claim_rows
from study.report.method import (
    chosen_values,
    deviations,
    method_line,
    overrides_as_used,
    seeds_used,
)
from study.report.narrative import (
    INTRODUCTION,
    REFERENCES,
    holm_sentence,
    limitations,
    reproduce_command,
    rerun_promise,
    verdict_counts,
)
from study.report.regimes import NO_REGIMES
from study.report.runs import run_ledger, run_rows, study_provenance
from study.report.sections import _ablation_context, _display_width, mark_equivalences
from study.report.setting import setting

TITLE = "How neural networks are trained: a reproducible benchmark of training techniques"
# The course's order of topics: the paper's sections follow it; an ablation not listed comes after
# these, in file-name order. ``python -m study.report --order`` replaces it.
COURSE_ORDER = ("regularization", "optimizers", "schedules", "optimizer_schedule", "normalization")


# Each question's figure in the main text (the others go to the appendix): every variant's test
# accuracy with its interval, compact enough to read at half a page; the paired differences the
# verdicts rest on are in the claims' forest plot and the section's own sentences.
ANSWER_FIGURE = "test_accuracy"
GRID_FIGURE = "grid_heatmap"


class ReportError(RuntimeError):
    """An input the report cannot do without (e.g. no runs.csv) is absent."""


def _setup(runs: pd.DataFrame) -> list[dict[str, str]]:
    """Facts of the setup, from the resolved configs of the runs (config.* columns)."""
    runs = effective_epochs(runs)

    def values(column: str) -> str:
        if column not in runs.columns:
            return ""
        distinct = [v for v in dict.fromkeys(runs[column].tolist())]
        shown = []
        for v in distinct:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                shown.append("all")
            elif isinstance(v, float) and v.is_integer():
                shown.append(str(int(v)))
            else:
                shown.append(str(v))
        return ", ".join(dict.fromkeys(shown))

    facts = [
        ("Dataset", values("config.data.name")),
        ("Training images (subsample of the official training set)", values("config.data.n_train")),
        ("Validation images (held out from training; selection only)", values("config.data.n_val")),
        ("Test images (official test set; reporting only)", values("config.data.n_test")),
        ("Split seed (the same split for every run)", values("config.data.split_seed")),
        ("Model", values("config.model.name")),
        ("Width", values("config.model.width")),
        ("Residual blocks", values("config.model.blocks")),
        ("Epochs", values("config.train.epochs")),
        ("Batch size", values("config.train.batch_size")),
        ("Optimizers", values("config.optim.name")),
        ("Schedules", values("config.schedule.name")),
    ]
    return [{"key": k, "value": v} for k, v in facts if v]


def ordered(ablations: dict[str, Any], order: tuple[str, ...] = COURSE_ORDER) -> list[Any]:
    """The ablations in the paper's order: those named in ``order`` first, then the rest."""
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(ablations, key=lambda n: (rank.get(n, len(rank)), n))
    return [ablations[n] for n in names]


def _extra_figure(scale_dir: Path, rel: str, caption: str) -> dict[str, Any] | None:
    """A figure that belongs to no ablation (the claims forest plot, the second-order scaling)."""
    png = scale_dir / rel
    if not png.is_file():
        return None
    name = Path(rel).stem
    return {"name": name, "ablation": "", "caption": caption, "source": png, "rel": rel,
            "anchor": anchor("fig", name), "width": _display_width(png)}  # fmt: skip


FOREST_CAPTION = (
    "Every claim's effect with the 95% confidence interval its verdict rests on, coloured by "
    "verdict, one panel per unit; the shaded band is the claim's margin of no meaningful effect "
    "(a dashed line: a threshold). An effect beyond the axis is an arrow at its edge with its "
    "numbers written out."
)
SECOND_ORDER_CAPTION = (
    "Newton's method: seconds and bytes per iteration against the number of parameters N on "
    "log-log axes, with the fitted power laws (solid over the sizes fitted, dashed where they "
    "are extrapolated to 1e8); iterations to the target per method; and wall time to the target "
    "of Newton and of the fastest first-order method, with the crossover marked (vertical line) "
    "over the two measured sizes that bracket it (shaded)."
)


def _section(scale_dir: Path, ablation: Any, runs: pd.DataFrame) -> dict[str, Any]:
    section = _ablation_context(scale_dir, ablation, runs)
    section["setup"] = ablation_setup(ablation, runs)
    section["seeds_used"] = seeds_used(section["rows"])
    section["chosen"] = chosen_values(scale_dir, ablation)
    section["setup"]["variants"] = overrides_as_used(
        section["setup"]["variants"], section["chosen"]
    )
    section["method_line"] = method_line(section)
    figures = section["figures"]
    # A grid's question is about its two factors together: its heatmap answers it when drawn.
    wanted = (GRID_FIGURE, ANSWER_FIGURE) if getattr(ablation, "grid", None) else (ANSWER_FIGURE,)
    drawn = {f["name"]: f for f in figures}
    main = next((drawn[n] for n in wanted if n in drawn), figures[0] if figures else None)
    section["main_figure"] = main
    section["appendix_figures"] = [f for f in figures if f is not main]
    return section


def preregistration_status(
    repo: str | Path | None,
    claims_path: Path | None,
    ablations: dict[str, Any],
    ledger: pd.DataFrame,
    scale_dir: Path,
) -> dict[str, Any]:
    """Whether the study's claims and runs match the pre-registration record
    (study.preregistration.check): ``commit`` is the record's commit when it was committed before
    the runs' one commit, ``mismatched`` the (claim id, reason) pairs that differ from it."""
    from study.preregistration import check, record

    repo = Path(repo) if repo else Path.cwd()
    scale = ScaleDir(scale_dir).root.name
    path = repo / record.RECORD
    if claims_path is None or not ablations:
        return {"commit": None, "mismatched": [("*", "no claims file or no ablations")]}
    recorded = (yaml.safe_load(path.read_text()) or {}).get("scale") if path.exists() else None
    if recorded and recorded != scale:
        reason = f"the pre-registration record is of the {recorded} scale"
        return {"commit": None, "mismatched": [("*", reason)]}
    commits = {c for c in ledger.get("commit", []) if isinstance(c, str) and c}
    runs_commit = commits.pop() if len(commits) == 1 else None
    folder = Path(next(iter(ablations.values())).path).parent
    return check.status(repo, Path(claims_path), folder, ledger, runs_commit, record.RECORD)


def study_status(prereg: dict[str, Any]) -> dict[str, Any]:
    """The header's word for the study: confirmatory only when a record exists and every claim's
    inputs match it; otherwise exploratory, naming the claims that differ from the record."""
    confirmatory = bool(prereg.get("commit")) and not prereg.get("mismatched")
    mismatched = [{"id": i, "reason": r} for i, r in prereg.get("mismatched") or []]
    # A reason that holds for the whole study (another scale, no claims) is said once, in the
    # status itself, rather than as the inputs of a claim called "*".
    whole = [m["reason"] for m in mismatched if m["id"] == "*"]
    if confirmatory:
        text = f"confirmatory (pre-registered at {str(prereg['commit'])[:12]})"
    else:
        text = f"exploratory ({'; '.join(whole)})" if whole else "exploratory"
    return {
        "confirmatory": confirmatory,
        "text": text,
        "mismatched": _grouped([m for m in mismatched if m["id"] != "*"]),
    }


def _grouped(mismatched: list[dict[str, Any]], most: int = 5) -> list[dict[str, Any]]:
    """One entry per claim, or, where more than ``most`` claims share a reason (one edited
    scale file touches every claim), one entry naming how many: the header stays a line."""
    by_reason: dict[str, list[str]] = {}
    for m in mismatched:
        by_reason.setdefault(m["reason"], []).append(m["id"])
    out = []
    for reason, ids in by_reason.items():
        if len(ids) > most:
            out.append({"id": f"{len(ids)} claims", "reason": reason, "group": True})
        else:
            out.extend({"id": i, "reason": reason} for i in ids)
    return out


# Wording of the rule that only a pre-registration record can bear out.
_BEFORE_THE_DATA = "declared before the data"


def _rule(ledger: pd.DataFrame | None, status: dict[str, Any], claims: list[dict]) -> str:
    """The verdict rule, with how many of this ledger's verdicts Holm's correction would keep.
    Margins are said to be declared before the data only when the record shows it (a
    confirmatory study) and no claim was changed after a result was seen."""
    rule = RULE
    if not status["confirmatory"] or any(c["changed_after_result"] for c in claims):
        rule = rule.replace(_BEFORE_THE_DATA, "declared in the claims file")
    return f"{rule} {holm_sentence(ledger)}".strip()


def _elsewhere(ablation: Any) -> dict[str, Any]:
    """An ablation that runs only at other scales, as the limitations name it."""
    return {
        "title": ablation.title,
        "scales": list(ablation.scales or []),
        "reason": ablation.scales_reason,
    }


def _shift(scale_dir: Path, ablations: dict[str, Any]) -> dict[str, Any]:
    """The test-time shifts as defined, and the class-prior shift's results per variant."""
    shift = read_shift(scale_dir)
    order = list(getattr(ablations.get("normalization"), "variants", []))
    return {
        "shift_definitions": shift_definitions(shift),
        "prior_shift": prior_shift(shift, order=order),
    }


def _beyond_ablations(scale_dir: Path, sections: list[dict[str, Any]]) -> dict[str, Any]:
    """The claims' forest plot and the experiments on synthetic problems (second-order methods,
    optimization pathologies): their numbers, answers and figures, each None when absent; every
    figure of the report numbered."""
    pathology = pathologies(scale_dir)
    shown = {
        "forest": _extra_figure(scale_dir, "figures/claims_forest.png", FOREST_CAPTION),
        "second_order": second_order(scale_dir),
        "second_order_figure": _extra_figure(
            scale_dir, "figures/second_order/scaling.png", SECOND_ORDER_CAPTION
        ),
        "pathologies": pathology,
        "pathologies_sentence": pathologies_sentence(pathology),
        "pathologies_figure": _extra_figure(
            scale_dir, "figures/pathologies/pathologies.png", PATHOLOGIES_CAPTION
        ),
    }
    extra = (shown["second_order_figure"], shown["pathologies_figure"])
    _number_figures(shown["forest"], sections, *extra)
    return shown


def _number_figures(forest, sections, *extra) -> None:
    """Figures numbered in reading order: the main text's first, then the appendix's."""
    main = [forest, *(s["main_figure"] for s in sections), *extra]
    appendix = [f for s in sections for f in s["appendix_figures"]]
    for number, fig in enumerate((f for f in [*main, *appendix] if f), start=1):
        fig["number"] = number


def _answer(sections: list[dict[str, Any]], claims: list[dict[str, Any]]) -> None:
    """Each section's opening answer (and interaction sentence), once the ledger's equivalence
    verdicts have replaced the tables' better/worse."""
    mark_equivalences(sections, claims)
    for section in sections:
        section["opening"] = opening(section)
        section["interaction"] = interaction_sentence(claims, section["name"])


def _read_runs(scale_dir: Path, ablations: dict[str, Any]) -> pd.DataFrame:
    """runs.csv of the study's own ablations (a stale table may hold another study's runs)."""
    runs_path = ScaleDir(scale_dir).table("runs")
    runs = contracts.read_csv(runs_path, contracts.RUNS, optional=True)
    if runs is None:
        raise ReportError(f"the report needs {runs_path}; run the tables")
    if "ablation" in runs.columns:
        runs = runs[runs["ablation"].isin(list(ablations))].reset_index(drop=True)
    return runs


def build_context(
    scale_dir: str | Path,
    ablations: dict[str, Any],
    claims_path: str | Path | None = None,
    scale: str | None = None,
    repo: str | Path | None = None,
    order: tuple[str, ...] = COURSE_ORDER,
    git: dict[str, Any] | None = None,
    elsewhere: list[Any] = (),
) -> dict[str, Any]:
    """Everything the templates show, as plain values (formatted strings, paths, lists).

    ``git`` is the tree's state (study.provenance.git_state) taken before the report wrote
    anything: its own outputs in paper/ are tracked files and must not make it look dirty.
    ``elsewhere``: the ablations that run only at other scales (named among the limitations)."""
    scale_dir = Path(scale_dir)
    git = git or provenance.git_state(Path(repo) if repo else Path.cwd())
    runs = _read_runs(scale_dir, ablations)
    sections = [_section(scale_dir, a, runs) for a in ordered(ablations, order)]
    synthetic = _beyond_ablations(scale_dir, sections)
    figures = {f"{f['ablation']}/{f['name']}": f for s in sections for f in s["figures"]}
    claims_table = contracts.read_csv(ScaleDir(scale_dir).table("claims"), contracts.CLAIMS, True)
    claims = claim_rows(claims_table, Path(claims_path) if claims_path else None, figures)
    _answer(sections, claims)
    ledger = run_ledger(scale_dir, runs)
    status = study_status(preregistration_status(repo, claims_path, ablations, ledger, scale_dir))
    context = {
        "title": TITLE,
        "scale": scale or scale_dir.name,
        "status": status,
        "sections": sections,
        "claims": claims,
        "rule": _rule(claims_table, status, claims),
        "claim_counts": verdict_counts(claims),
        "setup": _setup(runs),
        "regime": (regime := setting(effective_epochs(runs))),
        "setting": regime["text"],
        "deviations": deviations(),
        **_shift(scale_dir, ablations),
        **synthetic,
        **NO_REGIMES,  # cli.py adds the other regime's verdicts (report/regimes.py)
        **course_context(claims, Path(claims_path) if claims_path else None),
        "provenance": study_provenance(scale_dir, runs, ledger, git),
        "runs": run_rows(runs),
        "ledger": ledger,
        "references": [{"key": k, "text": t} for k, t in REFERENCES],
        "introduction": list(INTRODUCTION),
        "reproduce": reproduce_command(scale or scale_dir.name),
        "rerun_promise": rerun_promise(),
        "elsewhere": [_elsewhere(a) for a in elsewhere],
    }
    context["abstract"] = abstract(context)
    context["discussion"] = disagreements(claims, context["setting"])
    context["limitations"] = limitations(context)
    return context
