"""Special check: does early stopping return the model of the validation minimum?"""

from __future__ import annotations

from study.analysis.ledger.kinds import _not_tested, describe, paired_estimate
from study.analysis.ledger.values import ClaimTables, run_values
from study.analysis.stats import tost_paired


def early_stopping_near_minimum(t: ClaimTables, c: dict) -> dict:
    """Early stopping returns the model of (about) the epoch where the un-stopped run's
    validation loss is lowest: per seed, the stopped variant's ``best_epoch`` minus the epoch of
    the lowest val_loss in the reference run's history, as the median with its range; an
    equivalence claim within ±margin epochs (TOST p). The reference must train on past the stop
    (a schedule that does not anneal to the end), or the two runs are the same run and the check
    cannot fail."""
    ablation, variant, ref = c["ablation"], c["variant"], c["reference"]
    stopped = run_values(t, {**c, "metric": "best_epoch", "source": "runs"}, ablation, variant)
    h = t.history
    if stopped is None or "ablation" not in h or "val_loss" not in h:
        return _not_tested(f"no runs or history of {ablation}/{variant}")
    h = h[(h["ablation"] == ablation) & (h["variant"] == ref)].dropna(subset=["val_loss"])
    if h.empty:
        return _not_tested(f"no history of the reference {ablation}/{ref}")
    minimum = h.loc[h.groupby("seed")["val_loss"].idxmin()].set_index("seed")["epoch"]
    minimum = minimum.astype(float)
    est = paired_estimate(stopped, minimum, "epochs")
    est = est._replace(p=tost_paired(stopped, minimum, float(c["margin"]))[0])
    name = f"{variant} best_epoch - val_loss minimum of {ref}"
    return {"estimate": est, "test": "equivalence", "detail": describe(name, est, "epochs")}


CHECKS = {
    "early_stopping_near_minimum": (early_stopping_near_minimum, "best_epoch - val_loss argmin"),
}
