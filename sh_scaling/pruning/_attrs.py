"""Names of the trial attributes the pruner and :func:`~sh_scaling.pruning.report` share, and how a trial's
learning curve is read back from them.

Everything the pruner knows lives in the study's storage, under these keys, so that any worker process (or
optuna-dashboard) sees the same state:

* ``sh_scaling:compute:<step>`` (system attr): cumulative compute at that reported step. Compute is never put in
  Optuna's ``step`` column, which is a 32-bit integer in RDB storages.
* ``sh_scaling:max_compute`` (system attr): compute the trial is meant to reach, when given per trial.
* ``sh_scaling:rung:<k>`` (system attr): the decision at rung ``k`` and the forecast behind it.
* ``sh_scaling:first_rung`` (system attr): the first rung the trial was decided at (trials that start beyond
  the early rungs skip them).
* ``sh_scaling:pruned`` (system attr) and ``sh_scaling:decision`` (user attr, shown by optuna-dashboard): why the
  trial was pruned, or the latest promotion.
* ``sh_scaling:forecast_final_loss`` (user attr): the surrogate's latest forecast of the loss at the trial's
  ``max_compute``; samplers read it to learn from pruned trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

COMPUTE_PREFIX = "sh_scaling:compute:"
MAX_COMPUTE_KEY = "sh_scaling:max_compute"
RUNG_PREFIX = "sh_scaling:rung:"
FIRST_RUNG_KEY = "sh_scaling:first_rung"
PRUNED_KEY = "sh_scaling:pruned"
DECISION_KEY = "sh_scaling:decision"
FORECAST_KEY = "sh_scaling:forecast_final_loss"
MIN_COMPUTE_STUDY_KEY = "sh_scaling:min_compute"

HOW_TO_REPORT = (
    "report compute with each loss: replace `trial.report(loss, step)` by "
    "`sh_scaling.report(trial, loss, compute=flops_so_far, step=step)`, or pass "
    "`compute_fn=lambda params, step: ...` to the pruner"
)


def compute_key(step: int) -> str:
    return f"{COMPUTE_PREFIX}{int(step)}"


def rung_key(rung: int) -> str:
    return f"{RUNG_PREFIX}{int(rung)}"


def observed_curve(
    intermediate_values: Mapping[int, float],
    system_attrs: Mapping[str, Any],
    params: Mapping[str, Any],
    compute_fn: Callable[[dict[str, Any], int], float] | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The trial's reported points as ``(compute, loss)`` sorted by step, and what had to be left out.

    A step's compute comes from its ``sh_scaling:compute:<step>`` attribute, else from ``compute_fn(params,
    step)``. Steps with no compute, a non-finite or non-positive compute, or a compute that does not increase
    with the step are left out of the curve (they stay in Optuna's intermediate values: nothing is lost) and
    named in the returned notes. Losses are returned as reported, non-finite ones included, so that the
    caller can prune on them.
    """
    steps = sorted(intermediate_values)
    compute: list[float] = []
    loss: list[float] = []
    notes: list[str] = []
    last = 0.0
    for s in steps:
        c = system_attrs.get(compute_key(s))
        if c is None and compute_fn is not None:
            try:
                c = float(compute_fn(dict(params), int(s)))
            except Exception as exc:  # noqa: BLE001 - a broken compute_fn is reported, never crashes the study
                notes.append(f"step {s}: compute_fn raised {type(exc).__name__}: {exc}")
                continue
        if c is None:
            notes.append(f"step {s}: no compute")
            continue
        c = float(c)
        if not (math.isfinite(c) and c > 0):
            notes.append(f"step {s}: invalid compute {c!r}")
            continue
        if c <= last:
            notes.append(f"step {s}: compute {c:.6g} does not increase (previous {last:.6g})")
            continue
        last = c
        compute.append(c)
        loss.append(float(intermediate_values[s]))
    return np.asarray(compute, dtype=float), np.asarray(loss, dtype=float), notes


def loss_at(compute: np.ndarray, loss: np.ndarray, at: float) -> float:
    """Loss read off a curve at ``at``, interpolated between the reports around it.

    Interpolation is linear in log-log space (learning curves are close to straight lines there) when the
    losses are positive, linear in loss against log-compute otherwise. ``at`` must lie within the curve.
    """
    x = np.log(compute)
    if np.all(loss > 0):
        return float(np.exp(np.interp(math.log(at), x, np.log(loss))))
    return float(np.interp(math.log(at), x, loss))


def clean_float(x: float) -> float | None:
    """A float for JSON storage (``None`` for NaN/inf, which RDB storages cannot round-trip reliably)."""
    x = float(x)
    return x if math.isfinite(x) else None
