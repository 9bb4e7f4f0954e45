"""The study's report: a short paper rendered from the tables, figures and claims of one scale.

Writes ``<out>/report.html`` (self-contained: CSS inline, figures as base64 data URIs, no external
requests, opens from disk) and ``<out>/report.md`` (for a code host: figures copied beside it into
``<out>/figures/<ablation>/`` and LaTeX tables into ``<out>/tables/``). Every statement about the
results is generated from the numbers; the templates only arrange them.

Usage::

    python -m study.report --scale-dir results/default --ablations conf/ablation \\
        --claims conf/claims.yaml --out paper [--scale default]
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from study.analysis.stats import fmt
from study.outputs import atomic_path

__all__ = ["ReportError", "build_context", "main", "render_report", "write_report"]

TEMPLATES = Path(__file__).resolve().parent.parent / "paper" / "templates"
TITLE = "How neural networks are trained: a reproducible benchmark of training techniques"
PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "hydra-core",
    "snakemake",
    "matplotlib",
    "seaborn",
    "jinja2",
)
# Verdict words of the tables (better/worse) and of the claims ledger, mapped to a CSS class.
VERDICT_CLASS = {
    "better": "good",
    "supported": "good",
    "worse": "bad",
    "contradicted": "bad",
    "inconclusive": "neutral",
    "not tested": "muted",
    "not evaluated": "muted",
}


_VERDICT_ORDER = {"supported": 0, "contradicted": 1, "inconclusive": 2, "not tested": 3}


class ReportError(RuntimeError):
    """An input the report cannot do without (e.g. no runs.csv) is absent."""


# ------------------------------------------------------------------------------------------------
# Formatting: three significant digits, accuracies as percentages
# ------------------------------------------------------------------------------------------------


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _finite(x: Any) -> bool:
    return math.isfinite(_num(x))


def pct(x: Any) -> str:
    """A fraction as a percentage: 0.8512 → '85.1%'."""
    return f"{fmt(100 * _num(x))}%" if _finite(x) else "n/a"


def signed(text: str, x: float) -> str:
    return f"+{text}" if _finite(x) and x > 0 else text


def is_accuracy(metric: str) -> bool:
    return "acc" in str(metric)


def value(x: Any, metric: str) -> str:
    """A metric value: accuracies as percentages, accuracy gaps (train − test) in percentage
    points, everything else to 3 significant digits."""
    if is_accuracy(metric) and str(metric).startswith("gap"):
        return f"{fmt(100 * _num(x))} pp" if _finite(x) else "n/a"
    return pct(x) if is_accuracy(metric) else fmt(_num(x))


def diff(x: Any, metric: str) -> str:
    """A difference of a metric: percentage points for accuracies, signed."""
    x = _num(x)
    if not math.isfinite(x):
        return "n/a"
    return signed(f"{fmt(100 * x)} pp", x) if is_accuracy(metric) else signed(fmt(x), x)


def interval(lo: Any, hi: Any, metric: str, as_diff: bool = False) -> str:
    """'[lo, hi]' in the units of ``value``/``diff``; empty when the interval is unknown."""
    if not (_finite(lo) and _finite(hi)):
        return ""
    f = (lambda v: diff(v, metric)) if as_diff else (lambda v: value(v, metric))
    return f"[{f(lo)}, {f(hi)}]"


def count(x: Any) -> str:
    """An integer-valued number (epochs, seeds) without decimals."""
    x = _num(x)
    return str(int(x)) if math.isfinite(x) and x.is_integer() else fmt(x)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{fmt(seconds)} s"
    if seconds < 7200:
        return f"{fmt(seconds / 60)} min"
    return f"{fmt(seconds / 3600)} h"


def anchor(*parts: str) -> str:
    """An HTML id from names (which are slugs, but the report must not trust that)."""
    return "-".join(re.sub(r"[^a-z0-9_.-]+", "-", str(p).lower()).strip("-") for p in parts)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_escape(text: Any) -> str:
    """Text safe in Markdown (tables included): markup characters escaped, HTML as entities."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

