"""The paper's answers in sentences, generated from the numbers: each section's opening answer
(from its own table), the abstract (from the ledger's verdicts), the optimizer × schedule
interaction, and the discussion of where the study disagrees with the course and why."""

from __future__ import annotations

from typing import Any

from study.report.formatting import _finite, _num

CLEAR = ("better", "worse")


def _sentence(claim: dict[str, Any]) -> str:
    """A claim's sentence without its final full stop, to quote inside another sentence."""
    return claim["claim"].strip().rstrip(".")


def equivalence_word(claim: dict[str, Any] | None) -> str:
    """How a supported equivalence reads in tables and findings: never better or worse."""
    margin = (claim or {}).get("margin") or ""
    return f"equivalent within {margin}" if margin else "equivalent"


def opening(section: dict[str, Any]) -> str:
    """One or two sentences that answer the section's question with the numbers of its table:
    how many declared comparisons changed test accuracy clearly, the largest with its interval,
    and otherwise the best variant's accuracy."""
    compared = [r for r in section["rows"] if r["reference"]]
    if not compared:
        return ""
    clear = [r for r in compared if r["test_acc_verdict"] in CLEAR]
    equivalent = [r for r in compared if r["test_acc_verdict"].startswith("equivalent")]
    seeds = section["seeds_used"]["text"] or section["seeds"]
    if clear:
        top = max(clear, key=lambda r: abs(r["test_acc_diff_raw"]))
        ref = top["reference"]
        text = (
            f"{len(clear)} of {len(compared)} comparisons changed test accuracy clearly; the "
            f"largest is {top['variant']}, {top['test_acc_diff']} {top['test_acc_diff_ci']} "
            f"against {ref}."
        )
    else:
        best = section["best"]
        text = (
            f"No comparison changed test accuracy clearly at {seeds} seeds per variant; the "
            f"highest mean is {best['variant']}'s, {best['test_acc']} {best['test_acc_ci']}."
            if best
            else f"No comparison changed test accuracy clearly at {seeds} seeds per variant."
        )
    if equivalent:
        names = ", ".join(f"{r['variant']} ({r['test_acc_diff']})" for r in equivalent)
        text += f" Equivalent to their reference within the claim's margin: {names}."
    return text


def interaction_sentence(claims: list[dict[str, Any]], ablation: str) -> str:
    """Whether the best schedule depends on the optimizer, from the ablation's interaction claim
    (``kind: interaction``); empty when there is none."""
    found = [c for c in claims if c.get("kind") == "interaction" and c["ablation"] == ablation]
    if not found:
        return ""
    c = found[0]
    numbers = " ".join(p for p in (c["effect"], c["ci"]) if p)
    verdict = c["verdict"]
    if verdict == "inconclusive" or verdict not in ("supported", "contradicted",
                                                    "no meaningful effect"):  # fmt: skip
        answer = "The study cannot tell whether the best schedule depends on the optimizer"
    elif (c.get("test") == "equivalence") == (verdict == "supported") or (
        verdict == "no meaningful effect"
    ):
        answer = "The best schedule does not depend on the optimizer"
    else:
        answer = "The best schedule does depend on the optimizer"
    return f"{answer} (claim {c['id']}, {verdict}{': ' + numbers if numbers else ''})."


def short_name(claim: dict[str, Any]) -> str:
    """A claim in a few words to quote inside a sentence: its sentence up to a colon (the rest
    states how it is measured), without the final full stop."""
    return _sentence(claim).split(": ", 1)[0]


def _names(claims: list[dict[str, Any]], at_most: int = 3) -> str:
    """The claims quoted by their short names, at most ``at_most`` of them; the rest by number
    (Figure 1 and the ledger have them all)."""
    quoted = [f"“{short_name(c)}”" for c in claims[:at_most]]
    rest = len(claims) - at_most
    if rest > 0:
        quoted.append(f"{rest} more")
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


