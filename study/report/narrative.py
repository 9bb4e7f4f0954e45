"""The prose of the paper that is not one ablation's: introduction, limitations, references and the
command that reproduces the report (the abstract and discussion are study.report.answers'). Every
statement about the results is generated from the claims ledger and the sections' numbers; the
fixed text only says what the study asks and why."""

from __future__ import annotations

import math
from typing import Any

from study.report.formatting import fmt

# Verdicts in the order the paper reports them. The claims table may use any subset; a verdict
# not listed here is reported after these, under its own name.
VERDICTS = ("supported", "contradicted", "no meaningful effect", "inconclusive", "not tested")

INTRODUCTION = (
    "Courses on training neural networks teach a set of rules of thumb: regularization such as "
    "dropout, weight decay and data augmentation curbs overfitting; momentum and adaptive methods "
    "(AdaGrad, RMSProp, Adam) train faster than plain stochastic gradient descent; warmup and "
    "learning-rate decay lower the final loss; batch normalization speeds up training, and Batch "
    "Renormalization repairs it when minibatches are small or not independent; second-order "
    "methods converge in fewer steps but cost too much per step for large networks.",
    "These rules decide how practitioners spend their compute, yet they are usually shown with "
    "one run per setting and no error bars. Benchmarks of optimizers (DeepOBS, AlgoPerf) found "
    "that many published gains vanish under equal tuning budgets and several seeds. This report "
    "tests each claim of the course as a falsifiable statement: every variant is trained with "
    "several seeds, compared with its baseline on the same data split, initialization and batch "
    "order, and given a verdict only when the paired confidence interval says so. Claims the "
    "data cannot decide are reported as such rather than counted for or against.",
)

# Author (year), title, venue: every work the paper's methods come from.
REFERENCES = (
    ("chen2023", "Chen, X. et al. (2023). Symbolic discovery of optimization algorithms (Lion). "
     "NeurIPS."),
    ("dahl2023", "Dahl, G. E. et al. (2023). Benchmarking neural network training algorithms "
     "(AlgoPerf). arXiv:2306.07179."),
    ("defazio2024", "Defazio, A. et al. (2024). The road less scheduled (schedule-free "
     "optimization). NeurIPS."),
    ("devries2017", "DeVries, T. & Taylor, G. W. (2017). Improved regularization of "
     "convolutional neural networks with cutout. arXiv:1708.04552."),
    ("duchi2011", "Duchi, J., Hazan, E. & Singer, Y. (2011). Adaptive subgradient methods for "
     "online learning and stochastic optimization (AdaGrad). JMLR 12."),
    ("hendrycks2019", "Hendrycks, D. & Dietterich, T. (2019). Benchmarking neural network "
     "robustness to common corruptions and perturbations. ICLR."),
    ("huang2016", "Huang, G. et al. (2016). Deep networks with stochastic depth. ECCV."),
    ("ioffe2015", "Ioffe, S. & Szegedy, C. (2015). Batch normalization: accelerating deep "
     "network training by reducing internal covariate shift. ICML."),
    ("ioffe2017", "Ioffe, S. (2017). Batch renormalization: towards reducing minibatch "
     "dependence in batch-normalized models. NeurIPS."),
    ("jordan2024", "Jordan, K. et al. (2024). Muon: an optimizer for hidden layers of neural "
     "networks. Technical report."),
    ("kingma2015", "Kingma, D. P. & Ba, J. (2015). Adam: a method for stochastic optimization. "
     "ICLR."),
    ("li2016", "Li, Y. et al. (2016). Revisiting batch normalization for practical domain "
     "adaptation (AdaBN). arXiv:1603.04779."),
    ("loshchilov2019", "Loshchilov, I. & Hutter, F. (2019). Decoupled weight decay "
     "regularization (AdamW). ICLR."),
    ("raffel2020", "Raffel, C. et al. (2020). Exploring the limits of transfer learning with a "
     "unified text-to-text transformer (T5). JMLR 21."),
    ("schneider2019", "Schneider, F., Balles, L. & Hennig, P. (2019). DeepOBS: a deep learning "
     "optimizer benchmark suite. ICLR."),
    ("srivastava2014", "Srivastava, N. et al. (2014). Dropout: a simple way to prevent neural "
     "networks from overfitting. JMLR 15."),
    ("vaswani2017", "Vaswani, A. et al. (2017). Attention is all you need. NeurIPS."),
    ("vyas2024", "Vyas, N. et al. (2024). SOAP: improving and stabilizing Shampoo using Adam. "
     "arXiv:2409.11321."),
    ("wan2013", "Wan, L. et al. (2013). Regularization of neural networks using DropConnect. "
     "ICML."),
    ("xiao2017", "Xiao, H., Rasul, K. & Vollgraf, R. (2017). Fashion-MNIST: a novel image "
     "dataset for benchmarking machine learning algorithms. arXiv:1708.07747."),
)  # fmt: skip


