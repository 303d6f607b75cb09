"""Scores that rank candidates at a decision (lower is better).

Every candidate is described by the same few numbers whichever driver asks (the asynchronous pruner or
fixed-budget halving): where it is now (``start`` compute, its ``loss`` there), the compute it would reach if
it goes on (``target``), and the surrogate's forecast of its loss there (``mean``, ``std``; a fallback forecast
is the observed loss with ``std = 0``).

``at_risk`` marks the candidates given the benefit of the doubt: their forecasts enter their own score at the
lower ``optimism`` quantile, while everyone else is represented by the forecast mean. The asynchronous pruner
decides one trial at a time, so only that trial is at risk; fixed-budget halving decides a whole round at
once, so every survivor is. That is the one place where the two settings differ, and it is an argument.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = [
    "FRONTIER_GRID",
    "optimistic",
    "observed_scores",
    "forecast_scores",
    "forecast_paths_loglog",
    "lower_envelope",
    "frontier_scores",
    "observed_gap",
    "calibrate_forecasts",
    "MIN_CALIBRATION_RESIDUALS",
]

#: Points of the log-compute grid on which forecast paths are compared with the frontier. Paths are straight
#: lines in log-log space, so the gap between one path and an envelope of N others changes slope at most N
#: times; 32 points over the range place a point within 3 % of a decade's log-width of any crossing for the
#: two-decade ranges of the routing and synthetic sets, and cost microseconds.
FRONTIER_GRID = 32

#: Floor under losses before taking logs (losses are positive; this only keeps log() finite).
_TINY = 1e-300


def optimistic(
    mean: np.ndarray, std: np.ndarray, optimism: float | None, *, margin: np.ndarray | None = None
) -> np.ndarray:
    """The lower ``optimism`` quantile of a Gaussian forecast (``None``: the mean), or, where a ``margin`` (log
    loss, :func:`~sh_scaling.halving.stage_margin`) reaches lower, ``mean * exp(-margin)``: the benefit of the
    doubt is whichever of the forecast's own interval and its stage's measured error is wider."""
    mean = np.asarray(mean, dtype=float)
    value = mean
    if optimism is not None:
        z = NormalDist().inv_cdf(float(optimism))
        value = mean + z * np.nan_to_num(np.asarray(std, dtype=float), nan=0.0)
    if margin is not None:
        m = np.maximum(np.nan_to_num(np.asarray(margin, dtype=float), nan=0.0), 0.0)
        value = np.minimum(value, mean * np.exp(-m))
    return value


def observed_scores(loss: np.ndarray) -> np.ndarray:
    """Plain successive halving: the observed loss (NaN, for a candidate with no point yet, ranks last)."""
    loss = np.asarray(loss, dtype=float)
    return np.where(np.isnan(loss), np.inf, loss)


def forecast_scores(
    mean: np.ndarray,
    std: np.ndarray,
    *,
    optimism: float | None,
    at_risk: np.ndarray,
    margin: np.ndarray | None = None,
) -> np.ndarray:
    """The forecast loss at each candidate's target: its optimistic value where at risk (:func:`optimistic`,
    with ``margin``), else its mean."""
    mean = np.asarray(mean, dtype=float)
    value = np.where(np.asarray(at_risk, bool), optimistic(mean, std, optimism, margin=margin), mean)
    return np.where(np.isnan(value), np.inf, value)


def forecast_paths_loglog(
    start: np.ndarray, loss_start: np.ndarray, target: np.ndarray, end: np.ndarray, log_grid: np.ndarray
) -> np.ndarray:
    """Each candidate's path on a log-compute grid, as log loss (rows: candidates).

    The path runs straight in log-log space (a power law between two points) from ``loss_start`` at
    ``start`` to ``end`` at ``target``, never rises (``end`` is clipped to ``loss_start``), stays flat after
    the target (the frontier is the lowest loss reached at compute <= C), and is unknown (+inf) before
    ``start``.
    """
    x0 = np.log(np.asarray(start, dtype=float))[:, None]
    span = np.maximum(np.log(np.asarray(target, dtype=float))[:, None] - x0, 1e-12)
    frac = np.clip((log_grid[None, :] - x0) / span, 0.0, 1.0)
    first = np.log(np.maximum(loss_start, _TINY))[:, None]
    last = np.log(np.maximum(np.minimum(end, loss_start), _TINY))[:, None]
    path = first + frac * (last - first)
    return np.where(log_grid[None, :] < x0 - 1e-12 * np.abs(x0), np.inf, path)


def lower_envelope(rows: np.ndarray, exclude_own: bool = False) -> np.ndarray:
    """Pointwise minimum over rows (``inf`` marks "no value").

    With ``exclude_own``, row ``i`` of the result is the minimum over every row but ``i`` (the frontier of
    the others), computed from the lowest and second-lowest row at each column.
    """
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"lower_envelope: need a non-empty 2-D array, got shape {rows.shape}")
    if not exclude_own:
        return rows.min(axis=0)
    n = rows.shape[0]
    if n == 1:
        return np.full_like(rows, np.inf)
    # The two lowest rows per column, in linear time (a full sort costs n log n per column). Where two rows tie
    # for the lowest, whichever is taken as "the" lowest, every row's minimum over the others is that value.
    two = np.argpartition(rows, 1, axis=0)[:2]
    a = np.take_along_axis(rows, two[:1], axis=0)[0]
    b = np.take_along_axis(rows, two[1:2], axis=0)[0]
    first = np.where(a <= b, two[0], two[1])
    lowest, second = np.minimum(a, b), np.maximum(a, b)
    return np.where(first[None, :] == np.arange(n)[:, None], second[None, :], lowest[None, :])


def _anchor_rows(
    n: int, log_grid: np.ndarray, anchors: tuple[np.ndarray, np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Observed points as step envelopes: per candidate (its own points) and for points owned by nobody.

    A point (c, l) lowers the frontier to l at every compute >= c (a frontier never rises).
    """
    owned = np.full((n, log_grid.size), np.inf)
    free = np.full(log_grid.size, np.inf)
    if anchors is None:
        return owned, free
    c, l, owner = (np.asarray(a) for a in anchors)
    ok = np.isfinite(c) & (c > 0) & np.isfinite(l) & (l > 0)
    c, l, owner = c[ok], l[ok], owner[ok].astype(int)
    if c.size == 0:
        return owned, free
    values = np.where(log_grid[None, :] >= np.log(c)[:, None] - 1e-12, np.log(l)[:, None], np.inf)
    mine = (owner >= 0) & (owner < n)
    if not mine.all():
        free = values[~mine].min(axis=0)
    if mine.any():
        # One minimum per owner: rows grouped by owner, reduced group by group.
        order = np.argsort(owner[mine], kind="stable")
        who = owner[mine][order]
        starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
        owned[who[starts]] = np.minimum.reduceat(values[mine][order], starts, axis=0)
    return owned, free


