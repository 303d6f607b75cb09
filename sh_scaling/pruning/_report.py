"""``report()``: Optuna's ``trial.report`` with the compute spent so far."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import optuna

from sh_scaling.keys import COMPUTE_KEY, COMPUTE_TAIL_KEY, MAX_COMPUTE_KEY
from sh_scaling.pruning._compute import (
    HOW_TO_REPORT,
    _stored_entries,
    last_reported,
    n_stored,
    stored_pairs,
    updated_lists,
)

__all__ = ["report", "report_points"]

#: Optuna's RDB storages keep ``step`` as a signed 32-bit integer.
_MAX_STEP = 2**31 - 1


def report(
    trial: optuna.trial.Trial,
    loss: float,
    *,
    compute: float | None = None,
    step: int | None = None,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    max_compute: float | None = None,
    lr: float | None = None,
) -> int:
    """Report a validation loss together with the cumulative training compute behind it.

    Replaces ``trial.report(loss, step)``. The loss goes to Optuna's intermediate values under a small step
    index, as usual; the compute (FLOPs, PF-days, GPU-hours: any unit, used consistently) goes to the trial's
    system attributes (:data:`sh_scaling.keys.COMPUTE_KEY`). FLOPs never go into Optuna's ``step`` column,
    which RDB storages keep as a 32-bit integer. Everything but the loss is keyword-only, so that
    ``report(trial, loss, step)`` written by analogy with ``trial.report`` fails loudly instead of passing the
    step as compute.

    Args:
        trial: The running trial (``optuna.trial.Trial``).
        loss: Validation loss (a real number). NaN and inf are recorded as Optuna records them; the pruner then
            prunes the trial and writes the reason to its attributes.
        compute: Cumulative training compute so far (> 0, increasing from one report to the next).
        step: Step index, as for ``trial.report`` (0 <= step < 2**31). Default: one more than the largest step
            reported so far (0 for the first report).
        compute_fn: Alternative to ``compute``: ``compute_fn(trial.params, step)`` returns it, e.g.
            ``lambda p, s: 6 * n_params(p) * tokens_per_step * (s + 1)``.
        max_compute: Compute this trial is meant to reach if it is never pruned. Overrides the pruner's
            ``max_compute`` for this trial (stored once, at the first report that gives it).
        lr: The learning rate in effect at this evaluation (finite, >= 0), e.g.
            ``optimizer.param_groups[0]["lr"]``. Stored with the compute (``[step, compute, lr]``, no extra
            write). The pruner checks it against the trial's stated schedule (a disagreement by more than a
            factor of 2 is warned about once and the reported rates are trusted); without a stated schedule the
            reported rates are the schedule so far, the future held at the latest one.

    Returns:
        The step index used.

    Raises:
        ValueError: when the loss is not a real number, the step is out of range, no compute is given
            (neither ``compute`` nor ``compute_fn``), compute is non-finite or not positive, compute does not
            increase with the step (e.g. 2e18 reported at step 3 after 3e18 at step 2), ``max_compute`` is not
            a positive finite number, ``lr`` is negative or not finite, or the study is multi-objective (which
            Optuna cannot prune). Nothing is written when it raises.

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
    if isinstance(loss, bool):
        raise ValueError(f"report: loss must be a real number, got {loss!r}")
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise ValueError(f"report: loss must be a real number, got {loss!r}") from None
    frozen = trial._cached_frozen_trial
    values = frozen.intermediate_values
    if step is None:
        step = _next_step(values, frozen.system_attrs)
    try:
        if isinstance(step, bool):
            raise TypeError
        step = operator.index(step)
    except TypeError:
        raise ValueError(f"report: step must be an integer, got {step!r}") from None
    if not 0 <= step <= _MAX_STEP:
        raise ValueError(
            f"report: step {step} is outside 0..{_MAX_STEP} (Optuna's RDB storages keep steps as 32-bit "
            "integers); report compute with compute=, not as the step"
        )
    if compute is None:
        if compute_fn is None:
            raise ValueError(f"report: loss {loss!r} at step {step} came without compute; {HOW_TO_REPORT}")
        try:
            compute = compute_fn(dict(frozen.params), step)
        except Exception as exc:  # noqa: BLE001 - named, so the user sees which function failed
            raise ValueError(f"report: compute_fn raised {type(exc).__name__}: {exc} at step {step}") from exc
    try:
        compute = float(compute)
    except (TypeError, ValueError):
        raise ValueError(f"report: compute must be a number, got {compute!r}") from None
    if not (math.isfinite(compute) and compute > 0):
        raise ValueError(f"report: compute must be a positive finite number, got {compute!r} at step {step}")
    if max_compute is not None:
        try:
            max_compute = float(max_compute)
        except (TypeError, ValueError):
            raise ValueError(f"report: max_compute must be a number, got {max_compute!r}") from None
        if not (math.isfinite(max_compute) and max_compute > 0):
            raise ValueError(f"report: max_compute must be a positive finite number, got {max_compute!r}")

    if lr is not None:
        try:
            if isinstance(lr, bool):
                raise TypeError
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"report: lr must be a number, got {lr!r}") from None
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"report: lr must be a finite number >= 0, got {lr!r} at step {step}")

    if step in values:
        # Same outcome as trial.report (first value wins, Optuna warns); the compute is ignored with it.
        trial.report(loss, step)
        return step

    # The trial's own process is the only writer of its compute lists, so the cached copy is current.
    attrs = frozen.system_attrs
    _check_increasing(attrs, step, compute)
    storage, tid = trial.storage, trial._trial_id
    # Compute first: a worker that reads the loss always finds its compute.
    for key, value in updated_lists(attrs, step, compute, lr).items():
        storage.set_trial_system_attr(tid, key, value)
        attrs[key] = value
    if max_compute is not None and MAX_COMPUTE_KEY not in attrs:
        storage.set_trial_system_attr(tid, MAX_COMPUTE_KEY, max_compute)
        attrs[MAX_COMPUTE_KEY] = max_compute
    trial.report(loss, step)
    return step


