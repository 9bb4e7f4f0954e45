"""Special claims: checks that fit no generic kind (``kind: special`` with a ``check`` name).

Each returns what the generic kinds return (study.analysis.ledger.kinds): an Estimate in the
claim's unit, the test it is judged by and the numbers behind it. Ratios ("x") are estimated on
the log scale, where "no effect" is 0 and a ratio margin m is the band ±log m, and shown back as
ratios (``log: True``).
"""

from __future__ import annotations

from collections.abc import Callable

from study.analysis.ledger.checks import (
    early_stopping,
    effect_difference,
    pathologies,
    reanalysis,
    second_order,
)
from study.analysis.ledger.values import ClaimTables

# One module per subject; each lists its checks as name -> (function, the metric it shows).
# A new module of checks is added here and its names to the `check` enum of the claims schema.
MODULES = (early_stopping, second_order, reanalysis, effect_difference, pathologies)

CHECKS: dict[str, Callable[[ClaimTables, dict], dict]] = {
    name: fn for m in MODULES for name, (fn, _) in m.CHECKS.items()
}
CHECK_METRICS: dict[str, str] = {
    name: metric for m in MODULES for name, (_, metric) in m.CHECKS.items()
}
