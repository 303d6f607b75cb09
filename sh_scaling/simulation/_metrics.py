"""Quality metrics of one allocation: best loss, regret, compute, and the law fitted to what was observed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sh_scaling.curves import Curve
from sh_scaling.laws import ScalingLaw, area_between_laws, fit_scaling_law, observed_frontier

__all__ = ["frontier_law", "allocation_metrics", "relative_improvement"]

_LAW_GRID_POINTS = 30


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
