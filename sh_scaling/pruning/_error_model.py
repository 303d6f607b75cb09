"""Measure how wrong the pruner's forecasts are at each stage of a run, on recorded curves.

The stage error model (:func:`sh_scaling.halving.stage_margin`) starts from a table measured on development
curves (:data:`sh_scaling.halving.STAGE_MARGINS`). :func:`stage_forecast_errors` is that measurement: each curve
is cut where a decision at a stage would see it (its points up to ``stage * max_compute``, the loss at the cut
read as the pruner reads a rung), forecast to its planned end by the same code the pruner decides with, and
the forecast is set against the loss the run reached there. ``benchmarks/bench_stage_error.py`` runs it on
every development set, chooses the table leave-one-set-out and reports the coverage of the margin it gives.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sh_scaling.halving import RTOL, STAGE_NODES, margin_quantile
from sh_scaling.pruning._compute import loss_at
from sh_scaling.pruning._forecasting import fit_points, own_forecast
from sh_scaling.pruning._outcomes import outcome_at, reached
from sh_scaling.schedules import Schedule
from sh_scaling.surrogates import MIN_POINTS, MultiCurveSurrogate, Surrogate

if TYPE_CHECKING:  # sh_scaling.curves imports this package: curves are only read here, never built
    import pandas as pd

    import sh_scaling.curves

__all__ = ["stage_forecast_errors", "stage_margin_table"]

_KINDS = ("own", "multipower")


def stage_forecast_errors(
    curves: Sequence[sh_scaling.curves.Curve],
    *,
    kind: str = "own",
    stages: Sequence[float] = STAGE_NODES,
    surrogate: str | Surrogate | MultiCurveSurrogate = "powerlaw",
    warmup_fraction: float = 0.0,
) -> pd.DataFrame:
    """Forecast errors of the pruner's own forecasting at each stage of each curve.

    Args:
        curves: Recorded curves. The planned compute of a curve is ``meta["max_compute"]`` where present, else its
            final compute; curves that stop short of it have no outcome and are left out.
        kind: ``"own"``: the curve's own fit by ``surrogate`` (as the pruner without a schedule);
            ``"multipower"``: the multi-power law under ``meta["schedule"]`` (as the pruner with a stated
            schedule); curves without a schedule are left out.
        stages: Fractions of the planned compute at which forecasts are made.
        surrogate: For ``kind="own"``, the surrogate (the pruner's ``surrogate``).
        warmup_fraction: Points before this fraction of the planned compute are left out of the fit (the
            pruner's ``warmup_fraction``).

    Returns:
        One row per curve and stage with a forecast: ``curve`` (index), ``name`` (its id), ``stage``, ``n_points``,
        ``loss`` (at the cut), ``forecast``, ``outcome`` (loss at the planned compute), ``log_error``
        (``log(outcome / forecast)``: negative where the forecast was too pessimistic), ``fallback`` (the
        forecast fell back to the observed minimum).
    """
    import pandas as pd

    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {list(_KINDS)}")
    rows: list[dict[str, object]] = []
    for i, curve in enumerate(curves):
        c = np.asarray(curve.compute, dtype=float)
        l = np.asarray(curve.loss, dtype=float)
        ok = np.isfinite(c) & np.isfinite(l) & (l > 0)
        c, l = c[ok], l[ok]
        if c.size < MIN_POINTS:
            continue
        target = float(curve.meta.get("max_compute", c[-1]))
        if not (math.isfinite(target) and target > 0) or not reached(c, target):
            continue
        schedule = curve.meta.get("schedule") if kind == "multipower" else None
        if kind == "multipower" and not isinstance(schedule, Schedule):
            continue
        outcome = outcome_at(c, l, target)
        for stage in stages:
            r = float(stage) * target
            before = c < r * (1 - RTOL)
            if int(before.sum()) + 1 < MIN_POINTS or r > c[-1]:
                continue
            loss_r = loss_at(c, l, r)
            fit_c, fit_l = fit_points(np.append(c[before], r), np.append(l[before], loss_r), target, warmup_fraction)
            if fit_c.size < MIN_POINTS:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fc = own_forecast(surrogate, fit_c, fit_l, target, (), schedule)
            mean = float(fc.mean[0])
            rows.append({
                "curve": i,
                "name": curve.id,
                "stage": float(stage),
                "n_points": int(before.sum()) + 1,
                "loss": loss_r,
                "forecast": mean,
                "outcome": outcome,
                "log_error": math.log(outcome / mean) if mean > 0 else math.nan,
                "fallback": bool(fc.fallback[0]),
            })
    return pd.DataFrame(rows, columns=["curve", "name", "stage", "n_points", "loss", "forecast", "outcome",
                                       "log_error", "fallback"])


def stage_margin_table(errors: pd.DataFrame, coverage: float) -> tuple[float, ...]:
    """The margin at each of :data:`~sh_scaling.halving.STAGE_NODES` that covers ``coverage`` of the model
    forecasts in ``errors`` (a frame of :func:`stage_forecast_errors`; fallbacks left out), made non-increasing
    with the stage (a later forecast is never given more room than an earlier one)."""
    model = errors[~errors["fallback"].astype(bool)]
    values = []
    for node in STAGE_NODES:
        at = model[np.isclose(model["stage"].to_numpy(dtype=float), node)]
        values.append(margin_quantile(at["log_error"].to_numpy(dtype=float), coverage))
    # Running maximum from the late end: the margin never grows with the stage.
    out = np.maximum.accumulate(np.asarray(values)[::-1])[::-1]
    return tuple(float(v) for v in out)
