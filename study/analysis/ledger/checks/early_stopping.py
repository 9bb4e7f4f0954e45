"""Special check: does early stopping stop near the validation minimum?"""

from __future__ import annotations

import pandas as pd

from study.analysis.ledger.kinds import _not_tested, describe, paired_estimate
from study.analysis.ledger.values import ClaimTables, run_values
from study.analysis.stats import tost_paired


def stop_epochs(t: ClaimTables, c: dict, ablation: str, variant: str) -> pd.Series | None:
    """The epoch each run of ``variant`` stopped at: its ``epochs_run`` (the last epoch it
    trained; a run the rule never stopped ends at its planned last epoch), or, where a table has
    no such column, its best epoch plus the patience (the rule stops ``patience`` epochs after
    the last improvement)."""
    ran = run_values(t, {**c, "metric": "epochs_run", "source": "runs"}, ablation, variant)
    if ran is not None and ran.notna().any():
        return ran.astype(float)
    best = run_values(t, {**c, "metric": "best_epoch", "source": "runs"}, ablation, variant)
    patience = run_values(
        t, {**c, "metric": "config.train.patience", "source": "runs"}, ablation, variant
    )
    if best is None or patience is None:
        return None
    return (best + patience).astype(float)


def early_stopping_near_minimum(t: ClaimTables, c: dict) -> dict:
    """The rule the course describes (stop once the validation loss has risen again, judged on
    its trend) stops near the minimum of the validation loss: per seed, the epoch the stopped
    variant stopped at (:func:`stop_epochs`) minus the epoch of the lowest val_loss in the
    un-stopped reference run's history, as the median with its range; an equivalence claim
    within ±margin epochs (TOST p). Not the restored best epoch: the stopped and the un-stopped
    run share a seed and so their trajectory up to the stop, which makes the best epoch equal the
    minimum by construction. The reference must train on past the stop (a schedule that does not
    anneal to the end), or the two runs are the same run."""
    ablation, variant, ref = c["ablation"], c["variant"], c["reference"]
    stopped = stop_epochs(t, c, ablation, variant)
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
    name = f"{variant} stop epoch - val_loss minimum of {ref}"
    return {"estimate": est, "test": "equivalence", "detail": describe(name, est, "epochs")}


CHECKS = {
    "early_stopping_near_minimum": (
        early_stopping_near_minimum,
        "stop epoch - val_loss argmin",
    ),
}
