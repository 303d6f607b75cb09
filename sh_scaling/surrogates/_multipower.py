"""Schedule-aware learning-curve surrogates: the multi-power law and the annealing law, fitted to (compute, loss).

A run trained with a cosine or WSD schedule is "still hot" early on: its loss falls fast once its own decay
starts. A surrogate that sees only (compute, loss) reads that as a bad run; one that knows the schedule can
forecast the drop. Both laws here are functions of the learning-rate history (:class:`LearningRateHistory`):

* ``law="multipower"`` (default): the multi-power law of Luo et al. (ICLR 2025),
  ``L = L0 + A S**(-alpha) - B sum_k (eta_{k-1} - eta_k) (1 - (1 + C eta_k**(-gamma) S_k)**(-beta))``, with
  ``S`` the learning-rate area so far and ``S_k`` the area since the ``k``-th decrease. Seven constants.
* ``law="tissue"``: the annealing law of Tissue et al. (2024, arXiv:2408.11029), ``L0 + A S**(-alpha) - C S2``
  with the momentum annealing area ``S2``, written as a lag ``tau`` in time. Five constants.

Within one run compute is proportional to steps, so the fraction of the run is ``compute / max_compute``, the
argument of the :mod:`~sh_scaling.schedules` schedule.

How the fit works:

* **Units.** Time is ``compute / c_ref`` (``c_ref``: the run's ``max_compute``; for a joint fit the largest
  ``max_compute`` of the family), learning rates are divided by the largest peak rate, and the loss-valued
  constants (``L0``, ``A``, ``B``) by a loss scale (the smallest observed loss). The fit is therefore the same
  for losses near 1e-300 or 1e300 and for compute in FLOPs or PF-days.
* **Parameters** are fitted in log space where positive (``A, B, C, tau``), with bounds (``0 <= L0 <
  min(loss)``; ``0.01 <= alpha <= 3``, ...; :data:`_BOUNDS`), so every fitted curve is a valid law.
* **Robust fit in log-loss**: residuals ``log L_model - log L_observed`` standardised by the curve's own noise
  (estimated from second differences of log-loss) combined with the law's own misfit
  (:data:`MODEL_DISCREPANCY`), passed through a soft-L1 loss of scale ``robust_scale`` such units so the
  warm-up start of a curve and occasional spikes are down-weighted, plus Gaussian priors
  (:func:`default_priors`, from the constants Luo et al. fitted). A single early curve cannot tell how much
  its decay will lower the loss; the priors say what annealing did on the paper's runs, and the data override
  them where they can (a joint fit on a family that includes an annealed run). A second round re-weights the
  points by the share that count as independent (:func:`_independent_share`): a law misses a curve smoothly.
* ``scipy.optimize.least_squares`` (trust-region reflective) from two starts per round, at most ``max_nfev``
  evaluations each; values and Jacobians are checked finite before any linear algebra, and a fit ends with a
  result or a ``ValueError``/``RuntimeError`` that says why.
* **Uncertainty** on log-loss: the delta method on the posterior covariance ``(J^T J + P)^-1`` (Gauss-Newton
  with the prior precision ``P``; data rows scaled by the larger of the noise estimate and the fit's residual
  scale, and by the share of points that count as independent), plus that residual scale as observation
  noise, plus (joint fits) the spread of the runs around the shared law, plus a model-discrepancy term
  ``extrapolation_std * log(C / C_last)`` beyond the last observation (:data:`EXTRAPOLATION_STD`).
  ``benchmarks/bench_schedule_forecast.py`` measures the coverage.

References:
    K. Luo, H. Wen, S. Hu, Z. Sun, Z. Liu, M. Sun, K. Lyu, W. Chen. A Multi-Power Law for Loss Curve
    Prediction Across Learning Rate Schedules. ICLR 2025, arXiv:2503.12811.
    H. Tissue, V. Wang, L. Wang. Scaling Law with Learning Rate Annealing. arXiv:2408.11029, 2024.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from sh_scaling.schedules import (
    LUO_2025,
    TISSUE_2024_DECAY,
    Constant,
    LearningRateHistory,
    MultiPowerLawParams,
    Schedule,
    as_schedule,
)
from sh_scaling.surrogates._numerics import least_squares_trf, one_blas_thread
from sh_scaling.surrogates._validation import check_curve

__all__ = [
    "MultiPowerLawSurrogate",
    "JointMultiPowerLawSurrogate",
    "default_priors",
    "priors_from_fits",
    "LAWS",
    "PRIOR_KEYS",
    "EXTRAPOLATION_STD",
]

#: Laws accepted by ``law=``, with their internal parameters (log of each positive constant; loss-valued
#: constants relative to the loss scale, time in ``c_ref`` units, learning rates relative to the peak).
LAWS: dict[str, tuple[str, ...]] = {
    "multipower": ("L0", "log_A", "alpha", "log_B", "log_C", "beta", "gamma"),
    "tissue": ("L0", "log_A", "alpha", "log_B", "log_tau"),
}
#: What ``priors=`` may constrain, per law. ``log_gain`` is ``log(B / (L0 + A))``, the share of a constant-rate
#: run's loss at the end of the run (of the longest run in a joint fit) that annealing the rate to 0 removes: a
#: property of the model and data, unlike ``B`` relative to the loss seen so far, which depends on where the run
#: was cut. (A share of the asymptote ``L0`` alone left ``B`` free wherever the data put ``L0`` at 0.)
PRIOR_KEYS: dict[str, tuple[str, ...]] = {
    "multipower": ("alpha", "log_gain", "log_C", "beta", "gamma"),
    "tissue": ("alpha", "log_gain", "log_tau"),
}

#: Bounds of the internal parameters. ``L0`` is a fraction of the smallest observed loss (the asymptote lies
#: below every observation). ``log_B <= 0``: a full anneal cannot remove more than the whole loss. Exponents
#: span 10x either side of the paper's values (alpha 0.43-0.51, beta 0.58-0.60, gamma 0.63-0.66; Luo et al.
#: 2025). ``log_C`` and ``log_tau`` cover lags from a millionth of a run to far longer than a run.
_BOUNDS: dict[str, tuple[float, float]] = {
    "L0": (0.0, 1.0 - 1e-6),
    "log_A": (-40.0, 40.0),
    "alpha": (0.01, 3.0),
    "log_B": (-20.0, 0.0),
    "log_C": (-10.0, 30.0),
    "beta": (0.05, 3.0),
    "gamma": (0.0, 2.0),
    "log_tau": (-16.0, 5.0),
}

#: Std of log-loss added per e-fold of compute beyond the last observation (model discrepancy: real curves
#: leave any fitted law). 0.003, far below the power law's 0.02 (``surrogates/_parametric.py``), because the
#: schedule-aware law follows what the power law misses. On the 27 runs of Luo et al. (2025), cut at 5-50 % of
#: each run, the 80 % intervals covered the final loss in 74 % (one run), 73 % (one run, priors from the other
#: model sizes) and 75 % (joint fit of each size, all runs cut) of cases without this term; 89 %, 85 % and 81 %
#: with it (``benchmarks/bench_schedule_forecast.py``; chosen on those same runs).
EXTRAPOLATION_STD = 0.003

#: Run length (steps) and peak learning rate of the runs behind the default priors: Luo et al. (2025) train
#: 16k-72k steps at a peak of 3e-4 (``shared/data/multipowerlaw/SUMMARY.md``); 24k is their most common length.
_PRIOR_RUN_STEPS = 24_000.0
_PRIOR_PEAK_LR = 3e-4
#: Lag of Tissue et al.'s momentum area, in steps: ``-1 / ln(lambda)`` with their lambda = 0.999.
_TISSUE_LAG_STEPS = -1.0 / math.log(TISSUE_2024_DECAY)
#: Prior widths: 0.3 on the log anneal gain ``B`` (the spread of the paper's three model sizes is 0.28: 3.4 %
#: to 5.9 % of the loss); e**2 = 7.4 on the lag constant (run lengths differ by that much between sweeps); 0.2
#: on ``alpha`` and 0.1 on ``beta``/``gamma``, a few times the spread of the three fits; 1.5 on Tissue et al.'s
#: lag. With 0.5 on ``B`` the 80 % intervals of one-run forecasts covered 88-100 % on the paper's runs.
_PRIOR_STD = {"alpha": 0.2, "log_gain": 0.3, "log_C": 2.0, "beta": 0.1, "gamma": 0.1, "log_tau": 1.5}

#: Std of log-loss by which the law misses a curve it was fitted to in full, added (in quadrature) to the
#: evaluation noise when weighting the data: Luo et al. (2025) report mean relative errors of 0.110-0.168 % for
#: their fits (``LUO_2025``), a Gaussian std of about 1.25x that. Without it, a few dozen early points with
#: 0.05 % noise outweigh the priors with a law that bends the early curve by a huge anneal gain and fits them
#: better by only 0.03 % rms: on the runs of Luo et al. one forecast from a quarter of a run came out 5 % too
#: low, and joint forecasts from a tenth of each run were 1.2 % off (median) instead of 0.5 %.
MODEL_DISCREPANCY = 0.002

#: Largest magnitude of a standardised residual passed to the optimiser: keeps ``inf`` out of the least squares.
_RESIDUAL_CAP = 1e8
#: Floor of the per-curve noise estimate (std of log-loss): noiseless synthetic curves still get finite weights.
_MIN_NOISE = 1e-4


def default_priors(law: str = "multipower") -> dict[str, tuple[float, float]]:
    """Gaussian priors ``{parameter: (mean, std)}`` on the internal parameters, from Luo et al.'s three fits.

    ``priors_from_fits(LUO_2025.values(), law)``; see :func:`priors_from_fits`. Parameters without a prior
    (``L0``, ``log_A``) are left to the data.
    """
    return dict(_default_priors(law))


@functools.lru_cache(maxsize=None)
def _default_priors(law: str) -> dict[str, tuple[float, float]]:
    """:func:`default_priors`, computed once per law (every fit reads them twice); callers get a copy."""
    return priors_from_fits(LUO_2025.values(), law)


def priors_from_fits(
    fits: Iterable[MultiPowerLawParams],
    law: str = "multipower",
    *,
    peak_lr: float = _PRIOR_PEAK_LR,
    run_steps: float = _PRIOR_RUN_STEPS,
) -> dict[str, tuple[float, float]]:
    """Gaussian priors on the internal parameters from multi-power-law fits in the paper's units.

    Means over ``fits`` (constants with absolute learning rates and time in steps, like
    :data:`~sh_scaling.schedules.LUO_2025`), converted to the surrogate's units:

    * ``alpha``: the mean exponent (Luo et al.: 0.463), std 0.2;
    * ``log_gain``: mean log of the anneal gain ``B * peak / (L0 + A * (peak * run_steps)**(-alpha))``, the
      share of a constant-rate run's loss at the end of ``run_steps`` that decaying the rate to 0 removes (Luo et
      al.: 3.4 %, 4.5 %, 5.9 % for 25M, 100M, 400M), std 0.3;
    * ``log_C``: mean of ``log(C * peak**(1 - gamma) * run_steps)``, the lag constant for a run of ``run_steps``
      steps at ``peak_lr`` (lags in steps carry over between runs; in fractions of a run they do not), std 2;
    * ``beta``, ``gamma``: the means (Luo et al.: 0.592, 0.644), std 0.1;
    * ``log_tau`` (``law="tissue"``): the lag of Tissue et al.'s momentum (lambda = 0.999, about 1,000 steps)
      as a fraction of a run of ``run_steps``, std 1.5.

    The widths (:data:`_PRIOR_STD`) are about the spread between the paper's model sizes for the anneal gain
    and a few times that for the rest. Other models, data and optimisers may spread further: widen the priors
    (``priors={"log_gain": (mean, 0.6)}``) for a very different setting. A joint fit on a family whose runs anneal
    tells the law far more than these priors.

    Args:
        fits: One or more fitted constants.
        law: ``"multipower"`` or ``"tissue"``.
        peak_lr: Peak learning rate of the fitted runs (default 3e-4, Luo et al.'s).
        run_steps: Typical run length in steps (default 24,000, Luo et al.'s most common length).
    """
    if law not in LAWS:
        raise ValueError(f"law={law!r} is not one of {sorted(LAWS)}")
    fits = list(fits)
    if not fits:
        raise ValueError("priors_from_fits: needs at least one fit")
    # The loss of a constant-rate run at its end: the learning-rate area is peak_lr * run_steps in the paper's units.
    gain = [p.B * peak_lr / (p.L0 + p.A * (peak_lr * run_steps) ** (-p.alpha)) for p in fits]
    lag = [p.C * peak_lr ** (1.0 - p.gamma) * run_steps for p in fits]
    means = {
        "alpha": float(np.mean([p.alpha for p in fits])),
        "log_gain": float(np.mean(np.log(gain))),
        "log_C": float(np.mean(np.log(lag))),
        "beta": float(np.mean([p.beta for p in fits])),
        "gamma": float(np.mean([p.gamma for p in fits])),
        "log_tau": math.log(_TISSUE_LAG_STEPS / run_steps),
    }
    return {k: (means[k], _PRIOR_STD[k]) for k in PRIOR_KEYS[law]}


# --- the fit, shared by the single-run and the joint surrogate ----------------------------------------------


@dataclass
class _Run:
    """One run's observations, in the units of the fit."""

    history: LearningRateHistory
    log_loss: np.ndarray


@dataclass
class _Fit:
    theta: np.ndarray
    covariance: np.ndarray
    noise_std: float
    run_offset_std: float
    converged: bool
    n_evaluations: int


def _law_values(theta: np.ndarray, law: str, history: LearningRateHistory, jacobian: bool) -> Any:
    """Loss (relative to the loss scale) of the law with internal parameters ``theta`` at the history's points.

    With ``jacobian=True`` also its derivatives with respect to ``theta``.
    """
    if law == "multipower":
        l0, log_a, alpha, log_b, log_c, beta, gamma = theta
        a, b, c = math.exp(log_a), math.exp(log_b), math.exp(log_c)
        out = history.multi_power_law(l0, a, alpha, b, c, beta, gamma, jacobian=jacobian)
        chain = np.array([1.0, a, 1.0, b, c, 1.0, 1.0])
    else:
        l0, log_a, alpha, log_b, log_tau = theta
        a, b, tau = math.exp(log_a), math.exp(log_b), math.exp(log_tau)
        out = history.momentum_law(l0, a, alpha, b, tau, jacobian=jacobian)
        chain = np.array([1.0, a, 1.0, b, tau])
    if not jacobian:
        return out
    value, jac = out
    return value, jac * chain[None, :]


def _history(schedule: Schedule, fraction: np.ndarray, *, run_length: float, lr_scale: float,
             n_cells: int) -> LearningRateHistory:
    """``LearningRateHistory(schedule, fraction, ...)``, the schedule's nodes computed once per schedule.

    The nodes (:meth:`~sh_scaling.schedules.Schedule.nodes`, a few thousand schedule evaluations) were half the
    cost of a history, and a family decision of the pruner builds forty histories (its runs, fitted and then
    forecast) of the same few schedules. The nodes are a pure function of the schedule (an immutable value), so
    the history is the same.
    """
    try:
        hash(schedule)
    except TypeError:  # a user's schedule that is not an immutable value: its nodes as it computes them
        return LearningRateHistory(schedule, fraction, run_length=run_length, lr_scale=lr_scale, n_cells=n_cells)
    cached = cast(Schedule, _CachedNodes(schedule))
    return LearningRateHistory(cached, fraction, run_length=run_length, lr_scale=lr_scale, n_cells=n_cells)


@functools.lru_cache(maxsize=1024)
def _schedule_nodes(schedule: Schedule, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The schedule's nodes, read-only (shared between histories); a few kB each."""
    nf, nl = schedule.nodes(n_cells)
    nf.setflags(write=False)
    nl.setflags(write=False)
    return nf, nl


class _CachedNodes:
    """A schedule whose nodes are computed once per ``n_cells``; everything else is the schedule's own."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule

    def nodes(self, n_cells: int = 512) -> tuple[np.ndarray, np.ndarray]:
        return _schedule_nodes(self._schedule, int(n_cells))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._schedule, name)


def _noise_std(log_losses: Sequence[np.ndarray]) -> float:
    """Std of log-loss evaluation noise from second differences (robust: median absolute deviation).

    For white noise of std ``s`` the second difference has std ``s * sqrt(6)``; the smooth trend of a learning
    curve contributes far less between neighbouring evaluations. Floored at :data:`_MIN_NOISE`.
    """
    diffs = [np.diff(z, 2) for z in log_losses if z.size >= 3]
    if not diffs:
        return _MIN_NOISE
    d = np.concatenate(diffs)
    mad = float(np.median(np.abs(d - np.median(d))))
    return max(1.4826 * mad / math.sqrt(6.0), _MIN_NOISE)


def _soft_l1(r: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Residuals whose squares sum to the soft-L1 cost ``2 s**2 (sqrt(1 + (r/s)**2) - 1)``, and ``d r' / d r``."""
    z = r / scale
    root = np.sqrt(1.0 + z * z)
    # sqrt(1 + z**2) - 1 written without cancellation: z**2 / (sqrt(1 + z**2) + 1).
    q = np.sqrt(2.0 / (root + 1.0))
    return r * q, 1.0 / (q * root)


def _capped(a: np.ndarray, nan: float) -> np.ndarray:
    """``a`` clipped to +-:data:`_RESIDUAL_CAP` with NaN replaced by ``nan`` (``np.nan_to_num`` then ``np.clip``,
    the same values, in a third of the time: it runs at every evaluation of the least squares)."""
    out = np.clip(a, -_RESIDUAL_CAP, _RESIDUAL_CAP)
    out[np.isnan(out)] = nan
    return out


def _power_start(area: np.ndarray, target: np.ndarray, n_grid: int = 24) -> tuple[float, float, float]:
    """``(L0, log A, alpha)`` of ``target = L0 + A area**(-alpha)``: a grid over L0 and a line in log-log."""
    top = float(target.min())
    x = np.log(area)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    best = (0.0, math.log(max(top, 1e-12)), 0.5)
    best_sse = math.inf
    if sxx <= 0:
        return best
    for frac in 1.0 - np.geomspace(1.0, 1e-3, n_grid):
        l0 = top * frac * 0.999
        w = np.log(np.maximum(target - l0, 1e-12 * max(top, 1e-300)))
        slope = float(dx @ (w - w.mean())) / sxx
        alpha = min(max(-slope, _BOUNDS["alpha"][0]), _BOUNDS["alpha"][1])
        log_a = float(np.mean(w + alpha * x))
        pred = l0 + np.exp(np.clip(log_a - alpha * x, -700, 700))
        sse = float(np.sum((np.log(pred) - np.log(np.maximum(target, 1e-300))) ** 2))
        if math.isfinite(sse) and sse < best_sse:
            best, best_sse = (l0, log_a, alpha), sse
    return best


class _Objective:
    """Standardised residuals of the law on all runs, plus the prior rows, and their Jacobian.

    Data rows are soft-L1 residuals of log-loss divided by the noise estimate and multiplied by ``weight``, the
    square root of the share of the points that count as independent (see :func:`_independent_share`).
    """

    def __init__(self, runs: list[_Run], law: str, priors: Mapping[str, tuple[float, float]],
                 robust_scale: float) -> None:
        self.runs = runs
        self.history = LearningRateHistory.stack([r.history for r in runs])
        self.law = law
        self.names = LAWS[law]
        self.prior_keys = [k for k in PRIOR_KEYS[law] if k in priors]
        self.prior_mean = np.array([priors[k][0] for k in self.prior_keys])
        self.prior_std = np.array([priors[k][1] for k in self.prior_keys])
        self.z = np.concatenate([r.log_loss for r in runs])
        self.white_noise = _noise_std([r.log_loss for r in runs])
        self.noise = math.hypot(self.white_noise, MODEL_DISCREPANCY)
        self.scale = robust_scale * self.noise
        self.weight = 1.0
        # The last residuals' point, with max(law, 1e-12) and the soft-L1 slopes there: least squares asks for the
        # Jacobian at the point whose residuals it has just accepted.
        self._slopes: tuple[bytes, np.ndarray, np.ndarray] | None = None
        # The prior rows' layout, fixed for the fit: rows that read a parameter as it is (their Jacobian a
        # constant), and the row of the anneal gain, if any, whose value and Jacobian depend on theta.
        k = len(self.prior_keys)
        plain = [row for row, key in enumerate(self.prior_keys) if key != "log_gain"]
        self._plain_rows = np.array(plain, dtype=int)
        self._plain_params = np.array([self.names.index(self.prior_keys[row]) for row in plain], dtype=int)
        self._gain_row = self.prior_keys.index("log_gain") if "log_gain" in self.prior_keys else None
        jac = np.zeros((k, len(self.names)))
        jac[self._plain_rows, self._plain_params] = 1.0
        self._plain_jac = jac / self.prior_std[:, None]
        # Residuals and Jacobian are asked for at the same point, one after the other: the last point's rows.
        self._prior: tuple[bytes, np.ndarray, np.ndarray] | None = None

    def model(self, theta: np.ndarray, jacobian: bool) -> Any:
        return _law_values(theta, self.law, self.history, jacobian)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        model = self.model(theta, False)
        safe = np.maximum(model, 1e-12)
        rr, slope = _soft_l1(np.log(safe) - self.z, self.scale)
        self._slopes = (theta.tobytes(), safe, slope)
        prior, _ = self.prior_rows(theta)
        res = np.concatenate([self.weight * rr / self.noise, prior])
        return _capped(res, nan=_RESIDUAL_CAP)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        model, jac = self.model(theta, True)
        kept = self._slopes
        if kept is not None and kept[0] == theta.tobytes():
            safe, slope = kept[1], kept[2]
        else:
            safe = np.maximum(model, 1e-12)
            _, slope = _soft_l1(np.log(safe) - self.z, self.scale)
        data = jac * ((model > 1e-12) * self.weight * slope / (safe * self.noise))[:, None]
        _, prior = self.prior_rows(theta)
        full = np.vstack([data, prior])
        return _capped(full, nan=0.0)

    def prior_rows(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised prior residuals ``(h(theta) - mean) / std`` and their Jacobian (read-only arrays, kept
        for the next call at the same ``theta``)."""
        key = theta.tobytes()
        kept = self._prior
        if kept is not None and kept[0] == key:
            return kept[1], kept[2]
        values = np.empty(len(self.prior_keys))
        values[self._plain_rows] = theta[self._plain_params]
        jac = self._plain_jac
        row = self._gain_row
        if row is not None:
            # log(B / (L0 + A)): B against the loss of a constant-rate run at the reference end (time 1 in
            # the fit's units: area 1, so L0 + A), all relative to the loss scale. Never degenerate: A > 0,
            # so the prior binds B even where the data leave L0 at 0 (a share of L0 alone did not, and a
            # run not yet decaying was forecast with no drop at all).
            i_l0, i_a, i_b = self.names.index("L0"), self.names.index("log_A"), self.names.index("log_B")
            a = math.exp(theta[i_a])
            total = theta[i_l0] + a
            values[row] = theta[i_b] - math.log(total)
            std = self.prior_std[row]
            jac = jac.copy()
            jac[row, i_b] = 1.0 / std
            jac[row, i_l0] = (-1.0 / total) / std
            jac[row, i_a] = (-a / total) / std
        out = (values - self.prior_mean) / self.prior_std
        out.setflags(write=False)
        jac.setflags(write=False)
        self._prior = (key, out, jac)
        return out, jac

    def log_residuals(self, theta: np.ndarray) -> list[np.ndarray]:
        """``log L_model - log L_observed`` of each run."""
        out, i = [], 0
        model = np.log(np.maximum(self.model(theta, False), 1e-12)) - self.z
        for run in self.runs:
            out.append(model[i:i + run.log_loss.size])
            i += run.log_loss.size
        return out


def _independent_share(residuals: Sequence[np.ndarray], noise: float) -> float:
    """Share of the points that count as independent, from the fit's residuals.

    Where a law misses a learning curve it misses it smoothly: the residuals of neighbouring evaluations are
    nearly equal, and n points carry the information of ``n (1 - rho) / (1 + rho)`` independent ones (the
    effective sample size of an AR(1) series with lag-1 autocorrelation ``rho``). On the runs of Luo et al.,
    joint forecasts from a quarter of each run: median error 0.38 % with this weighting, 0.54 % counting every
    point, and 80 % intervals covering 85 % instead of 74 %; from a tenth the weighting costs a little (0.50 %
    against 0.35 %); one-run forecasts are unchanged. Only the
    part of the residual variance above the evaluation noise (``noise``, white) is misfit: the share is
    ``w + (1 - w) (1 - rho) / (1 + rho)`` with ``w = min(1, noise**2 / mean square residual)``, so a curve
    fitted within its noise keeps every point. At least one point per run counts.
    """
    num = den = 0.0
    n = sum(r.size for r in residuals)
    for r in residuals:
        if r.size >= 3:
            c = r - r.mean()
            num += float(c[1:] @ c[:-1])
            den += float(c @ c)
    rho = min(max(num / den, 0.0), 0.999) if den > 0 else 0.0
    mean_square = float(sum(float(r @ r) for r in residuals)) / max(n, 1)
    within_noise = min(1.0, noise**2 / mean_square) if mean_square > 0 else 1.0
    share = within_noise + (1.0 - within_noise) * (1.0 - rho) / (1.0 + rho)
    return max(share, len(residuals) / max(n, 1))


def _fit_runs(runs: list[_Run], law: str, priors: Mapping[str, tuple[float, float]], robust_scale: float,
              max_nfev: int, owner: str) -> _Fit:
    """Fit in two rounds: every point counted, then points weighted by the share that is independent."""
    objective = _Objective(runs, law, priors, robust_scale)
    names = objective.names
    lo = np.array([_BOUNDS[n][0] for n in names])
    hi = np.array([_BOUNDS[n][1] for n in names])
    starts = _starts(objective.history, objective.z, law, priors, names)
    # BLAS on one thread: the matrices are tiny (a few hundred x 7). The shared controller, not a new
    # threadpool_limits per fit: that scanned the loaded libraries each time, 3 ms of a 25 ms family fit.
    with one_blas_thread():
        first = [_solve(objective, x0, lo, hi, max_nfev) for x0 in starts]
        residuals = objective.log_residuals(_best(first, owner).x)
        objective.weight = math.sqrt(_independent_share(residuals, objective.white_noise))
        second = [_solve(objective, x0, lo, hi, max_nfev) for x0 in (_best(first, owner).x, starts[0])]
    best = _best(second, owner)
    total_nfev = sum(int(f.nfev) for f in first + second)
    covariance, resid_std = _posterior(best.x, objective, owner)
    offset = _run_offset_std(objective.log_residuals(best.x))
    return _Fit(best.x, covariance, resid_std, offset, bool(best.status > 0), total_nfev)


def _best(fits: list[Any], owner: str) -> Any:
    """The finite least-squares result of lowest cost."""
    finite = [f for f in fits if np.isfinite(f.cost) and np.all(np.isfinite(f.x))]
    if not finite:
        raise RuntimeError(f"{owner}.fit: the least-squares fit returned no finite solution")
    return min(finite, key=lambda f: f.cost)


def _run_offset_std(residuals: Sequence[np.ndarray]) -> float:
    """How far runs sit from the shared law: rms of each run's median log residual (0 for fewer than 2 runs).

    Runs of one model differ by their seeds and data order (the 24k- and 72k-step runs of Luo et al. differ
    by 0.6 % at the same step under the same learning rates), which a shared law cannot follow; a forecast of one
    run from the family carries that spread. Runs with fewer than 3 points do not show their offset yet.
    """
    medians = [float(np.median(r)) for r in residuals if r.size >= 3]
    if len(medians) < 2:
        return 0.0
    return math.sqrt(float(np.mean(np.square(medians))))


def _solve(objective: _Objective, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int) -> Any:
    """One bounded trust-region least-squares run from ``start`` (nudged inside the bounds)."""
    x0 = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    return least_squares_trf(objective.residuals, x0, objective.jacobian, (lo, hi), max_nfev=max_nfev,
                             x_scale="jac")


def _starts(history: LearningRateHistory, log_loss: np.ndarray, law: str, priors: Mapping[str, tuple[float, float]],
            names: tuple[str, ...]) -> list[np.ndarray]:
    """Two starting points: the priors' means with ``(L0, A, alpha)`` from a power-law fit of what is left.

    ``history`` and ``log_loss``: every run's points (:meth:`LearningRateHistory.stack`, the objective's ``z``).
    """
    centre = {**default_priors(law), **priors}
    # log_B from the anneal gain with L0 + B near the loss scale (the smallest loss seen).
    centre["log_B"] = centre["log_gain"]
    theta = np.array([centre[n][0] if n in centre else 0.0 for n in names], dtype=float)
    theta[0], theta[1], theta[2] = 0.0, 0.0, 0.5  # L0 = 0, A = 1, alpha = 0.5: the anneal term is the rest
    anneal = history.area**-0.5 - _law_values(theta, law, history, False)
    area = history.area
    y = np.exp(log_loss)
    l0, log_a, alpha = _power_start(area, y + anneal)
    first = theta.copy()
    first[0], first[1], first[2] = l0, log_a, alpha
    second = first.copy()
    second[2] = priors["alpha"][0] if "alpha" in priors else 0.5
    return [first, second]


def _posterior(theta: np.ndarray, objective: _Objective, owner: str) -> tuple[np.ndarray, float]:
    """Gauss-Newton posterior covariance of ``theta`` and the residual std of log-loss at the fit.

    Data rows count with the fit's weight (the share of independent points) and the larger of the noise
    estimate and the residual scale (a robust one: a few spikes or the warm-up start must not inflate every
    interval).
    """
    model, jac = objective.model(theta, True)
    if not (np.all(np.isfinite(model)) and np.all(model > 0) and np.all(np.isfinite(jac))):
        raise RuntimeError(f"{owner}.fit: the fitted law is not finite and positive at the observations")
    g = jac / model[:, None]
    r = np.log(model) - objective.z
    dof = max(r.size - len(objective.names), 1)
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    rms = math.sqrt(float(r @ r) / dof)
    resid_std = max(objective.noise, min(mad, rms) if mad > 0 else rms)
    precision = objective.weight**2 * (g.T @ g) / resid_std**2
    _, prior = objective.prior_rows(theta)
    precision += prior.T @ prior
    if not np.all(np.isfinite(precision)):
        raise RuntimeError(f"{owner}.fit: the curvature of the fit is not finite")
    return np.linalg.pinv(precision, rcond=1e-12, hermitian=True), resid_std


# --- validation ---------------------------------------------------------------------------------------------


def _check_settings(est: Any, owner: str) -> dict[str, tuple[float, float]]:
    """Check the estimator's settings; return the priors to use (defaults updated by the user's)."""
    if est.law not in LAWS:
        raise ValueError(f"{owner}: law must be one of {sorted(LAWS)}, got {est.law!r}")
    priors = default_priors(est.law)
    if est.priors is not None:
        if not isinstance(est.priors, Mapping):
            raise ValueError(f"{owner}: priors must be a mapping {{parameter: (mean, std)}}, got {est.priors!r}")
        unknown = sorted(set(est.priors) - set(PRIOR_KEYS[est.law]))
        if unknown:
            raise ValueError(f"{owner}: priors name unknown parameter(s) {unknown}; "
                             f"the priors of law={est.law!r} are on {list(PRIOR_KEYS[est.law])}")
        for name, value in est.priors.items():
            if value is None:
                priors.pop(name, None)
                continue
            try:
                mean, std = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{owner}: priors[{name!r}] must be (mean, std) or None, got {value!r}") from None
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise ValueError(f"{owner}: priors[{name!r}] needs a finite mean and a std > 0, got {value!r}")
            priors[name] = (mean, std)
    if not (isinstance(est.robust_scale, (int, float)) and math.isfinite(est.robust_scale) and est.robust_scale > 0):
        raise ValueError(f"{owner}: robust_scale must be a finite number > 0, got {est.robust_scale!r}")
    if isinstance(est.max_nfev, bool) or not isinstance(est.max_nfev, (int, np.integer)) or est.max_nfev < 1:
        raise ValueError(f"{owner}: max_nfev must be an integer >= 1, got {est.max_nfev!r}")
    x = est.extrapolation_std
    if isinstance(x, bool) or not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
        raise ValueError(f"{owner}: extrapolation_std must be a finite number >= 0, got {x!r}")
    if isinstance(est.n_cells, bool) or not isinstance(est.n_cells, (int, np.integer)) or est.n_cells < 8:
        raise ValueError(f"{owner}: n_cells must be an integer >= 8, got {est.n_cells!r}")
    if isinstance(est.max_points, bool) or not isinstance(est.max_points, (int, np.integer)) or est.max_points < 8:
        raise ValueError(f"{owner}: max_points must be an integer >= 8, got {est.max_points!r}")
    return priors


def _thin(c: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` evenly spaced points of a curve, its first and last included.

    Cost grows with points x schedule cells, and a curve logged every few steps holds little more about the
    law's seven constants than a few hundred of its points.
    """
    if c.size <= max_points:
        return c, y
    keep = np.unique(np.round(np.linspace(0, c.size - 1, max_points)).astype(int))
    return c[keep], y[keep]


def _check_max_compute(max_compute: Any, schedule: Schedule, compute: np.ndarray, owner: str) -> float:
    """The run's planned compute; without one, only a schedule that ignores it (constant, no warm-up) works."""
    if max_compute is None:
        if isinstance(schedule, Constant) and schedule.warmup == 0:
            # A constant rate makes the law a function of compute alone: any unit of time will do.
            return float(compute[-1]) if compute.size else 1.0
        raise ValueError(f"{owner}: max_compute (the run's planned compute) is needed to place the "
                         f"{type(schedule).__name__} schedule on the compute axis")
    try:
        m = float(max_compute)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: max_compute must be a positive finite number, got {max_compute!r}") from None
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"{owner}: max_compute must be a positive finite number, got {max_compute!r}")
    return m


def _fractions_of(compute: np.ndarray, max_compute: float, owner: str) -> np.ndarray:
    """``compute / max_compute`` computed in logs, so huge or tiny units neither overflow nor underflow."""
    with np.errstate(over="ignore", under="ignore"):
        f = np.exp(np.log(compute) - math.log(max_compute))
    if not (np.all(np.isfinite(f)) and np.all(f > 0)):
        raise ValueError(f"{owner}: compute / max_compute is not a positive finite fraction for some point "
                         f"(compute {float(compute.min()):g}..{float(compute.max()):g}, max_compute {max_compute:g})")
    return f


def _log_losses(losses: Sequence[np.ndarray], owner: str) -> tuple[float, list[np.ndarray]]:
    """Log-losses relative to the smallest loss, and that loss; a ``ValueError`` if the range is not usable."""
    y_scale = min(float(y.min()) for y in losses)
    z = [np.log(y) - math.log(y_scale) for y in losses]
    widest = max(float(zi.max()) for zi in z)
    if widest > 700.0:
        raise ValueError(f"{owner}: losses span {widest / math.log(10):.0f} orders of magnitude; a learning curve "
                         "spans a few at most, so the losses are probably in mixed units")
    return y_scale, z


def _query(compute: Any, owner: str) -> np.ndarray:
    c = np.asarray(compute, dtype=float)
    if not (np.all(np.isfinite(c)) and np.all(c > 0)):
        raise ValueError(f"{owner}.predict: compute must be finite and > 0")
    return c


# --- the estimators -----------------------------------------------------------------------------------------


class _LawEstimator(BaseEstimator):
    """What the single-run and the joint surrogate share: evaluating the fitted law and its uncertainty."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit() first")

    def _predict_run(self, compute: np.ndarray, schedule: Schedule, max_compute: float, last_compute: float,
                     return_std: bool) -> Any:
        owner = type(self).__name__
        shape = compute.shape
        c = compute.ravel()
        if c.size == 0:
            # Nothing asked of this run (a caller that needs one run of a family passes empty arrays for the
            # others): building its history would cost a tenth of a millisecond for nothing.
            return (np.empty(shape), np.empty(shape)) if return_std else np.empty(shape)
        f = _fractions_of(c, max_compute, owner)
        history = _history(schedule, f, run_length=max_compute / self.compute_scale_, lr_scale=self.lr_scale_,
                           n_cells=self.n_cells)
        value, jac = _law_values(self.theta_, self.law, history, True)
        mean = self.loss_scale_ * value
        if not return_std:
            return mean.reshape(shape)
        g = jac / np.where(value > 0, value, np.nan)[:, None]
        var = np.einsum("ij,jk,ik->i", g, self.covariance_, g) + self.noise_std_**2 + self.run_offset_std_**2
        beyond = np.log(np.maximum(c / last_compute, 1.0))  # e-folds of compute past the last observation
        var = var + (self.extrapolation_std * beyond) ** 2
        std = np.abs(mean) * np.sqrt(np.maximum(var, 0.0))
        return mean.reshape(shape), std.reshape(shape)

    def _publish(self, fit: _Fit, loss_scale: float, compute_scale: float, lr_scale: float) -> None:
        self.theta_ = fit.theta
        self.covariance_ = fit.covariance
        self.noise_std_ = fit.noise_std
        self.run_offset_std_ = fit.run_offset_std
        self.converged_ = fit.converged
        self.n_evaluations_ = fit.n_evaluations
        self.loss_scale_ = loss_scale
        self.compute_scale_ = compute_scale
        self.lr_scale_ = lr_scale
        names = LAWS[self.law]
        values = dict(zip(names, (float(v) for v in fit.theta)))
        params = {"L0": values["L0"] * loss_scale, "A": math.exp(values["log_A"]) * loss_scale,
                  "alpha": values["alpha"], "B": math.exp(values["log_B"]) * loss_scale}
        if self.law == "multipower":
            params.update(C=math.exp(values["log_C"]), beta=values["beta"], gamma=values["gamma"])
        else:
            params.update(tau=math.exp(values["log_tau"]))
        self.params_ = params


class MultiPowerLawSurrogate(_LawEstimator):
    """Schedule-aware surrogate of one run: the multi-power law (or Tissue et al.'s law) fitted to its curve.

    ``MultiPowerLawSurrogate(schedule=Cosine(...), max_compute=C_max).fit(compute, loss).predict(grid,
    return_std=True)``. Knowing the run's schedule and planned compute, it forecasts the drop of the loss when
    the learning rate decays, which a power law in compute reads as a bad run. Without a schedule (``None``,
    or :class:`~sh_scaling.schedules.Constant` without warm-up) the law is ``L0 + A (C / C_max)**(-alpha)``,
    a power law in compute. See the module docstring for the fit and its uncertainty.

    Args:
        schedule: The run's learning-rate schedule (a :class:`~sh_scaling.schedules.Schedule`, its ``to_dict()``,
            or a function of the fraction of the run); ``None``: constant rate.
        max_compute: The run's planned compute, in the unit of ``compute`` (the schedule's ``f = 1``). Needed
            unless the schedule is constant without warm-up.
        law: ``"multipower"`` (default; Luo et al. 2025) or ``"tissue"`` (Tissue et al. 2024, five constants).
        priors: ``{key: (mean, std)}`` replacing entries of :func:`default_priors`, keys from
            :data:`PRIOR_KEYS` (``None`` for a key removes its prior). Default ``None``: the priors from Luo et
            al.'s fits.
        robust_scale: Residuals beyond this many standard deviations (evaluation noise and
            :data:`MODEL_DISCREPANCY` combined) are down-weighted (soft-L1; default 3).
        max_nfev: Evaluation cap of each least-squares run (two starts in each of two rounds; default 200). A fit
            took 0.05 s (median) in ``benchmarks/bench_schedule_forecast.py`` and never hit the cap there.
        extrapolation_std: Std of log-loss added per e-fold of compute beyond the last observation (default
            :data:`EXTRAPOLATION_STD`; 0 for the fit's uncertainty alone).
        n_cells: Cells of the schedule's discretisation (default 128: the law moves by less than 0.03 % of the
            loss on smooth schedules; see :class:`~sh_scaling.schedules.LearningRateHistory`).
        max_points: A curve with more points is fitted on this many, evenly spaced (default 200; the cost of a
            fit grows with points x cells: about 0.1-0.5 s for 200 points on a 2-core machine).

    Attributes:
        params_: The fitted constants, with compute in units of ``max_compute`` (``f``; the last observed compute
            without one), learning rates relative to the schedule's peak and losses in the caller's unit: ``L0, A, alpha, B, C, beta, gamma``
            (``"multipower"``) or ``L0, A, alpha, B, tau`` (``"tissue"``; ``tau`` in fractions of the run).
        theta_, covariance_: Internal parameters (:data:`LAWS`) and their posterior covariance.
        noise_std_: Residual std of log-loss (the observation noise of a forecast).
        converged_: Whether the optimiser met its tolerance within ``max_nfev``.
        loss_scale_, compute_scale_, lr_scale_: The units of the fit.

    Example:
        >>> import numpy as np
        >>> from sh_scaling.schedules import Cosine, LUO_2025, multi_power_law
        >>> s = Cosine(peak_lr=3e-4, warmup=0.09, final_ratio=0.1)
        >>> f = np.linspace(0.1, 0.5, 40)
        >>> loss = multi_power_law(f, s, LUO_2025["100M"], run_length=24_000)
        >>> model = MultiPowerLawSurrogate(schedule=s, max_compute=1.0).fit(f, loss)
        >>> truth = float(multi_power_law(1.0, s, LUO_2025["100M"], run_length=24_000))
        >>> abs(float(model.predict(1.0)) / truth - 1) < 0.01
        True
    """

    def __init__(
        self,
        schedule: Any = None,
        max_compute: float | None = None,
        *,
        law: str = "multipower",
        priors: Mapping[str, tuple[float, float] | None] | None = None,
        robust_scale: float = 3.0,
        max_nfev: int = 200,
        extrapolation_std: float = EXTRAPOLATION_STD,
        n_cells: int = 128,
        max_points: int = 200,
    ) -> None:
        self.schedule = schedule
        self.max_compute = max_compute
        self.law = law
        self.priors = priors
        self.robust_scale = robust_scale
        self.max_nfev = max_nfev
        self.extrapolation_std = extrapolation_std
        self.n_cells = n_cells
        self.max_points = max_points

    def fit(self, compute: Any, loss: Any) -> MultiPowerLawSurrogate:
        """Fit the law to one run's observed ``(compute, loss)``.

        Returns:
            ``self``.

        Raises:
            ValueError: bad settings, a bad schedule, no ``max_compute`` where it is needed, fewer than 2
                points, non-finite or non-positive values, or losses spanning absurdly many orders of magnitude.
            RuntimeError: the optimiser found no finite solution.
        """
        owner = type(self).__name__
        priors = _check_settings(self, owner)
        schedule = as_schedule(self.schedule)
        c, y = check_curve(compute, loss, owner, 2, distinct=False)
        last = float(c[-1])
        c, y = _thin(c, y, int(self.max_points))
        max_compute = _check_max_compute(self.max_compute, schedule, c, owner)
        y_scale, (z,) = _log_losses([y], owner)
        f = _fractions_of(c, max_compute, owner)
        lr_scale = schedule.peak_lr
        history = _history(schedule, f, run_length=1.0, lr_scale=lr_scale, n_cells=self.n_cells)
        fit = _fit_runs([_Run(history, z)], self.law, priors, float(self.robust_scale), int(self.max_nfev), owner)
        self.schedule_ = schedule
        self.max_compute_ = max_compute
        self.last_compute_ = last
        self._publish(fit, y_scale, max_compute, lr_scale)
        return self

    def predict(self, compute: Any, return_std: bool = False) -> Any:
        """Forecast loss at ``compute`` (any shape); with ``return_std`` also its standard deviation.

        Beyond ``max_compute`` the schedule's final learning rate is held.
        """
        self._check_fitted()
        c = _query(compute, type(self).__name__)
        return self._predict_run(c, self.schedule_, self.max_compute_, self.last_compute_, return_std)


class JointMultiPowerLawSurrogate(_LawEstimator):
    """Schedule-aware surrogate of a family of runs of one model that share the law's constants.

    Runs of the same model under different schedules or lengths share ``L0, A, alpha, B, C, beta, gamma``
    (Luo et al. 2025 fit one set per model size across nine schedules): a short run that has finished its
    decay tells how much annealing lowers the loss, and a long run's early points tell where the curve is
    heading. ``fit_many(observations, schedules, max_computes)`` fits one law to all runs; ``predict_many``
    forecasts each run on its own grid. A run with no observations yet is forecast from the others.

    Runs must be of one model (same size and data): runs of different sizes do not share ``L0`` or ``A``.
    Without ``schedules`` every run is taken as constant-rate, and without ``max_computes`` (allowed only
    then) compute is used as it is.

    Args:
        law, priors, robust_scale, max_nfev, extrapolation_std, n_cells, max_points: As for
            :class:`MultiPowerLawSurrogate` (``max_points`` per run).

    Attributes:
        params_: The shared constants: compute in units of the largest ``max_compute`` of the family
            (``compute_scale_``), learning rates relative to the largest peak (``lr_scale_``).
        theta_, covariance_, noise_std_, converged_, loss_scale_: As for :class:`MultiPowerLawSurrogate`.
    """

    #: A run borrows every constant from the family, so one point (or none) is enough to forecast it.
    min_points = 1

    def __init__(
        self,
        *,
        law: str = "multipower",
        priors: Mapping[str, tuple[float, float] | None] | None = None,
        robust_scale: float = 3.0,
        max_nfev: int = 200,
        extrapolation_std: float = EXTRAPOLATION_STD,
        n_cells: int = 128,
        max_points: int = 200,
    ) -> None:
        self.law = law
        self.priors = priors
        self.robust_scale = robust_scale
        self.max_nfev = max_nfev
        self.extrapolation_std = extrapolation_std
        self.n_cells = n_cells
        self.max_points = max_points

    def fit_many(
        self,
        observations: Sequence[tuple[Any, Any]],
        schedules: Sequence[Any] | None = None,
        max_computes: Sequence[float | None] | None = None,
    ) -> JointMultiPowerLawSurrogate:
        """Fit one law to several runs of one model.

        Args:
            observations: ``(compute, loss)`` of each run so far (a run may have no points).
            schedules: Each run's schedule (as for :class:`MultiPowerLawSurrogate`); ``None``: all constant.
            max_computes: Each run's planned compute; ``None`` only with constant schedules.

        Returns:
            ``self``.

        Raises:
            ValueError: as for :meth:`MultiPowerLawSurrogate.fit`, lists of different lengths, or fewer than
                2 points over all runs.
        """
        owner = type(self).__name__
        priors = _check_settings(self, owner)
        n = len(observations)
        if n == 0:
            raise ValueError(f"{owner}.fit_many: needs at least one run")
        scheds = [as_schedule(s) for s in (schedules if schedules is not None else [None] * n)]
        maxes = list(max_computes) if max_computes is not None else [None] * n
        if len(scheds) != n or len(maxes) != n:
            raise ValueError(f"{owner}.fit_many: {n} runs but {len(scheds)} schedules and {len(maxes)} max_computes")
        curves = [check_curve(c, y, f"{owner}.fit_many (run {i})", 0, method=None, distinct=False)
                  for i, (c, y) in enumerate(observations)]
        first = min((float(c[0]) for c, _ in curves if c.size), default=math.nan)
        # A run with no points is "observed" up to the family's first evaluation: all of it is extrapolation.
        lasts = [float(c[-1]) if c.size else first for c, _ in curves]
        curves = [_thin(c, y, int(self.max_points)) for c, y in curves]
        if sum(c.size for c, _ in curves) < 2:
            raise ValueError(f"{owner}.fit_many: needs at least 2 points over all runs")
        max_list = [_check_max_compute(m, s, c, f"{owner} (run {i})")
                    for i, (m, s, (c, _)) in enumerate(zip(maxes, scheds, curves))]
        observed = [i for i, (c, _) in enumerate(curves) if c.size]
        y_scale, zs = _log_losses([curves[i][1] for i in observed], owner)
        compute_scale = max(max_list)
        lr_scale = max(s.peak_lr for s in scheds)
        runs = []
        for i, z in zip(observed, zs):
            c = curves[i][0]
            f = _fractions_of(c, max_list[i], owner)
            history = _history(scheds[i], f, run_length=max_list[i] / compute_scale, lr_scale=lr_scale,
                               n_cells=self.n_cells)
            runs.append(_Run(history, z))
        fit = _fit_runs(runs, self.law, priors, float(self.robust_scale), int(self.max_nfev), owner)
        self.schedules_ = scheds
        self.max_computes_ = max_list
        self.last_computes_ = lasts
        self._publish(fit, y_scale, compute_scale, lr_scale)
        return self

    def predict_many(self, targets: Sequence[Any], return_std: bool = False) -> Any:
        """Forecast each run (in the order of :meth:`fit_many`) at its own compute values.

        Returns:
            A list of arrays (one per run), or ``(means, stds)`` with ``return_std``.
        """
        self._check_fitted()
        owner = type(self).__name__
        if len(targets) != len(self.schedules_):
            raise ValueError(f"{owner}.predict_many: fitted on {len(self.schedules_)} runs, got {len(targets)} targets")
        out = [self._predict_run(_query(t, owner), s, m, last, return_std)
               for t, s, m, last in zip(targets, self.schedules_, self.max_computes_, self.last_computes_)]
        if not return_std:
            return out
        return [m for m, _ in out], [s for _, s in out]
