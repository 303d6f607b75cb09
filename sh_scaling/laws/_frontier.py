"""The loss-compute frontier and the scaling law fitted to it (SPEC §1.1).

The frontier F(C) is the lowest loss any curve reached with at most C compute. Each curve is read at its own
recorded points, interpolated linearly in log-log space between evaluations, and never extrapolated past its
last point. The law is fitted to the frontier on a log-spaced grid, as in Schram et al. (ICML 2026):
``log L = log a - gamma * log C``; optionally with an irreducible term, ``L = E + A * C**(-gamma)``, fitted
with a robust (Huber) loss. Fitted laws use observed points only, never surrogate forecasts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from sh_scaling.curves import Curve

__all__ = ["ScalingLaw", "observed_frontier", "fit_scaling_law", "area_between_laws", "frontier_grid"]

_FORMS = ("power", "irreducible")


def frontier_grid(c_min: float, c_max: float, n: int = 50) -> np.ndarray:
    """``n`` log-spaced compute values from ``c_min`` to ``c_max``."""
    if not (np.isfinite(c_min) and np.isfinite(c_max) and 0 < c_min <= c_max):
        raise ValueError(f"frontier_grid: need 0 < c_min <= c_max, got c_min={c_min!r}, c_max={c_max!r}")
    return np.geomspace(c_min, c_max, n)


def observed_frontier(
    curves: Iterable[Curve], grid: np.ndarray | None = None, n: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """The observed loss-compute frontier of ``curves``.

    Args:
        curves: Curves, each holding only the points that were observed.
        grid: Compute values to evaluate the frontier at. Default: ``n`` log-spaced points from the earliest
            first evaluation to the latest last evaluation.
        n: Grid size when ``grid`` is not given.

    Returns:
        ``(grid, loss)``; ``loss`` is NaN where no curve had been evaluated yet.
    """
    curves = [c for c in curves if len(c)]
    if not curves:
        raise ValueError("observed_frontier: no curve has an observed point")
    if grid is None:
        grid = frontier_grid(min(c.compute[0] for c in curves), max(c.final_compute for c in curves), n)
    grid = np.asarray(grid, dtype=float)
    stacked = np.vstack([c.best_loss_at(grid) for c in curves])
    with np.errstate(all="ignore"):
        all_nan = np.all(np.isnan(stacked), axis=0)
        best = np.where(all_nan, np.nan, np.nanmin(np.where(np.isnan(stacked), np.inf, stacked), axis=0))
    return grid, best


@dataclass(frozen=True)
class ScalingLaw:
    """A fitted loss-compute law.

    ``form="power"``: L(C) = a * C**(-gamma) (equivalently (C / c0)**(-gamma)).
    ``form="irreducible"``: L(C) = E + A * C**(-gamma).

    Attributes:
        form: ``"power"`` or ``"irreducible"``.
        params: Point estimates (``a, gamma`` or ``E, A, gamma``).
        intervals: Bootstrap percentile intervals per parameter (empty when not bootstrapped).
        c_min, c_max: Compute range of the points it was fitted on.
        n_points: Number of points fitted.
    """

    form: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    c_min: float = float("nan")
    c_max: float = float("nan")
    n_points: int = 0

    @property
    def exponent(self) -> float:
        return self.params["gamma"]

    def predict(self, compute: float | np.ndarray) -> np.ndarray:
        c = np.asarray(compute, dtype=float)
        return _evaluate(self.form, _param_vector(self.form, self.params), c)

    def __str__(self) -> str:
        def fmt(name: str) -> str:
            v = self.params[name]
            if name in self.intervals:
                lo, hi = self.intervals[name]
                return f"{name}={v:.4g} [{lo:.4g}, {hi:.4g}]"
            return f"{name}={v:.4g}"

        body = ", ".join(fmt(k) for k in self.params)
        return f"ScalingLaw({self.form}: {body})"


def _param_vector(form: str, params: dict[str, float]) -> np.ndarray:
    if form == "power":
        return np.array([np.log(params["a"]), params["gamma"]])
    return np.array([params["E"], np.log(params["A"]), params["gamma"]])


def _evaluate(form: str, theta: np.ndarray, c: np.ndarray) -> np.ndarray:
    logc = np.log(c)
    if form == "power":
        return np.exp(theta[0] - theta[1] * logc)
    return theta[0] + np.exp(theta[1] - theta[2] * logc)


def _fit_once(form: str, logc: np.ndarray, logl: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    if form == "power":
        slope, intercept = np.polyfit(logc, logl, 1)
        return np.array([intercept, -slope])
    y = np.exp(logl)
    if start is None:
        # Start from E at half the lowest loss and a straight line through log(L - E).
        e0 = 0.5 * y.min()
        slope, intercept = np.polyfit(logc, np.log(y - e0), 1)
        start = np.array([e0, intercept, max(-slope, 1e-3)])

    def residuals(theta: np.ndarray) -> np.ndarray:
        pred = theta[0] + np.exp(theta[1] - theta[2] * logc)
        return np.log(np.maximum(pred, 1e-300)) - logl

    lower = np.array([0.0, -np.inf, 1e-6])
    upper = np.array([y.min() * (1 - 1e-9), np.inf, 10.0])
    start = np.clip(start, lower + 1e-12, upper - 1e-12)
    # Huber on log residuals: robust to the odd noisy frontier point (Hoffmann et al. 2022 use Huber too).
    res = least_squares(residuals, start, bounds=(lower, upper), loss="huber", f_scale=1e-2)
    return res.x


def _named(form: str, theta: np.ndarray) -> dict[str, float]:
    if form == "power":
        return {"a": float(np.exp(theta[0])), "gamma": float(theta[1])}
    return {"E": float(theta[0]), "A": float(np.exp(theta[1])), "gamma": float(theta[2])}


def fit_scaling_law(
    compute: np.ndarray,
    loss: np.ndarray,
    *,
    form: str = "power",
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> ScalingLaw:
    """Fit a loss-compute law to frontier points.

    Args:
        compute: Compute values (typically :func:`observed_frontier`'s grid). NaN losses are ignored.
        loss: Frontier losses at ``compute``.
        form: ``"power"`` (least squares in log-log space) or ``"irreducible"`` (E + A*C^-gamma, Huber loss
            on log residuals).
        n_bootstrap: Pairs-bootstrap resamples for the intervals (0 disables them).
        confidence: Width of the percentile intervals.
        seed: Seed of the bootstrap.

    Raises:
        ValueError: unknown form, or fewer than 3 finite positive points.
    """
    if form not in _FORMS:
        raise ValueError(f"fit_scaling_law: form must be one of {_FORMS}, got {form!r}")
    c = np.asarray(compute, dtype=float).ravel()
    y = np.asarray(loss, dtype=float).ravel()
    if c.shape != y.shape:
        raise ValueError(f"fit_scaling_law: compute has {c.size} values but loss has {y.size}")
    ok = np.isfinite(c) & np.isfinite(y) & (c > 0) & (y > 0)
    c, y = c[ok], y[ok]
    if c.size < 3:
        raise ValueError(f"fit_scaling_law: need at least 3 finite positive points, got {c.size}")
    logc, logl = np.log(c), np.log(y)
    theta = _fit_once(form, logc, logl, None)
    intervals: dict[str, tuple[float, float]] = {}
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, c.size, c.size)
            if np.unique(logc[idx]).size < 3:
                continue
            try:
                draws.append(_fit_once(form, logc[idx], logl[idx], theta.copy()))
            except (ValueError, np.linalg.LinAlgError):
                continue
        if draws:
            named = [_named(form, d) for d in draws]
            tail = 100 * (1 - confidence) / 2
            for k in named[0]:
                vals = np.array([d[k] for d in named])
                intervals[k] = (float(np.percentile(vals, tail)), float(np.percentile(vals, 100 - tail)))
    return ScalingLaw(form, _named(form, theta), intervals, float(c.min()), float(c.max()), int(c.size))


def area_between_laws(a: ScalingLaw, b: ScalingLaw, c_min: float, c_max: float, n: int = 200) -> float:
    """Area between two laws in log-log space over [c_min, c_max].

    The integral of |ln L_a(C) - ln L_b(C)| d(ln C), by the trapezoid rule on ``n`` log-spaced points. Divide
    by ``ln(c_max / c_min)`` for the mean absolute log-loss gap.
    """
    grid = frontier_grid(c_min, c_max, n)
    with np.errstate(all="ignore"):
        gap = np.abs(np.log(a.predict(grid)) - np.log(b.predict(grid)))
    if not np.all(np.isfinite(gap)):
        return float("inf")
    x = np.log(grid)
    return float(np.sum((gap[1:] + gap[:-1]) * np.diff(x)) / 2)
