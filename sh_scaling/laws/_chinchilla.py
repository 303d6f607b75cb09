"""The Chinchilla loss ``L(N, D) = E + A/N**alpha + B/D**beta``: evaluation, compute-optimal allocation and a
robust fit.

Hoffmann et al., "Training Compute-Optimal Large Language Models" (2022), Section 3.3 (Approach 3) and
Appendix D.2; the refit of Besiroglu et al. (Epoch AI, 2024) showed that the original optimiser stopped early,
so the fit here runs L-BFGS to tight tolerances and reports bootstrap intervals.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from sh_scaling.constants import HOFFMANN_2022, ChinchillaConstants

__all__ = [
    "chinchilla_loss",
    "ChinchillaAllocation",
    "compute_optimal_allocation",
    "ChinchillaFit",
    "fit_chinchilla",
    "HOFFMANN_GRID",
]

#: Hoffmann et al. (2022), Appendix D.2: initialisation grid of Approach 3's fit, over
#: (alpha, beta, e, a, b) with A = exp(a), B = exp(b), E = exp(e).
HOFFMANN_GRID: dict[str, tuple[float, ...]] = {
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
}


def chinchilla_loss(
    n_params: float | np.ndarray, n_tokens: float | np.ndarray, constants: ChinchillaConstants = HOFFMANN_2022
) -> float | np.ndarray:
    """``E + A / N**alpha + B / D**beta`` (broadcasts over arrays).

    Args:
        n_params: ``N``, model parameters (positive).
        n_tokens: ``D``, training tokens (positive).
        constants: Law constants (default: Hoffmann et al. 2022, Approach 3; see also
            :data:`sh_scaling.constants.EPOCH_2024`).
    """
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(n_tokens, dtype=float)
    if np.any(~np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"n_params must be positive and finite, got {n_params!r}")
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"n_tokens must be positive and finite, got {n_tokens!r}")
    k = constants
    out = k.E + k.A / n**k.alpha + k.B / d**k.beta
    return float(out) if out.ndim == 0 else out


class ChinchillaAllocation(NamedTuple):
    """Compute-optimal model size and data for a budget ``C = 6 N D``."""

    n_params: float | np.ndarray
    n_tokens: float | np.ndarray


def compute_optimal_allocation(
    flops: float | np.ndarray, constants: ChinchillaConstants = HOFFMANN_2022
) -> ChinchillaAllocation:
    """Minimise ``L(N, D)`` subject to ``6 N D = C``, in closed form (Hoffmann et al. 2022, eq. 4).

    ``N_opt = G (C/6)**a``, ``D_opt = (C/6)**b / G`` with ``G = (alpha A / (beta B))**(1/(alpha+beta))``,
    ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``. Hoffmann's rounded constants give ``a = 0.452`` and
    ``b = 0.548``; their Table 2 reports 0.46 and 0.54 for Approach 3 (from the unrounded fit).
    """
    c = np.asarray(flops, dtype=float)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"flops must be positive and finite, got {flops!r}")
    k = constants
    s = k.alpha + k.beta
    g = (k.alpha * k.A / (k.beta * k.B)) ** (1.0 / s)
    n = g * (c / 6.0) ** (k.beta / s)
    d = (c / 6.0) ** (k.alpha / s) / g
    if n.ndim == 0:
        return ChinchillaAllocation(float(n), float(d))
    return ChinchillaAllocation(n, d)


@dataclass
class ChinchillaFit:
    """Result of :func:`fit_chinchilla`.

    Attributes:
        constants: The fitted law.
        intervals: ``{name: (low, high)}`` bootstrap percentile intervals for ``E, A, B, alpha, beta`` at level
            ``confidence`` (empty when ``n_bootstrap=0``).
        confidence: Level of the intervals.
        objective: Huber objective at the optimum (sum over points).
        n_points: Points fitted.
        bootstrap: Array ``(n_bootstrap, 5)`` of refitted ``(E, A, B, alpha, beta)``.
    """

    constants: ChinchillaConstants
    intervals: dict[str, tuple[float, float]]
    confidence: float
    objective: float
    n_points: int
    bootstrap: np.ndarray = field(repr=False)

    def predict(self, n_params: float | np.ndarray, n_tokens: float | np.ndarray) -> float | np.ndarray:
        """The fitted loss at ``(N, D)``."""
        return chinchilla_loss(n_params, n_tokens, self.constants)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    """Huber loss of ``LSE(a - alpha log N, b - beta log D, e) - log L`` and its gradient.

    ``theta = (a, b, e, alpha, beta)``.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    lse = logsumexp(terms, axis=0)
    r = lse - log_l
    w = np.exp(terms - lse)  # softmax weights: d lse / d term
    psi = np.clip(r, -delta, delta)  # Huber derivative
    grad = np.array(
        [
            np.sum(psi * w[0]),
            np.sum(psi * w[1]),
            np.sum(psi * w[2]),
            -np.sum(psi * w[0] * log_n),
            -np.sum(psi * w[1] * log_d),
        ]
    )
    return float(np.sum(_huber(r, delta))), grad


