"""A trial's forecast at a decision: its own surrogate fit, a fit shared with peers, or its family's.

The decision asks for one number and its uncertainty, the loss the trial would reach at its ``max_compute``;
how the forecast is made stays here:

* its own curve, by the pruner's surrogate (a power law by default), or by the multi-power law under its
  learning-rate schedule when one is known (Luo et al., ICLR 2025);
* with a multi-curve surrogate (``"gp-multi"``), its curve fitted together with other trials' curves;
* with ``family=``, a joint multi-power-law fit with the other runs of the same model (running and finished,
  whatever their lengths and schedules), which share the law's constants.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from sh_scaling.halving import fit_window
from sh_scaling.pruning._compute import clean_float, observed_curve
from sh_scaling.pruning._trial_schedules import trial_schedule
from sh_scaling.schedules import Schedule
from sh_scaling.surrogates import (
    MIN_PLAUSIBLE_RATIO,
    MIN_POINTS,
    Forecast,
    MultiCurveSurrogate,
    Surrogate,
    forecast,
)

__all__ = [
    "FAMILY_MISS",
    "family_forecast",
    "family_members",
    "fit_points",
    "own_forecast",
    "peer_curves",
    "shares_curves",
]

ComputeFn = Callable[[dict[str, Any], int], float] | None

# A multi-curve surrogate is fitted on the deciding trial and at most this many other trials' curves (a GP over
# 20 curves x 20 points fits in about 15 ms).
_MAX_PEERS = 19
# Points a surrogate is fitted on at a decision, at most (see fit_points).
_MAX_FIT_POINTS = 256
#: A family fit that misses the deciding trial's own points by more than this (mean absolute relative error)
#: does not describe the trial: its runs do not share one law (not one model, different data), and the
#: trial's own fit is used instead. Luo et al. (ICLR 2025) fit one law per model size across nine schedules
#: with 0.11-0.17 % mean relative error; this allows ten times that, plus evaluation noise.
FAMILY_MISS = 0.02
#: Points per run in a family fit: the joint fit's cost grows with points x cells x runs, and a run's shape is
#: carried by a few dozen points.
_FAMILY_POINTS = 60


def shares_curves(surrogate: str | Surrogate | MultiCurveSurrogate) -> bool:
    """Whether ``surrogate`` is fitted on several curves at once (others' curves inform the trial's forecast)."""
    return surrogate == "gp-multi" or isinstance(surrogate, MultiCurveSurrogate)


def fit_points(
    compute: np.ndarray, loss: np.ndarray, planned: float, warmup: float
) -> tuple[np.ndarray, np.ndarray]:
    """The points a surrogate is fitted on at a decision: past the warm-up, at most ``_MAX_FIT_POINTS``."""
    keep = fit_window(compute, planned, warmup)
    c, l = compute[keep], loss[keep]
    if c.size > _MAX_FIT_POINTS:
        # Evenly spaced in log compute, the last point (the rung) always kept: a decision's cost then stays
        # bounded however often a trial reports (a power-law fit: 8 ms on 5,000 points, 1.2 ms on these).
        idx = np.unique(np.searchsorted(np.log(c), np.linspace(np.log(c[0]), np.log(c[-1]), _MAX_FIT_POINTS)))
        idx = np.unique(np.append(np.minimum(idx, c.size - 1), c.size - 1))
        c, l = c[idx], l[idx]
    return c, l


def peer_curves(
    study: optuna.study.Study, trial: optuna.trial.FrozenTrial, compute_fn: ComputeFn
) -> list[tuple[Any, Any]]:
    """Other trials' observed curves, for a multi-curve surrogate to borrow strength from (the most recent
    ``_MAX_PEERS`` with at least ``MIN_POINTS`` clean points)."""
    peers: list[tuple[Any, Any]] = []
    for other in reversed(study.get_trials(deepcopy=False)):
        if other._trial_id == trial._trial_id or not other.intermediate_values:
            continue
        c, l, _ = observed_curve(other.intermediate_values, other.system_attrs, other.params, compute_fn)
        ok = np.isfinite(l) & (l > 0)
        if ok.sum() >= MIN_POINTS:
            peers.append((c[ok], l[ok]))
            if len(peers) == _MAX_PEERS:
                break
    return peers


def own_forecast(
    surrogate: str | Surrogate | MultiCurveSurrogate,
    compute: np.ndarray,
    loss: np.ndarray,
    target: float,
    peers: Sequence[tuple[Any, Any]] = (),
    schedule: Schedule | None = None,
) -> Forecast:
    """The trial's forecast at ``target`` from its own points (with ``peers`` for a multi-curve surrogate; under
    ``schedule``, the multi-power law), or its observed minimum marked as a fallback with the reason."""
    if np.any(loss <= 0):
        reason = "non-positive loss: surrogates model positive losses"
    elif schedule is not None:
        from sh_scaling.surrogates import MultiPowerLawSurrogate  # scikit-learn, imported when first needed

        try:
            # The trial's schedule to its own end: the multi-power law forecasts the drop its decay brings.
            return forecast(MultiPowerLawSurrogate(schedule=schedule, max_compute=target), [(compute, loss)],
                            [target])
        except Exception as exc:  # noqa: BLE001 - the study must go on; the reason is recorded
            reason = f"forecast failed: {type(exc).__name__}: {exc}"
    else:
        try:
            # Peers are fitted with the trial (a multi-curve model shares information across curves); only
            # the trial's own forecast is used.
            fc = forecast(
                surrogate, [(compute, loss), *peers], [target, *(float(c[-1]) for c, _ in peers)]
            )
            return Forecast(fc.mean[:1], fc.std[:1], fc.fallback[:1], fc.reason[:1])
        except Exception as exc:  # noqa: BLE001 - the study must go on; the reason is recorded
            reason = f"forecast failed: {type(exc).__name__}: {exc}"
    return Forecast(np.array([loss.min()]), np.zeros(1), np.ones(1, bool), [reason])


def family_members(
    study: optuna.study.Study,
    trial: optuna.trial.FrozenTrial,
    name: Hashable,
    family: Callable[[dict[str, Any]], Hashable],
    planned_of: Callable[[optuna.trial.FrozenTrial], float],
    compute_fn: ComputeFn,
    warmup: float,
) -> list[tuple[np.ndarray, np.ndarray, Schedule | None, float]]:
    """The observed curves of the other trials of family ``name`` (fit window, clean points), each with its
    schedule and ``max_compute``: the most recent ``_MAX_PEERS`` with at least ``MIN_POINTS`` points."""
    members: list[tuple[np.ndarray, np.ndarray, Schedule | None, float]] = []
    for other in reversed(study.get_trials(deepcopy=False)):
        if other._trial_id == trial._trial_id or not other.intermediate_values:
            continue
        if other.state not in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
            continue
        try:
            if family(dict(other.params)) != name:
                continue
            planned = planned_of(other)
        except Exception:  # noqa: BLE001 - a trial the family function or max_compute cannot place is left out
            continue
        sa = other.system_attrs
        c, l, _ = observed_curve(other.intermediate_values, sa, other.params, compute_fn)
        ok = np.isfinite(l) & (l > 0)
        c, l = c[ok], l[ok]
        keep = fit_window(c, planned, warmup)
        c, l = c[keep], l[keep]
        if c.size < MIN_POINTS:
            continue
        schedule, _, _ = trial_schedule(sa, planned, float(c[-1]))
        members.append((c, l, schedule, planned))
        if len(members) == _MAX_PEERS:
            break
    return members


def family_forecast(
    study: optuna.study.Study,
    trial: optuna.trial.FrozenTrial,
    compute: np.ndarray,
    loss: np.ndarray,
    target: float,
    schedule: Schedule | None,
    family: Callable[[dict[str, Any]], Hashable],
    planned_of: Callable[[optuna.trial.FrozenTrial], float],
    compute_fn: ComputeFn,
    warmup: float,
) -> tuple[Forecast | None, dict[str, Any]]:
    """The trial's forecast from a joint fit with its family, and what to record; ``None`` when the trial's
    own fit must do (the reason is in the record's ``family_fallback``)."""
    try:
        name = family(dict(trial.params))
    except Exception as exc:  # noqa: BLE001 - recorded; the trial's own fit is used
        return None, {"family_fallback": f"family(params) raised {type(exc).__name__}: {exc}"}
    info: dict[str, Any] = {"family": str(name)}
    if np.any(loss <= 0) or compute.size < MIN_POINTS:
        return None, {**info, "family_size": 1, "family_fallback": "too few positive points for a family fit"}
    members = family_members(study, trial, name, family, planned_of, compute_fn, warmup)
    info["family_size"] = len(members) + 1
    if not members:
        return None, {**info, "family_fallback": "family of one: the trial's own fit"}
    from sh_scaling.surrogates import JointMultiPowerLawSurrogate  # scikit-learn, imported when first needed

    try:
        model = JointMultiPowerLawSurrogate(max_points=_FAMILY_POINTS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit_many(
                [(compute, loss), *((c, l) for c, l, _, _ in members)],
                [schedule, *(s for _, _, s, _ in members)],
                [target, *(m for _, _, _, m in members)],
            )
            # Only the deciding trial's forecast is used: the members get empty queries (no history built).
            means, stds = model.predict_many(
                [np.append(compute, target), *(np.empty(0) for _ in members)], return_std=True
            )
    except Exception as exc:  # noqa: BLE001 - recorded; the trial's own fit is used
        return None, {**info, "family_fallback": f"family fit failed: {type(exc).__name__}: {exc}"}
    fitted, mean, std = means[0][:-1], float(means[0][-1]), float(stds[0][-1])
    miss = float(np.mean(np.abs(fitted / loss - 1))) if np.all(np.isfinite(fitted)) else math.inf
    info["family_miss"] = clean_float(miss)
    observed_min = float(loss.min())
    if not miss <= FAMILY_MISS:
        why = (f"the family's law misses the trial's own points by {100 * miss:.2g} % "
               f"(limit {100 * FAMILY_MISS:g} %)")
        return None, {**info, "family_fallback": why}
    if not (math.isfinite(mean) and math.isfinite(std) and mean >= MIN_PLAUSIBLE_RATIO * observed_min):
        return None, {**info, "family_fallback": f"implausible family forecast {mean:.4g}"}
    return Forecast(np.array([min(mean, observed_min)]), np.array([max(std, 0.0)]), np.zeros(1, bool), [None]), info
