"""Checks shared by every surrogate: the curve, the query, the settings, and finiteness before linear algebra.

Each check raises ``ValueError`` naming the owner (``"PowerLawSurrogate.fit"``), the argument and the value
received, so that :func:`sh_scaling.surrogates.forecast` can record the message as the reason of a fallback.

Why finiteness is checked before linear algebra: LAPACK's SVD, on which ``numpy.linalg.pinv`` and
``scipy.optimize.least_squares`` rely, can loop forever on a matrix holding ``inf`` or ``NaN`` (a fit of the
MMF family to losses near 1e-200 once hung there). A check costs microseconds; a hang stops a study.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "MIN_FIT_POINTS",
    "check_curve",
    "check_extrapolation_std",
    "check_int",
    "check_positive",
    "check_query",
    "require_finite",
]

#: Fewest points (and distinct compute values) any surrogate here accepts: three points determine a
#: saturating three-parameter curve; fewer give no shape at all.
MIN_FIT_POINTS = 3


def check_curve(
    compute: Any,
    loss: Any,
    owner: str,
    min_points: int = MIN_FIT_POINTS,
    *,
    method: str | None = "fit",
    distinct: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(compute, loss)`` as float arrays sorted by compute; raises ``ValueError`` on bad input.

    Messages start with ``owner.method`` (``owner`` alone when ``method`` is ``None``). With ``distinct``, at
    least ``min_points`` different compute values are required (a least-squares fit in compute needs them; a
    law fitted against a schedule's learning-rate area does not).
    """
    label = owner if method is None else f"{owner}.{method}"
    c = np.asarray(compute, dtype=float).ravel()
    y = np.asarray(loss, dtype=float).ravel()
    if c.shape != y.shape:
        raise ValueError(f"{label}: compute has {c.size} points but loss has {y.size}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{label}: compute contains non-finite values (NaN or inf); clean the curve first")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{label}: loss contains non-finite values (NaN or inf); clean the curve first")
    if np.any(c <= 0):
        raise ValueError(f"{label}: compute must be > 0 (log-compute is used), got {c[c <= 0][0]!r}")
    if np.any(y <= 0):
        raise ValueError(f"{label}: loss must be > 0 (log-loss residuals are used), got {y[y <= 0][0]!r}")
    if c.size < min_points:
        raise ValueError(f"{label}: needs at least {min_points} points, got {c.size}")
    order = np.argsort(c, kind="stable")
    c, y = c[order], y[order]
    if distinct:
        n_distinct = np.unique(c).size
        if n_distinct < min_points:
            raise ValueError(f"{label}: needs at least {min_points} distinct compute values, got {n_distinct}")
    return c, y


def check_query(compute: Any, owner: str) -> np.ndarray:
    """``compute`` as a float array, finite and positive (the surrogates work on log-compute)."""
    c = np.asarray(compute, dtype=float)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"{owner}.predict: compute must be finite and > 0")
    return c


def check_extrapolation_std(value: Any, owner: str) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{owner}: extrapolation_std must be a finite number >= 0, got {value!r}")


def check_positive(value: Any, name: str, owner: str) -> float:
    """``value`` as a float; raises unless it is a finite number > 0."""
    if isinstance(value, bool) or not (
        isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value) and value > 0
    ):
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_int(value: Any, name: str, minimum: int, owner: str) -> int:
    """``value`` as an int; raises unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def require_finite(values: np.ndarray, what: str, owner: str) -> np.ndarray:
    """``values`` unchanged if every entry is finite; otherwise a ``ValueError`` instead of a hung solver."""
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{owner}: {what} is not finite (the losses or compute are outside the range this model can "
            "represent in double precision)"
        )
    return values