_STR = {"ablation": str, "variant": str, "status": str, "id": str, "verdict": str, "figure": str}


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype=_STR, keep_default_na=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo: Path) -> dict[str, Any]:
    """Commit and dirty flag of the working tree; 'unknown' outside a repository."""
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown (not a git repository, or no commit yet)", "dirty": None}
    status = _git(repo, "status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> list[dict[str, str]]:
    rows = [{"name": "python", "version": platform.python_version()}]
    for name in PACKAGES:
        try:
            rows.append({"name": name, "version": importlib.metadata.version(name)})
        except importlib.metadata.PackageNotFoundError:
            continue
    return rows


def _run_environments(scale_dir: Path) -> tuple[list[str], list[str]]:
    """Distinct package versions and hardware recorded by the runs (from their metrics.json)."""
    versions: dict[str, None] = {}
    hardware: dict[str, None] = {}
    for path in sorted((scale_dir / "runs").glob("*/*/seed*/metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for target, key in ((versions, "versions"), (hardware, "hardware")):
            entry = metrics.get(key)
            if isinstance(entry, dict) and entry:
                target[", ".join(f"{k} {v}" for k, v in sorted(entry.items()))] = None
    return list(versions), list(hardware)


# ------------------------------------------------------------------------------------------------
# Context
# ------------------------------------------------------------------------------------------------


def _display_width(png: Path) -> int | None:
    """CSS width at which a figure shows at its designed size (100 CSS px per inch)."""
    from study.figures import PNG_DPI

    header = png.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return round(int.from_bytes(header[16:20], "big") * 100 / PNG_DPI)


def _figures_of(scale_dir: Path, ablation: Any) -> list[dict[str, Any]]:
    from study.figures import figure_names

    folder = scale_dir / "figures" / ablation.name
    captions_path = folder / "captions.json"
    captions = json.loads(captions_path.read_text()) if captions_path.is_file() else {}
    out = []
    for name in figure_names(ablation):
        png = folder / f"{name}.png"
        if not png.is_file():
            continue
        out.append(
            {
                "name": name,
                "ablation": ablation.name,
                "caption": captions.get(name, name.replace("_", " ").capitalize() + "."),
                "source": png,
                "rel": f"figures/{ablation.name}/{name}.png",
                "anchor": anchor("fig", ablation.name, name),
                "width": _display_width(png),
            }
        )
    return out


# Per-variant facts beyond accuracy: when the best validation epoch came, how long training ran,
# and what the weights look like (the L1-sparsity and weight-norm claims).
DYNAMICS = ("best_epoch", "epochs_run", "weight_sparsity", "weight_norm", "gap_loss")


def _selection_rows(scale_dir: Path, ablation: Any) -> list[dict[str, Any]]:
    """The learning rates the tuning step chose on the validation split (tuned ablations)."""
    table = _read_csv(scale_dir / "selection" / f"{ablation.name}.csv")
    if table is None or not ablation.tune:
        return []
    rows = []
    for _, r in table.iterrows():
        note = []
        if str(r.get("all_diverged")) == "True":
            note.append("every rate diverged")
        elif str(r.get("at_edge")) == "True":
            note.append("best rate on the edge of the grid")
        n_div = int(_num(r.get("n_diverged"))) if _finite(r.get("n_diverged")) else 0
        if n_div:
            note.append(f"{n_div} rate{'s' if n_div > 1 else ''} diverged")
        rows.append(
            {
                "variant": str(r["variant"]),
                "lr": fmt(_num(r.get("lr"))),
                "value": fmt(_num(r.get("value"))),
                "metric": str(r.get("metric", "")),
                "note": "; ".join(note),
            }
        )
    return rows


def _variant_rows(summary: pd.DataFrame, baseline: str) -> list[dict[str, Any]]:
    rows = []
    for _, r in summary.iterrows():
        is_base = str(r["variant"]) == baseline
        n = int(_num(r.get("n_seeds")) or 0) if _finite(r.get("n_seeds")) else 0
        n_div = int(_num(r.get("n_diverged"))) if _finite(r.get("n_diverged")) else 0
        n_stop = int(_num(r.get("n_stopped_early"))) if _finite(r.get("n_stopped_early")) else 0
        row = {
            "variant": str(r["variant"]),
            "is_baseline": is_base,
            "n": n,
            "n_diverged": n_div,
            "n_stopped_early": n_stop,
            "seeds": str(n)
            + (f" (diverged {n_div}/{n})" if n_div else "")
            + (f" (stopped early {n_stop}/{n})" if n_stop else ""),
        }
        for m in (*("test_acc", "test_loss", "gap_acc", "s_per_epoch"), *DYNAMICS):
            row[m] = value(r.get(f"{m}_mean"), m)
            row[f"{m}_ci"] = interval(r.get(f"{m}_lo"), r.get(f"{m}_hi"), m)
            row[f"{m}_mean_raw"] = _num(r.get(f"{m}_mean"))
        row["epochs_run"] = count(r.get("epochs_run_mean"))
        for m in ("test_acc", "gap_acc", "test_loss"):
            row[f"{m}_diff_raw"] = _num(r.get(f"{m}_diff"))
            row[f"{m}_diff"] = "" if is_base else diff(r.get(f"{m}_diff"), m)
            row[f"{m}_diff_ci"] = (
                "" if is_base else interval(r.get(f"{m}_diff_lo"), r.get(f"{m}_diff_hi"), m, True)
            )
            p = r.get(f"{m}_p_holm")
            lo, hi = _num(r.get(f"{m}_diff_lo")), _num(r.get(f"{m}_diff_hi"))
            row[f"{m}_ci_excludes_0"] = _finite(lo) and _finite(hi) and not lo <= 0 <= hi
            row[f"{m}_p_holm"] = "" if is_base else (fmt(_num(p), 2) if _finite(p) else "n/a")
            verdict = r.get(f"{m}_verdict")
            row[f"{m}_verdict"] = "" if is_base or pd.isna(verdict) else str(verdict)
            pairs = r.get(f"{m}_pairs")
            row[f"{m}_pairs"] = int(_num(pairs)) if _finite(pairs) else 0
        rows.append(row)
    return rows


_METRIC_WORDS = {
    "test_acc": "test accuracy",
    "gap_acc": "generalization gap (train − test accuracy)",
    "test_loss": "test loss",
}


def _effect_sentence(row: dict[str, Any], baseline: str, metric: str) -> str:
    words = _METRIC_WORDS[metric]
    if not row[f"{metric}_diff"] or row[f"{metric}_diff"] == "n/a":
        return f"{words}: no paired comparison with {baseline} is possible"
    text = f"{words} {row[f'{metric}_diff']} relative to {baseline}"
    details = []
    if row[f"{metric}_diff_ci"]:
        details.append(f"95% CI {row[f'{metric}_diff_ci']}")
    if row[f"{metric}_p_holm"] and row[f"{metric}_p_holm"] != "n/a":
        details.append(f"Holm-adjusted p = {row[f'{metric}_p_holm']}")
    details.append(f"{row[f'{metric}_pairs']} paired seeds")
    text += f" ({'; '.join(details)})"
    verdict = row[f"{metric}_verdict"] or "inconclusive"
    if verdict == "inconclusive":
        if not row[f"{metric}_diff_ci"]:
            reason = "fewer than two paired seeds"
        elif row[f"{metric}_ci_excludes_0"]:
            reason = "not significant after Holm correction over the ablation's variants"
        else:
            reason = "the interval contains 0"
        return f"{text}: inconclusive, {reason}"
    return f"{text}: {verdict}"


def _ablation_context(scale_dir: Path, ablation: Any, runs: pd.DataFrame) -> dict[str, Any]:
    summary = _read_csv(scale_dir / "tables" / f"{ablation.name}.csv")
    own = runs[runs["ablation"] == ablation.name] if "ablation" in runs.columns else runs.iloc[:0]
    ctx: dict[str, Any] = {
        "name": ablation.name,
        "title": ablation.title,
        "question": ablation.question,
        "baseline": ablation.baseline,
        "seeds": _planned_seeds(ablation, own),
        "n_variants": len(ablation.variants),
        "anchor": anchor("ablation", ablation.name),
        "n_runs": len(own),
        "n_diverged": int((own.get("status", pd.Series(dtype=str)) == "diverged").sum()),
        "rows": [],
        "sentences": [],
        "figures": _figures_of(scale_dir, ablation),
        "tex": None,
        "best": None,
        "better": [],
        "worse": [],
        "noise": [],
    }
    tex = scale_dir / "tables" / f"{ablation.name}.tex"
    if tex.is_file():
        ctx["tex"] = {"source": tex, "rel": f"tables/{ablation.name}.tex"}
    if summary is None or summary.empty:
        return ctx
    rows = _variant_rows(summary, ablation.baseline)
    ctx["rows"] = rows
    ctx["selection"] = _selection_rows(scale_dir, ablation)
    ranked = [r for r in rows if math.isfinite(r["test_acc_mean_raw"])]
    if ranked:
        best = max(ranked, key=lambda r: r["test_acc_mean_raw"])
        ctx["best"] = best
    for row in rows:
        if row["is_baseline"]:
            continue
        verdict = row["test_acc_verdict"] or "inconclusive"
        entry = {
            "variant": row["variant"],
            "diff": row["test_acc_diff"],
            "ci": row["test_acc_diff_ci"],
        }
        {"better": ctx["better"], "worse": ctx["worse"]}.get(verdict, ctx["noise"]).append(entry)
        sentence = {
            "variant": row["variant"],
            "verdict": verdict,
            "text": _effect_sentence(row, ablation.baseline, "test_acc"),
            "diverged": (
                f"{row['n_diverged']} of {row['n']} runs diverged." if row["n_diverged"] else ""
            ),
        }
        ctx["sentences"].append(sentence)
    return ctx


def _claims(scale_dir: Path, claims_path: Path | None, figures: dict[str, dict]) -> list[dict]:
    table = _read_csv(scale_dir / "tables" / "claims.csv")
    if table is None and claims_path is not None and Path(claims_path).is_file():
        from study.analysis.claims import load_claims

        table = pd.DataFrame(
            [
                {
                    "id": c["id"],
                    "claim": c["claim"],
                    "ablation": c.get("ablation", ""),
                    "metric": c.get("metric", ""),
                    "verdict": "not evaluated",
                    "figure": c.get("figure", ""),
                    "detail": "tables/claims.csv does not exist yet",
                }
                for c in load_claims(claims_path)
            ]
        )
    if table is None:
        return []
    out = []
    for _, r in table.iterrows():
        metric = "" if pd.isna(r.get("metric")) else str(r.get("metric"))
        effect = r.get("effect")
        figure = "" if pd.isna(r.get("figure")) else str(r.get("figure"))
        verdict = "" if pd.isna(r.get("verdict")) else str(r.get("verdict"))
        out.append(
            {
                "id": str(r.get("id", "")),
                "claim": str(r.get("claim", "")),
                "ablation": "" if pd.isna(r.get("ablation")) else str(r.get("ablation")),
                "metric": metric,
                "effect": diff(effect, metric) if _finite(effect) else "",
                "ci": interval(r.get("lo"), r.get("hi"), metric, as_diff=True),
                "verdict": verdict,
                "verdict_class": VERDICT_CLASS.get(verdict, "neutral"),
                "figure": figure,
                "figure_ref": figures.get(figure),
                "detail": "" if pd.isna(r.get("detail")) else str(r.get("detail")),
            }
        )
    return out


def _planned_seeds(ablation: Any, runs: pd.DataFrame) -> int:
    """Seeds per variant as run: the ablation's own number, capped by the scale (plan.max_seeds)."""
    cap = runs.get("config.plan.max_seeds", pd.Series(dtype=float)).dropna()
    return min(ablation.seeds, int(cap.max())) if len(cap) else ablation.seeds


def _effective_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """Epochs as trained: a scale may cap what an ablation asks for (train.max_epochs)."""
    if "config.train.epochs" not in runs.columns or "config.train.max_epochs" not in runs.columns:
        return runs
    cap = pd.to_numeric(runs["config.train.max_epochs"], errors="coerce")
    runs = runs.copy()
    runs["config.train.epochs"] = runs["config.train.epochs"].where(
        cap.isna(), runs["config.train.epochs"].clip(upper=cap)
    )
    return runs


def _setup(runs: pd.DataFrame, ablations: dict[str, Any]) -> list[dict[str, str]]:
    """Facts of the setup, from the resolved configs of the runs (config.* columns)."""
    runs = _effective_epochs(runs)

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
        (
            "Seeds per variant",
            ", ".join(
                f"{a.name} {_planned_seeds(a, runs[runs['ablation'] == a.name])}"
                for a in ablations.values()
            )
            if "ablation" in runs.columns
            else "",
        ),
    ]
    return [{"key": k, "value": v} for k, v in facts if v]


def build_context(
    scale_dir: str | Path,
    ablations: dict[str, Any],
    claims_path: str | Path | None = None,
    scale: str | None = None,
    repo: str | Path | None = None,
) -> dict[str, Any]:
    """Everything the templates show, as plain values (formatted strings, paths, lists)."""
    scale_dir = Path(scale_dir)
    runs = _read_csv(scale_dir / "tables" / "runs.csv")
    if runs is None:
        raise ReportError(f"the report needs {scale_dir / 'tables' / 'runs.csv'}; run the tables")
    sections = [_ablation_context(scale_dir, a, runs) for a in ablations.values()]
    number = 0
    for section in sections:
        for fig in section["figures"]:
            number += 1
            fig["number"] = number
    figures = {f"{f['ablation']}/{f['name']}": f for s in sections for f in s["figures"]}
    claims = _claims(scale_dir, Path(claims_path) if claims_path else None, figures)
    counts: dict[str, int] = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    wall = pd.to_numeric(runs.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    tuning = _read_csv(scale_dir / "tables" / "tuning.csv")
    tune_wall = (
        pd.to_numeric(tuning.get("wall_s", pd.Series(dtype=float)), errors="coerce")
        if tuning is not None
        else pd.Series(dtype=float)
    )
    versions, hardware = _run_environments(scale_dir)
    git = git_state(Path(repo) if repo else Path.cwd())
    all_runs = []
    for _, r in runs.iterrows():
        all_runs.append(
            {
                "ablation": str(r.get("ablation", "")),
                "variant": str(r.get("variant", "")),
                "seed": str(r.get("seed", "")),
                "status": str(r.get("status", "")),
                "test_acc": value(r.get("test_acc"), "test_acc"),
                "val_acc": value(r.get("val_acc"), "val_acc"),
                "test_loss": value(r.get("test_loss"), "test_loss"),
                "epochs": count(r.get("epochs_run")),
                "wall_s": fmt(_num(r.get("wall_s"))),
                "config_hash": "" if pd.isna(r.get("config_hash")) else str(r.get("config_hash")),
            }
        )
    return {
        "title": TITLE,
        "scale": scale or scale_dir.name,
        "sections": sections,
        "claims": claims,
        "claim_counts": [
            {"verdict": k, "n": v}
            for k, v in sorted(counts.items(), key=lambda kv: (_VERDICT_ORDER.get(kv[0], 9), kv[0]))
        ],
        "setup": _setup(runs, ablations),
        "provenance": {
            "commit": git["commit"],
            "commit_short": (
                git["commit"][:12] if re.fullmatch(r"[0-9a-f]{40,64}", git["commit"]) else "unknown"
            ),
            "dirty": git["dirty"],
            "packages": package_versions(),
            "run_versions": versions,
            "run_hardware": hardware,
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "n_runs": len(runs),
            "n_tuning_runs": 0 if tuning is None else len(tuning),
            "compute": duration(float(wall.sum(skipna=True))),
            "tuning_compute": duration(float(tune_wall.sum(skipna=True))),
        },
        "runs": all_runs,
    }


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def _code_span(text: Any) -> Markup:
    """A Markdown code span: its content is shown literally (HTML included), so it is only kept
    on one line and stripped of backticks; a pipe is escaped so that it cannot end a table cell."""
    text = str(text).replace("`", "'").replace("\n", " ").replace("|", "\\|")
    return Markup(f"`{text}`")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _environment(templates: Path, markdown: bool) -> jinja2.Environment:
    if markdown:
        # Every value is Markdown-escaped unless it is Markup (the template marks links/paths).
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=False,
            finalize=lambda v: v if isinstance(v, Markup) else md_escape("" if v is None else v),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    else:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=jinja2.select_autoescape(["html", "html.j2"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    env.filters["data_uri"] = _data_uri
    # Paths are built by this module from ablation and figure names, never from free text.
    env.filters["path"] = lambda p: Markup(str(p))
    env.filters["code"] = _code_span
    env.filters["verdict_class"] = lambda v: VERDICT_CLASS.get(str(v), "neutral")
    return env


def render_report(context: dict[str, Any], templates: Path = TEMPLATES) -> dict[str, str]:
    """File name → text of report.html and report.md."""
    html = _environment(templates, markdown=False).get_template("report.html.j2")
    md = _environment(templates, markdown=True).get_template("report.md.j2")
    return {"report.html": html.render(**context), "report.md": md.render(**context)}


def write_report(context: dict[str, Any], out: str | Path, templates: Path = TEMPLATES) -> None:
    """Render and write the report with its figures and LaTeX tables (every file atomically)."""
    out = Path(out)
    texts = render_report(context, templates)
    for section in context["sections"]:
        for fig in section["figures"]:
            with atomic_path(out / fig["rel"]) as tmp:
                shutil.copyfile(fig["source"], tmp)
        if section["tex"]:
            with atomic_path(out / section["tex"]["rel"]) as tmp:
                shutil.copyfile(section["tex"]["source"], tmp)
    # The documents last, so they never reference a figure that is not there yet.
    for name, text in texts.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study.report", description="Render the report of one scale."
    )
    parser.add_argument("--scale-dir", required=True, type=Path, help="results/<scale>")
    parser.add_argument("--ablations", default=Path("conf/ablation"), type=Path)
    parser.add_argument("--claims", type=Path, help="conf/claims.yaml")
    parser.add_argument("--out", default=Path("paper"), type=Path)
    parser.add_argument("--scale", help="scale name shown in the report (default: folder name)")
    parser.add_argument("--templates", default=TEMPLATES, type=Path)
    args = parser.parse_args(argv)
    from study.planning.ablation import load_ablations

    try:
        context = build_context(
            args.scale_dir, load_ablations(args.ablations), args.claims, args.scale
        )
        write_report(context, args.out, args.templates)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'report.html'} and {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