def reproduce_command(scale: str) -> str:
    """The one command that rebuilds this report from a clean checkout of its commit."""
    if scale == "default":
        return "pip install -e . && snakemake --cores 2"
    return f"pip install -e . && snakemake --cores 2 --config scale={scale}"


def verdict_counts(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{"verdict", "n"}]`` in :data:`VERDICTS` order, unknown verdicts after them."""
    counts: dict[str, int] = {}
    for claim in claims:
        counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
    order = {v: i for i, v in enumerate(VERDICTS)}
    ranked = sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return [{"verdict": k, "n": n} for k, n in ranked]


def _resolution(section: dict[str, Any]) -> float | None:
    """The median half-width of the paired test-accuracy intervals, in percentage points: about
    the smallest effect against the baseline that this ablation can tell from zero."""
    widths = sorted(
        (r["test_acc_diff_hi_raw"] - r["test_acc_diff_lo_raw"]) / 2 * 100
        for r in section["rows"]
        if not r["is_baseline"]
        and math.isfinite(r["test_acc_diff_hi_raw"] - r["test_acc_diff_lo_raw"])
    )
    return widths[len(widths) // 2] if widths else None


def limitations(context: dict[str, Any]) -> list[str]:
    """What this scale cannot show, from the setup, the claims and the intervals."""
    regime = context["regime"]
    items = [
        f"One dataset ({regime['dataset'] or 'n/a'}) and one model family "
        f"({regime['model'] or 'n/a'}), trained on {regime['images'] or 'n/a'}: effects that "
        "appear only with convolutional networks, larger data or longer training are outside "
        "this study"
        + (
            "; the full scale (conf/scale/full.yaml) runs every ablation on a ResNet, a "
            "convolutional network, with all 55,000 training images, on GPUs."
            if context["scale"] != "full"
            else "."
        )
    ]
    for other in context.get("elsewhere", []):
        items.append(
            f"{other['title']} runs only at the {' and '.join(other['scales'])} scale"
            + (f": {other['reason']}" if other["reason"] else ".")
        )
    resolution = [
        f"{section['title']} ±{fmt(half)} pp "
        f"({section['seeds_used']['text'] or section['seeds']} seeds)"
        for section in context["sections"]
        if (half := _resolution(section)) is not None
    ]
    if resolution:
        items.append(
            "Smaller effects on test accuracy than the typical half-width of a 95% interval of a "
            "difference cannot be detected: " + "; ".join(resolution) + "."
        )
    for claim in context["claims"]:
        if claim.get("detectable"):
            items.append(f"{claim['claim']} The smallest detectable effect: {claim['detectable']}.")
    untested = [c for c in context["claims"] if c["verdict"] in ("not tested", "not evaluated")]
    if untested:
        items.append(
            "Claims this scale cannot test: "
            + "; ".join(f"{c['claim']} ({c['detail'] or 'no data'})" for c in untested)
            + "."
        )
    if context["scale"] != "default":
        items.append(
            f"The {context['scale']} scale checks the pipeline; its numbers are not conclusions."
        )
    return items


def holm_sentence(claims_table) -> str:
    """How many of the ledger's p-value verdicts would survive Holm's family-wise correction
    instead of the false-discovery rate the rule controls (empty without a ledger)."""
    import pandas as pd

    from study.analysis.ledger.rule import holm_sensitivity

    if claims_table is None or not {"p", "verdict"} <= set(claims_table.columns):
        return ""
    p = pd.to_numeric(claims_table["p"], errors="coerce")
    kept, decided = holm_sensitivity(p, claims_table["verdict"].astype(str))
    if decided == 0:
        return ""
    return (
        f"Under Holm's stricter family-wise correction over the same p-values, {kept} of the "
        f"{decided} claims decided on a p-value would keep their verdict."
    )


def rerun_promise() -> str:
    """What a rerun gives (README, "What a rerun gives"), with the tolerance and the measured
    spread from study.provenance, so the report and the rerun check state the same numbers."""
    from study.provenance import CROSS_MACHINE_SPREAD as spread
    from study.provenance import CROSS_MACHINE_TOLERANCE as tolerance

    acc = tolerance["test_acc"][1] * 100
    loss = tolerance["test_loss"][1] * 100
    return (
        "A rerun on the same hardware fingerprint (CPU kind, instruction set, BLAS, oneDNN, torch, "
        "threads, device; each run records it) gives identical numbers. On another CPU kind the "
        "floating-point sums run in another order, so the numbers may differ within the stated "
        f"tolerance (test accuracy within {acc:g} pp, test loss within {loss:g}% relative, the "
        "same status and config hash). Measured once, rebuilding the whole default study on a "
        f"second CPU kind: test accuracy equal in {spread['equal_test_acc']} of "
        f"{spread['runs']} runs, median difference {spread['median_test_acc_pp']:.2f} pp, largest "
        f"{spread['largest_test_acc_pp']:.2f} pp; {spread['verdicts_equal']} of "
        f"{spread['verdicts']} verdicts equal."
    )