# Verdicts as the abstract counts them, after "n claims".
_COUNTED = (
    ("supported", "held"),
    ("contradicted", "were contradicted"),
    ("no meaningful effect", "found no effect beyond their margin"),
    ("inconclusive", "could not be decided"),
    ("not tested", "could not be tested here"),
)


def largest_effects(claims: list[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The largest effects in accuracy points among the claims that held: a claim the data
    contradict is no finding of the course's, and an equivalence or non-inferiority is no
    effect."""
    held = [c for c in claims if c["verdict"] == "supported" and c.get("unit") == "pp"
            and _finite(c.get("effect_raw"))
            and c.get("test") not in ("equivalence", "noninferiority")]  # fmt: skip
    return sorted(held, key=lambda c: -abs(_num(c["effect_raw"])))[:n]


def _tally(claims: list[dict[str, Any]], statements: dict[str, Any] | None) -> str:
    """How many claims there are, how many of the course's statements they test, and how the
    claims fared, in one sentence."""
    n = len(claims)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in {c["verdict"] for c in claims}}
    fared = [f"{counts[v]} {words}" for v, words in _COUNTED if counts.get(v)]
    fared += [f"{k} {v}" for v, k in counts.items() if v not in dict(_COUNTED)]
    cover = (statements or {}).get("coverage")
    if cover:
        lead = (f"{n} claims test {cover['tested']} of the course's {cover['statements']} "
                "testable statements; ")  # fmt: skip
        first, rest = fared[0].split(" ", 1)
        fared[0] = f"{first} claim{'s' if first != '1' else ''} {rest}"
    else:
        lead = f"Of {n} claims, "
    listed = fared[0] if len(fared) == 1 else ", ".join(fared[:-1]) + " and " + fared[-1]
    return f"{lead}{listed}."


def abstract(context: dict[str, Any]) -> list[str]:
    """The abstract in sentences: the question, the setting, how the course's statements fared
    (which did not hold, which could not be decided) and the largest effects that held."""
    prov, claims = context["provenance"], context["claims"]
    n = len(context["sections"])
    runs = f"{prov['n_runs']} training runs over {n} ablation{'s' if n != 1 else ''}"
    setting = context.get("setting", "")
    text = [
        "Do the rules of thumb that a course on training neural networks teaches hold when each "
        "is tested as a falsifiable statement, with several seeds and paired confidence intervals?",
        f"We trained {setting} ({runs}, {context['scale']} scale)."
        if setting
        else f"We ran {runs} at the {context['scale']} scale.",
    ]
    by = {v: [c for c in claims if c["verdict"] == v] for v in {c["verdict"] for c in claims}}
    if claims:
        text.append(_tally(claims, context.get("statements")))
        if by.get("contradicted"):
            text.append(f"The data contradict {_names(by['contradicted'])}.")
        if by.get("no meaningful effect"):
            text.append("No effect beyond its margin was found for "
                        f"{_names(by['no meaningful effect'])}.")  # fmt: skip
        if by.get("inconclusive"):
            text.append(f"The study could not decide {_names(by['inconclusive'])}.")
    largest = largest_effects(claims)
    if largest:
        parts = [f"“{short_name(c)}” ({c['effect']} {c['ci']})" for c in largest]
        listed = parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]
        text.append(
            f"The largest effects among the claims that held, in accuracy points: {listed}."
        )
    return text


# Metric and unit names of the claims file (conf/claims.yaml) in the words of the text.
METRIC_WORDS = {
    "test_acc": "test accuracy",
    "gap_acc": "the generalization gap",
    "test_loss": "the test loss",
    "train_loss": "the training loss",
    "val_loss": "the validation loss",
    "weight_sparsity": "the share of weights near zero",
}
UNIT_WORDS = {
    "pp": "accuracy points",
    "loss": "nats",
    "x": "a ratio",
    "s": "seconds",
    "fraction": "",
}


def _regime(claim: dict[str, Any]) -> str:
    """The likely reason for a disagreement: the claim's own note, else the facts that bound
    what it could show (metric, seeds and the smallest detectable effect); the regime, common to
    every claim, is said once before the list."""
    if claim.get("note"):
        return claim["note"]
    metric = METRIC_WORDS.get(claim["metric"], claim["metric"].replace("_", " ") or "its metric")
    unit = UNIT_WORDS.get(claim.get("unit") or "", claim.get("unit") or "")
    parts = [f"measured as {metric}{' in ' + unit if unit else ''}"]
    if claim.get("seeds"):
        parts.append(f"{claim['seeds']} seeds")
    mde, margin = _num(claim.get("mde_raw")), _num(claim.get("margin_raw"))
    # A verdict of no meaningful effect already says the interval is inside the margin: a budget
    # too small to detect the margin is a reason only for the other verdicts.
    if (
        _finite(mde)
        and _finite(margin)
        and mde > margin
        and claim["verdict"] != "no meaningful effect"
    ):
        parts.append(
            f"the seeds detect only effects of {claim['mde']} or more (80% power), beyond the "
            f"margin {claim['margin']}: too small a budget to tell"
        )
    elif claim.get("mde"):
        parts.append(f"80% power to detect {claim['mde']}")
    return "; ".join(p for p in parts if p)


def undecided_reason(claim: dict[str, Any]) -> str:
    """Why an inconclusive claim is undecided, from the ledger's own numbers and detail: a failed
    guard, an interval that reaches past the margin, or a correction that the p did not pass."""
    detail = claim.get("detail") or ""
    at = detail.find("guard ")
    if at >= 0 and "lost beyond the margin" in detail[at:]:  # the ledger's words for a failed guard
        return f"the claimed effect is clear, but its {detail[at:]}"
    lo, hi = _num(claim.get("lo_raw")), _num(claim.get("hi_raw"))
    ci, margin = claim["ci"], claim["margin"]
    if _finite(lo) and _finite(hi) and lo <= 0 <= hi:
        return f"its interval {ci} contains 0 and reaches past the margin {margin}"
    p_adj = _num(claim.get("p_adjusted"))
    if _finite(lo) and _finite(hi) and _finite(p_adj) and p_adj >= 0.05:
        return f"its interval {ci} excludes 0, but the adjusted p ({claim['p_adjusted']}) does " \
               "not pass the correction"  # fmt: skip
    if _finite(lo) and _finite(hi) and not detail:
        return f"its interval {ci} is clear of 0, but the ledger gives no verdict on it (its " \
               "guard or margin; see Appendix C)"  # fmt: skip
    return detail or "no interval could be computed"


def disagreements(claims: list[dict[str, Any]], setting: str) -> dict[str, Any]:
    """The discussion: the regime every verdict holds in, said once; then claim by claim where
    the study disagrees with the course (contradicted, or no meaningful effect where the course
    claims one) with the likely reason; the undecided ones with the ledger's reason; and the ones
    that held."""
    disagree = [
        c for c in claims
        if c["verdict"] == "contradicted"
        or (c["verdict"] == "no meaningful effect" and c.get("test") != "equivalence")
    ]  # fmt: skip
    return {
        "regime": setting,
        "disagree": [{"id": c["id"], "claim": _sentence(c), "verdict": c["verdict"],
                      "effect": " ".join(p for p in (c["effect"], c["ci"]) if p),
                      "margin": c["margin"], "reason": _regime(c)}
                     for c in disagree],
        "undecided": [{"id": c["id"], "claim": _sentence(c), "reason": undecided_reason(c)}
                      for c in claims if c["verdict"] == "inconclusive"],
        "held": [{"id": c["id"], "claim": c["claim"],
                  "effect": " ".join(p for p in (c["effect"], c["ci"]) if p)}
                 for c in claims if c["verdict"] == "supported"],
    }  # fmt: skip
