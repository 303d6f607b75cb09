"""Quality metrics of one allocation: best loss, regret, compute, and the law fitted to what was observed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sh_scaling.curves import Curve
from sh_scaling.laws import ScalingLaw, area_between_laws, fit_scaling_law, observed_frontier

__all__ = ["frontier_law", "allocation_metrics", "relative_improvement", "oracle_share", "MIN_ORACLE_GAIN"]

_LAW_GRID_POINTS = 30

#: Below this mean relative improvement of the oracle over SH (0.5 % of the loss), a setting leaves nothing for a
#: forecast to gain, and a share of the oracle's gain is a ratio of two numbers near zero: it is not reported.
MIN_ORACLE_GAIN = 0.005


def frontier_law(curves: Sequence[Curve], form: str = "power", n_bootstrap: int = 0) -> ScalingLaw | None:
    """The law fitted to the observed frontier of ``curves``, or ``None`` with fewer than 3 distinct points."""
    seen = [c for c in curves if len(c)]
    if not seen:
        return None
    c_lo = min(c.compute[0] for c in seen)
    c_hi = max(c.final_compute for c in seen)
    if not c_hi > c_lo:
        return None
    grid, loss = observed_frontier(seen, np.geomspace(c_lo, c_hi, _LAW_GRID_POINTS))
    try:
        return fit_scaling_law(grid, loss, form=form, n_bootstrap=n_bootstrap)
    except ValueError:
        return None


def allocation_metrics(
    observed: Sequence[Curve], full: Sequence[Curve], spent: float, exhaustive_law: ScalingLaw | None
) -> dict[str, float]:
    """Metrics of one allocation against training every candidate to its end.

    Returns a dict with ``best_loss`` (lowest observed loss), ``exhaustive_best``, ``regret``
    ((best - exhaustive best) / exhaustive best), ``spent``, ``exhaustive_compute``, ``savings``
    (1 - spent / exhaustive), ``law_area`` (area between the law fitted on the observed frontier and the
    exhaustive law, in ln-ln units over the exhaustive frontier's compute range), ``law_area_mean`` (that area
    divided by the range's width in ln C: the mean absolute ln-loss gap), and ``exponent_error``
    (``|gamma - gamma_exhaustive| / gamma_exhaustive``).
    """
    losses = [c.min_loss for c in observed if len(c)]
    best = float(min(losses)) if losses else float("nan")
    exh_best = float(min(c.min_loss for c in full))
    exhaustive = float(sum(c.final_compute for c in full))
    out = {
        "best_loss": best,
        "exhaustive_best": exh_best,
        "regret": (best - exh_best) / exh_best,
        "spent": float(spent),
        "exhaustive_compute": exhaustive,
        "savings": 1.0 - spent / exhaustive,
        "law_area": float("nan"),
        "law_area_mean": float("nan"),
        "exponent_error": float("nan"),
    }
    if exhaustive_law is not None:
        law = frontier_law(observed)
        if law is not None:
            c_lo, c_hi = exhaustive_law.c_min, exhaustive_law.c_max
            area = area_between_laws(law, exhaustive_law, c_lo, c_hi)
            out["law_area"] = area
            out["law_area_mean"] = area / np.log(c_hi / c_lo)
            out["exponent_error"] = abs(law.exponent - exhaustive_law.exponent) / abs(exhaustive_law.exponent)
    return out


def relative_improvement(reference: np.ndarray | float, method: np.ndarray | float) -> np.ndarray:
    """RI = (L_reference - L_method) / L_reference (Schram et al., ICML 2026); positive means better."""
    ref = np.asarray(reference, dtype=float)
    return (ref - np.asarray(method, dtype=float)) / ref


def oracle_share(
    ri: np.ndarray, ri_oracle: np.ndarray, *, min_gain: float = MIN_ORACLE_GAIN
) -> tuple[float, float, float]:
    """The share of the oracle's gain over SH that a strategy reaches, with a 95 % interval.

    ``ri[i]`` and ``ri_oracle[i]`` are the relative improvements over SH of the strategy and of ``SH+oracle`` on
    the same candidate set and budget. The share is the ratio of their means, ``mean(ri) / mean(ri_oracle)``:
    1 is as good as ranking by the true future, 0 no better than SH, below 0 worse than SH. Its interval is the
    delta method's for a ratio of paired means (normal approximation, as the intervals of RI): the standard
    error of ``mean(ri - share * ri_oracle)`` divided by ``mean(ri_oracle)``.

    Returns:
        ``(share, lo, hi)``; all NaN where the oracle's mean gain is below ``min_gain`` (there is no gain to
        share), the bounds NaN with fewer than two candidate sets.
    """
    x = np.asarray(ri, dtype=float)
    y = np.asarray(ri_oracle, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"oracle_share: ri has shape {x.shape}, ri_oracle {y.shape}; they must be paired")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = float("nan")
    if x.size == 0 or not float(y.mean()) >= min_gain:
        return nan, nan, nan
    share = float(x.mean() / y.mean())
    if x.size < 2:
        return share, nan, nan
    half = 1.96 * float(np.std(x - share * y, ddof=1)) / (np.sqrt(x.size) * float(y.mean()))
    return share, share - half, share + half