def _grid_objective(grid: np.ndarray, log_n, log_d, log_l, delta) -> np.ndarray:
    a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(grid), len(log_n)))])
    r = logsumexp(terms, axis=0) - log_l
    return _huber(r, delta).sum(axis=1)


def _minimise(starts: np.ndarray, log_n, log_d, log_l, delta) -> tuple[np.ndarray, float]:
    best_x, best_f = starts[0], math.inf
    for x0 in starts:
        res = minimize(
            _objective,
            x0,
            args=(log_n, log_d, log_l, delta),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
        )
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return best_x, best_f


def _to_constants(theta: np.ndarray, source: str) -> ChinchillaConstants:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ChinchillaConstants(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta, source=source)


def fit_chinchilla(
    n_params: np.ndarray,
    n_tokens: np.ndarray,
    loss: np.ndarray,
    *,
    delta: float = 1e-3,
    grid: dict[str, tuple[float, ...]] | None = None,
    n_starts: int = 8,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> ChinchillaFit:
    """Fit ``L = E + A/N**alpha + B/D**beta`` as Hoffmann et al. (2022) Approach 3 does.

    Minimises ``sum Huber_delta(LSE(a - alpha log N, b - beta log D, e) - log L)`` (``A = e**a``,
    ``B = e**b``, ``E = e**e``) with L-BFGS. Every point of the initialisation grid is scored and L-BFGS runs
    from the ``n_starts`` best (running it from all 4,500 points of Hoffmann's grid gives the same optimum on
    the data we tried and costs a thousand times more). Intervals come from a nonparametric bootstrap over
    points, each refit started from the full-data optimum.

    Args:
        n_params, n_tokens, loss: One entry per training run (or curve point), all positive and finite.
        delta: Huber threshold on log-loss residuals (Hoffmann et al.: 1e-3).
        grid: Initialisation grid, ``{"alpha", "beta", "e", "a", "b"} -> values`` (default
            :data:`HOFFMANN_GRID`).
        n_starts: L-BFGS runs from the best grid points (at least 1).
        n_bootstrap: Bootstrap resamples for the intervals (0 to skip).
        confidence: Level of the percentile intervals, in (0, 1).
        random_state: Seed or generator of the bootstrap.

    Returns:
        A :class:`ChinchillaFit`.

    Raises:
        ValueError: mismatched lengths, fewer than 5 points, non-positive or non-finite values, or bad options.
    """
    n = np.asarray(n_params, dtype=float).ravel()
    d = np.asarray(n_tokens, dtype=float).ravel()
    lo = np.asarray(loss, dtype=float).ravel()
    if not (len(n) == len(d) == len(lo)):
        raise ValueError(f"n_params, n_tokens and loss must have equal lengths, got {len(n)}, {len(d)}, {len(lo)}")
    if len(n) < 5:
        raise ValueError(f"need at least 5 points to fit 5 parameters, got {len(n)}")
    for name, arr in (("n_params", n), ("n_tokens", d), ("loss", lo)):
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{name} must be positive and finite everywhere")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    if not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
    if not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    g = HOFFMANN_GRID if grid is None else grid
    missing = {"alpha", "beta", "e", "a", "b"} - set(g)
    if missing:
        raise ValueError(f"grid is missing {sorted(missing)}")
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(lo)

    points = np.array(list(itertools.product(g["a"], g["b"], g["e"], g["alpha"], g["beta"])), dtype=float)
    scores = _grid_objective(points, log_n, log_d, log_l, delta)
    starts = points[np.argsort(scores)[:n_starts]]
    theta, best = _minimise(starts, log_n, log_d, log_l, delta)

    rng = np.random.default_rng(random_state)
    samples = np.empty((n_bootstrap, 5))
    for i in range(n_bootstrap):
        idx = rng.integers(0, len(n), len(n))
        th, _ = _minimise(theta[None, :], log_n[idx], log_d[idx], log_l[idx], delta)
        samples[i] = [math.exp(th[2]), math.exp(th[0]), math.exp(th[1]), th[3], th[4]]
    intervals: dict[str, tuple[float, float]] = {}
    if n_bootstrap:
        q = 100 * (1 - confidence) / 2
        for j, name in enumerate(("E", "A", "B", "alpha", "beta")):
            low, high = np.percentile(samples[:, j], [q, 100 - q])
            intervals[name] = (float(low), float(high))
    return ChinchillaFit(
        constants=_to_constants(theta, source=f"fit_chinchilla on {len(n)} points"),
        intervals=intervals,
        confidence=confidence,
        objective=best,
        n_points=len(n),
        bootstrap=samples,
    )
