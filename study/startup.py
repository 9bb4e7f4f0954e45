"""Keep a training job's start-up and exit cheap: torch.optim without importing the compiler
stack, and no final garbage collection (:func:`exit_job`).

``torch.optim`` imports ``torch._dynamo`` (the ``torch.compile`` front end) on the first
optimizer call, only to insert graph breaks that do nothing in eager mode. On the study's 2-core
machines that import costs about 1.2 s, as much as ``import torch`` itself, and a default study runs
hundreds of jobs. The study never compiles, so the two wrappers that trigger the import are replaced
by their eager-mode meaning:

- ``Optimizer.step`` (``_use_grad_for_differentiable``): run the step with gradients enabled only
  for differentiable optimizers; the graph breaks are no-ops outside ``torch.compile``.
- ``torch._disable_dynamo`` methods (``zero_grad``, ``add_param_group``, ``state_dict``, ...):
  torch caches the disabled function on first call; caching the function itself is the same thing
  when nothing is being compiled.

Both patches are skipped when ``torch._dynamo`` is already loaded (someone compiles) or when the
wrappers do not look as expected (another torch version); ``tests/test_startup.py`` checks that the
optimizers' numbers are unchanged.
"""

from __future__ import annotations

import functools
import gc
import sys
from typing import NoReturn

import torch
import torch.optim

_PATCHED = False


def _eager_step(func):
    @functools.wraps(func)
    def step(self, *args, **kwargs):
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return func(self, *args, **kwargs)

    step.__study_eager__ = True
    return step


def _is_use_grad_wrapper(fn) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_name == "_use_grad" and hasattr(fn, "__wrapped__")


def _is_disable_dynamo_wrapper(fn) -> bool:
    code = getattr(fn, "__code__", None)
    return (
        code is not None
        and code.co_name == "inner"
        and code.co_filename.endswith("_compile.py")
        and hasattr(fn, "__wrapped__")
    )


def avoid_compiler_import() -> bool:
    """Patch torch.optim once; returns whether the patch is active."""
    global _PATCHED
    if _PATCHED:
        return True
    if "torch._dynamo" in sys.modules:
        return False
    classes = [
        obj
        for obj in vars(torch.optim).values()
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)
    ]
    for cls in classes:
        for name, attr in list(vars(cls).items()):
            if name == "step" and _is_use_grad_wrapper(attr):
                setattr(cls, name, _eager_step(attr.__wrapped__))
            elif _is_disable_dynamo_wrapper(attr):
                attr.__wrapped__.__dynamo_disable = attr.__wrapped__
    _PATCHED = True
    return True


def exit_job(code: int) -> NoReturn:
    """End a job's process with ``code`` without the interpreter's final garbage collection.

    At exit Python collects every object still alive, and after ``import torch`` and a few
    training runs that walk took 0.4 of a job's 0.5 s of exit on the study's machines, paid by
    every job. ``gc.freeze`` puts the live objects out of the collector's reach; files are still
    flushed and closed and ``atexit`` handlers still run, as in a normal exit."""
    gc.freeze()
    sys.exit(code)
