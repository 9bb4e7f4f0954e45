"""Second-order versus first-order optimization as the number of parameters N grows.

One module per part: ``problems`` (the objectives whose N grows, with the closed-form logistic
Hessian), ``damped_newton`` (Newton's step, iteration and timing), ``comparison`` (every method
on every problem: iterations to the target, time and memory per step; the command line) and
``scaling`` (power-law fits, the crossover, extrapolations). ``python -m
study.experiments.second_order`` runs the comparison.
"""

from study.experiments.second_order.comparison import (
    COLUMNS,
    METHODS,
    SECOND_ORDER,
    main,
    measure,
)
from study.experiments.second_order.damped_newton import hessian, newton

__all__ = ["COLUMNS", "METHODS", "SECOND_ORDER", "hessian", "main", "measure", "newton"]