def _next_step(values: Any, attrs: Any) -> int:
    """One more than the largest step reported so far.

    When every reported step has its compute stored, the compute lists (sorted by step) give it without a scan
    of every step, which would make each report cost more than the one before.
    """
    if not values:
        return 0
    last = last_reported(attrs)
    if last is not None and n_stored(attrs) == len(values) and last[0] + 1 not in values:
        return last[0] + 1
    return max(values) + 1


def _check_increasing(attrs: Any, step: int, compute: float) -> None:
    below: tuple[int, float] | None
    above: tuple[int, float] | None
    last = last_reported(attrs)
    if last is not None and step > last[0]:
        below, above = last, None
    else:
        pairs = [(int(s), float(c)) for s, c in stored_pairs(attrs)]
        below = next((p for p in reversed(pairs) if p[0] < step), None)
        above = next((p for p in pairs if p[0] > step), None)
    if below is not None and compute <= below[1]:
        raise ValueError(
            f"report: compute must increase with the step; got {compute:.6g} at step {step} after "
            f"{below[1]:.6g} at step {below[0]}"
        )
    if above is not None and compute >= above[1]:
        raise ValueError(
            f"report: compute must increase with the step; got {compute:.6g} at step {step} but "
            f"{above[1]:.6g} at step {above[0]}"
        )


def report_points(
    storage: optuna.storages.BaseStorage,
    trial: optuna.trial.FrozenTrial,
    points: Any,
    *,
    max_compute: float | None = None,
) -> int:
    """Report many ``(step, compute, loss)`` points of a running trial at once; steps that have a loss are left alone.

    For code that holds a whole batch of evaluations (a segment of training that has ended) rather than one at a
    time. The compute of every new step is written first, in one rewrite of the trial's compute lists (where
    :func:`report` rewrites them once per point), then each loss under its step. Called again with the same
    points (the process was killed in between), it writes exactly the losses that are missing, each under the
    step whose compute was stored with it: no kill can pair a loss with another point's compute.

    Args:
        storage: The study's storage.
        trial: The trial as read from ``storage`` (its compute lists and losses so far).
        points: ``(step, compute, loss)`` triples; compute must increase with the step, also across the steps
            the trial has already. A step whose compute is stored keeps it (the first report stands).
        max_compute: As for :func:`report`: stored once.

    Returns:
        How many losses were written.

    Raises:
        ValueError: a step out of range, a compute that is not a positive finite number or does not increase
            with the step. Nothing is written when it raises.
    """
    attrs = trial.system_attrs
    entries = {int(e[0]): list(e) for e in _stored_entries(attrs)}
    new: list[tuple[int, float, float]] = []
    for p in points:
        step, compute, loss = int(p[0]), float(p[1]), float(p[2])
        if not 0 <= step <= _MAX_STEP:
            raise ValueError(f"report_points: step {step} is outside 0..{_MAX_STEP}")
        if not (math.isfinite(compute) and compute > 0):
            raise ValueError(f"report_points: compute must be a positive finite number, got {compute!r} at step {step}")
        new.append((step, compute, loss))
    added = {s: [s, c] for s, c, _ in new if s not in entries}
    merged = sorted({**entries, **added}.items())
    for (s0, e0), (s1, e1) in zip(merged, merged[1:]):
        if not float(e1[1]) > float(e0[1]):
            raise ValueError(f"report_points: compute must increase with the step; got {float(e1[1]):.6g} at step "
                             f"{s1} after {float(e0[1]):.6g} at step {s0}")
    if max_compute is not None and not (math.isfinite(float(max_compute)) and float(max_compute) > 0):
        raise ValueError(f"report_points: max_compute must be a positive finite number, got {max_compute!r}")
    tid = trial._trial_id
    if added:
        # One rewrite of the sealed list, then the short one emptied: a reader in between sees a step twice,
        # which the readers already allow (the first entry of a step stands).
        storage.set_trial_system_attr(tid, COMPUTE_KEY, [e for _, e in merged])
        storage.set_trial_system_attr(tid, COMPUTE_TAIL_KEY, [])
    if max_compute is not None and MAX_COMPUTE_KEY not in attrs:
        storage.set_trial_system_attr(tid, MAX_COMPUTE_KEY, float(max_compute))
    written = 0
    for step, _, loss in new:
        if step not in trial.intermediate_values:
            storage.set_trial_intermediate_value(tid, step, loss)
            written += 1
    return written