def frontier_scores(
    start: np.ndarray,
    loss_start: np.ndarray,
    target: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    optimism: float | None,
    at_risk: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    n_grid: int = FRONTIER_GRID,
    margin: np.ndarray | None = None,
) -> np.ndarray:
    """How far below the others' frontier each candidate's forecast path goes (log loss; lower is better).

    The frontier of the others, for candidate ``i``, is the lower envelope of every other candidate's mean
    path and of the observed points ``anchors = (compute, loss, owner)`` not owned by ``i`` (``owner`` is a
    candidate index, or -1 for points of curves that are no longer candidates). Candidate ``i``'s own path
    ends at its optimistic value where ``at_risk[i]`` (:func:`optimistic`, with ``margin``), else at its mean. The score is the minimum over a
    log grid, from the earliest ``start`` to the largest ``target``, of ``log(own path) - log(others'
    frontier)``, where the own path is known: negative where the candidate could lower the frontier.
    """
    start = np.asarray(start, dtype=float)
    n = start.size
    loss_start = np.asarray(loss_start, dtype=float)
    target = np.maximum(np.asarray(target, dtype=float), start)
    mean = np.asarray(mean, dtype=float)
    mean = np.where(np.isnan(mean), loss_start, mean)
    at_risk = np.asarray(at_risk, bool)
    own_end = np.where(at_risk, optimistic(mean, std, optimism, margin=margin), mean)
    own_end = np.where(np.isnan(own_end), mean, own_end)
    x_lo = float(np.log(start.min()))
    log_grid = np.linspace(x_lo, max(float(np.log(target.max())), x_lo + 1e-6), n_grid)
    mean_paths = forecast_paths_loglog(start, loss_start, target, mean, log_grid)
    own = forecast_paths_loglog(start, loss_start, target, own_end, log_grid)
    owned, free = _anchor_rows(n, log_grid, anchors)
    others = np.minimum(lower_envelope(np.minimum(mean_paths, owned), exclude_own=True), free[None, :])
    with np.errstate(invalid="ignore"):
        gap = own - others
    gap = np.where(np.isinf(own) & (own > 0), np.inf, gap)  # no claim where the own path is unknown
    gap = np.where(np.isnan(gap), np.inf, gap)
    return gap.min(axis=1)


