"""``report()``: Optuna's ``trial.report`` with the compute spent so far."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna

from sh_scaling.pruning._attrs import HOW_TO_REPORT, MAX_COMPUTE_KEY, compute_key

__all__ = ["report"]


def report(
    trial: optuna.trial.Trial,
    loss: float,
    compute: float | None = None,
    step: int | None = None,
    *,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    max_compute: float | None = None,
) -> int:
    """Report a validation loss together with the cumulative training compute behind it.

    Drop-in replacement for ``trial.report(loss, step)``. The loss goes to Optuna's intermediate values under
    a small step index, as usual; the compute (FLOPs, PF-days, GPU-hours: any unit, used consistently) goes to
    the trial's system attributes under ``sh_scaling:compute:<step>``. FLOPs never go into Optuna's ``step``
    column, which RDB storages keep as a 32-bit integer.

    Args:
        trial: The running trial (``optuna.trial.Trial``).
        loss: Validation loss. NaN and inf are recorded as Optuna records them; the pruner then prunes the
            trial and writes the reason to its attributes.
        compute: Cumulative training compute so far (> 0, increasing from one report to the next).
        step: Step index, as for ``trial.report``. Default: one more than the largest step reported so far
            (0 for the first report).
        compute_fn: Alternative to ``compute``: ``compute_fn(trial.params, step)`` returns it, e.g.
            ``lambda p, s: 6 * n_params(p) * tokens_per_step * (s + 1)``.
        max_compute: Compute this trial is meant to reach if it is never pruned. Overrides the pruner's
            ``max_compute`` for this trial (stored once, at the first report that gives it).

    Returns:
        The step index used.

    Raises:
        ValueError: when no compute is given (neither ``compute`` nor ``compute_fn``), when compute is
            non-finite or not positive, when it does not increase with the step (e.g. 2e18 reported at step 3
            after 3e18 at step 2), when ``max_compute`` is not a positive finite number, or for a
            multi-objective study (which Optuna cannot prune).

    A step reported twice keeps its first loss and first compute, as ``trial.report`` does (with Optuna's
    warning). Steps may arrive out of order as long as compute increases with the step.

    Example::

        for step in range(n_steps):
            loss = train_one_step_and_evaluate()
            sh_scaling.report(trial, loss, compute=6 * n_params * tokens_seen)
            if trial.should_prune():
                raise optuna.TrialPruned()
    """
    if len(trial.study.directions) > 1:
        raise ValueError(
            "report: multi-objective studies cannot be pruned by Optuna; use a single-objective study (the loss)"
        )
    frozen = trial._cached_frozen_trial
    values = frozen.intermediate_values
    if step is None:
        step = max(values) + 1 if values else 0
    step = int(step)
    if compute is None:
        if compute_fn is None:
            raise ValueError(f"report: loss {loss!r} at step {step} came without compute; {HOW_TO_REPORT}")
        compute = compute_fn(dict(frozen.params), step)
    try:
        compute = float(compute)
    except (TypeError, ValueError):
        raise ValueError(f"report: compute must be a number, got {compute!r}") from None
    if not (math.isfinite(compute) and compute > 0):
        raise ValueError(f"report: compute must be a positive finite number, got {compute!r} at step {step}")
    if max_compute is not None:
        max_compute = float(max_compute)
        if not (math.isfinite(max_compute) and max_compute > 0):
            raise ValueError(f"report: max_compute must be a positive finite number, got {max_compute!r}")

    if step in values:
        # Same outcome as trial.report (first value wins, Optuna warns); the compute is ignored with it.
        trial.report(loss, step)
        return step

    storage, tid = trial.storage, trial._trial_id
    attrs = storage.get_trial_system_attrs(tid)
    below = [s for s in values if s < step]
    above = [s for s in values if s > step]
    if below:
        prev = attrs.get(compute_key(max(below)))
        if prev is not None and compute <= prev:
            raise ValueError(
                f"report: compute must increase with the step; got {compute:.6g} at step {step} after "
                f"{prev:.6g} at step {max(below)}"
            )
    if above:
        nxt = attrs.get(compute_key(min(above)))
        if nxt is not None and compute >= nxt:
            raise ValueError(
                f"report: compute must increase with the step; got {compute:.6g} at step {step} but "
                f"{nxt:.6g} at step {min(above)}"
            )
    # Compute first: a worker that reads the loss always finds its compute.
    storage.set_trial_system_attr(tid, compute_key(step), compute)
    if max_compute is not None and MAX_COMPUTE_KEY not in attrs:
        storage.set_trial_system_attr(tid, MAX_COMPUTE_KEY, max_compute)
    trial.report(loss, step)
    return step