def observed_gap(
    start: float,
    loss_start: float,
    target: float,
    end: float,
    observed: tuple[np.ndarray, np.ndarray],
    *,
    objective: str,
    n_grid: int = FRONTIER_GRID,
) -> float:
    """How far below the losses observed so far one candidate's forecast goes (log loss; negative: it improves
    on them, ``-inf`` with nothing observed to improve on).

    ``observed = (compute, loss)``: points reported by other candidates (not forecasts: what the study has).
    ``end`` is the candidate's forecast at ``target`` (its optimistic quantile, for the benefit of the doubt).
    For ``objective="best_loss"`` the gap is ``log(end) - log(lowest observed loss)``; for ``"frontier"`` it is
    the minimum over a log grid from ``start`` to ``target`` of the candidate's path (straight in log-log, as in
    :func:`frontier_scores`) less the observed frontier (the lowest loss observed at compute up to each point).
    """
    c, l = (np.asarray(a, dtype=float) for a in observed)
    ok = np.isfinite(c) & (c > 0) & np.isfinite(l) & (l > 0)
    c, l = c[ok], l[ok]
    end = min(float(end), float(loss_start)) if np.isfinite(end) else float(loss_start)
    if c.size == 0 or not end > 0:
        return -np.inf if end > 0 else np.inf
    if objective == "best_loss":
        return float(np.log(end) - np.log(l.min()))
    if objective != "frontier":
        raise ValueError(f"observed_gap: objective={objective!r}: choose 'best_loss' or 'frontier'")
    x0 = float(np.log(start))
    log_grid = np.linspace(x0, max(float(np.log(max(target, start))), x0 + 1e-6), n_grid)
    path = forecast_paths_loglog(
        np.array([start]), np.array([loss_start]), np.array([max(target, start)]), np.array([end]), log_grid
    )[0]
    # The lowest loss at compute <= each grid point: a running minimum over the points sorted by compute.
    order = np.argsort(c, kind="stable")
    lowest = np.minimum.accumulate(np.log(l[order]))
    seen = np.searchsorted(np.log(c[order]) - 1e-12, log_grid, side="right")
    frontier = np.where(seen > 0, lowest[np.maximum(seen - 1, 0)], np.inf)
    with np.errstate(invalid="ignore"):
        gap = path - frontier
    return float(np.nan_to_num(gap, nan=np.inf).min())


#: Forecasts with a known outcome needed before :func:`calibrate_forecasts` replaces the Gaussian assumption by
#: the study's own record (fewer: the forecasts are used as they are). 20 residuals put the empirical 0.4
#: quantile within about ±0.11 in probability (the binomial standard error at n = 20).
MIN_CALIBRATION_RESIDUALS = 20


def calibrate_forecasts(
    mean: np.ndarray,
    std: np.ndarray,
    residuals: np.ndarray,
    *,
    optimism: float | None,
    min_residuals: int = MIN_CALIBRATION_RESIDUALS,
) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    """Re-express Gaussian forecasts so that their quantiles are the study's empirical ones.

    ``residuals`` are earlier forecasts' standardised errors ``(outcome - mean) / std``, for forecasts whose
    outcome is now known. If forecasts were calibrated they would be standard normal. Instead of the normal
    quantiles, use theirs: the median residual ``m`` and the lower ``optimism`` quantile ``q`` become the
    forecast's median (``mean + m std``) and its optimistic value (``mean + q std``), returned as a shifted mean
    and a scaled std such that :func:`optimistic` reproduces both. With ``optimism=None`` only the median
    moves. Fewer than ``min_residuals`` finite residuals: the forecasts unchanged and ``None``.

    Returns:
        The mean and std to rank with, and ``{"n", "shift", "scale"}`` (what was applied) or ``None``.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.nan_to_num(np.asarray(std, dtype=float), nan=0.0)
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < max(1, int(min_residuals)):
        return mean, std, None
    shift = float(np.median(r))
    scale = 1.0
    if optimism is not None:
        z = NormalDist().inv_cdf(float(optimism))
        q = float(np.quantile(r, float(optimism)))
        # The empirical optimistic value lies at or below the median; a degenerate sample (all equal) keeps a
        # sliver of spread rather than a zero std that would end the benefit of the doubt.
        scale = max((q - shift) / z, 1e-3) if z < 0 else 1.0
    return mean + shift * std, std * scale, {"n": float(r.size), "shift": shift, "scale": scale}
