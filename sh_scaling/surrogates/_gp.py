"""Gaussian-process learning-curve surrogates with the freeze–thaw exponential-decay kernel.

Why this kernel on log-compute: a power law in compute, ``L = E + B*C**(-a)``, is an exponential decay in
``t = log C``: ``L = E + B*exp(-a*t)``. Swersky et al.'s freeze–thaw kernel is the covariance of an infinite
mixture of exponential decays ``exp(-lambda*t)`` whose rates follow a Gamma(alpha, beta) distribution,
``k(t, t') = beta**alpha / (t + t' + beta)**alpha``; on log-compute its sample paths are mixtures of power laws,
and its variance ``k(t, t)`` shrinks as training goes on, as a learning curve settles. A constant (bias) kernel
carries the curve's asymptote and a white kernel the evaluation noise.

Transform used by both surrogates (documented once here):

* ``t = log(C / C_first)``, with ``C_first`` the curve's first observed compute, so ``t >= 0`` and every curve
  starts at ``t = 0``: the kernel's large early variance is where each curve is young. Queries before
  ``C_first`` are predicted at ``C_first``.
* The GP models ``y = log(loss)``; the returned mean is ``exp(mean_y)`` (the median of the log-normal
  forecast) and the std is ``exp(mean_y) * std_y`` (delta method), so forecasts are positive by construction.
* A curve with more than ``n_points`` points is resampled to ``n_points`` log-spaced compute values between its
  first and last point, interpolating log-loss linearly in log-compute (20 points by default, as in the seed
  paper; GP cost grows with the cube of the points).
* Monotone forecasts: a GP mean can turn upwards beyond the data (a mixture of decays with signed weights).
  For queries beyond the last observation the mean and std are evaluated on a grid from the last observation
  to the query; the mean is made non-increasing (running minimum) and the std non-decreasing (running
  maximum) along it, so a forecast never rises with compute and its uncertainty never shrinks with distance.
* Model discrepancy: beyond the data the log-loss std gains ``extrapolation_std * (t - t_last)`` in
  quadrature (0.02 per e-fold by default, measured on the routing curves; see
  :data:`sh_scaling.surrogates.EXTRAPOLATION_STD`): the GP's own std, with point-estimated
  hyper-parameters on smooth curves, is far too small to cover how real curves leave their early shape.
* Every hyper-parameter search is L-BFGS-B capped at :data:`_LBFGS_MAXITER` iterations, and a covariance is
  checked to be finite before its Cholesky factorisation, so a fit ends with a result or a clear error.

References:
    K. Swersky, J. Snoek, R. P. Adams. Freeze-Thaw Bayesian Optimization. arXiv:1406.3896, 2014 (eq. 4, the
    exponential-decay kernel; section 3.2, the per-curve asymptote model used by the multi-curve surrogate).
    Schram et al. Active Budget Allocation for Efficient Scaling Law Estimation via Surrogate-Guided Pruning.
    ICML 2026 (kernel, bias and white-noise terms, ~20 log-spaced points per curve, L-BFGS with restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Hyperparameter, Kernel, WhiteKernel
from sklearn.utils.validation import check_is_fitted

from sh_scaling.surrogates._numerics import one_blas_thread
from sh_scaling.surrogates._parametric import EXTRAPOLATION_STD
from sh_scaling.surrogates._validation import (
    MIN_FIT_POINTS,
    check_curve,
    check_extrapolation_std,
    check_int,
    check_query,
    require_finite,
)

__all__ = ["ExponentialDecayKernel", "GPSurrogate", "MultiCurveGPSurrogate"]

#: Points of the grid on which forecasts beyond the data are made monotone: 32 intervals between the last
#: observation and the farthest query. The GP is evaluated once per point, which costs far less than the fit.
_MONOTONE_GRID = 33

#: Iteration cap of every L-BFGS-B hyper-parameter search. The most any search took on the routing curves
#: (every 5th curve cut at a quarter, half and all of its compute for ``GPSurrogate``; ten groups of 20 curves
#: for ``MultiCurveGPSurrogate``) was 42 iterations, median 26; 200 leaves room for harder curves and still
#: bounds a fit at a fraction of a second.
_LBFGS_MAXITER = 200

#: Starting value and search bounds of each hyper-parameter, shared by both surrogates, in the order of
#: scikit-learn's ``theta`` for ``ConstantKernel * ExponentialDecayKernel + ConstantKernel + WhiteKernel``.
#: Units are log-loss, centred on its mean but not scaled: a noise std of 0.01 is a 1 % noise whatever the
#: curve, so the bounds mean the same for every curve. Variances run from negligible (1e-8) to a std of 10 in
#: log-loss (1e2); the kernel's Gamma shape ``alpha`` and ``beta`` (in e-folds of compute) from 0.01 to 100,
#: from a decay spread over the whole curve to one done within a fraction of an e-fold. Noise above a
#: 10 % std (variance 1e-2) is ruled out: letting the white kernel explain everything is the likelihood's
#: worst local optimum on short curves.
_HYPER = {
    "decay_var": (0.1, (1e-8, 1e2)),
    "alpha": (1.0, (1e-2, 1e2)),
    "beta": (1.0, (1e-2, 1e2)),
    "bias_var": (0.1, (1e-8, 1e2)),
    "noise_var": (1e-4, (1e-10, 1e-2)),
}


def _decay_cov(t1: np.ndarray, t2: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Freeze–thaw covariance ``(beta/(t1+t2+beta))**alpha`` (broadcast) and ``log(beta/(t1+t2+beta))``."""
    log_ratio = np.log(beta) - np.log(t1 + t2 + beta)
    return np.exp(alpha * log_ratio), log_ratio


class ExponentialDecayKernel(Kernel):
    """Freeze–thaw exponential-decay kernel ``k(t, t') = beta**alpha / (t + t' + beta)**alpha``.

    Swersky, Snoek & Adams (2014), eq. 4: the covariance of ``integral exp(-lambda*t) dmu(lambda)`` with
    Gamma(alpha, beta)-distributed decay rates. Non-stationary; defined for ``t, t' >= 0`` (the first column of
    ``X``; further columns are ignored). ``k(0, 0) = 1``; multiply by a :class:`ConstantKernel` for the scale.
    Gradients are with respect to ``log(alpha)`` and ``log(beta)``, as scikit-learn's optimiser expects.

    Args:
        alpha: Shape of the Gamma prior on decay rates (default 1).
        beta: Rate of the Gamma prior on decay rates, in units of ``t`` (default 1).
        alpha_bounds, beta_bounds: Search bounds, or ``"fixed"``.

    Example:
        >>> import numpy as np
        >>> k = ExponentialDecayKernel(alpha=2.0, beta=1.0)
        >>> float(k(np.array([[0.0], [1.0]]))[0, 1])  # (1 / (0 + 1 + 1))**2
        0.25
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        alpha_bounds: tuple[float, float] | str = _HYPER["alpha"][1],
        beta_bounds: tuple[float, float] | str = _HYPER["beta"][1],
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.alpha_bounds = alpha_bounds
        self.beta_bounds = beta_bounds

    @property
    def hyperparameter_alpha(self) -> Hyperparameter:
        return Hyperparameter("alpha", "numeric", self.alpha_bounds)

    @property
    def hyperparameter_beta(self) -> Hyperparameter:
        return Hyperparameter("beta", "numeric", self.beta_bounds)

    @staticmethod
    def _times(X: np.ndarray) -> np.ndarray:
        t = np.asarray(X, dtype=float)
        t = t[:, 0] if t.ndim == 2 else t.ravel()
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ValueError("ExponentialDecayKernel: inputs must be finite and >= 0 (shifted log-compute)")
        return t

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False) -> Any:
        t1 = self._times(X)
        if Y is None:
            t2 = t1
        elif eval_gradient:
            raise ValueError("ExponentialDecayKernel: the gradient can only be evaluated when Y is None")
        else:
            t2 = self._times(Y)
        K, log_ratio = _decay_cov(t1[:, None], t2[None, :], self.alpha, self.beta)
        if not eval_gradient:
            return K
        grads = []
        if not self.hyperparameter_alpha.fixed:
            grads.append(K * self.alpha * log_ratio)  # dK/dlog(alpha)
        if not self.hyperparameter_beta.fixed:
            # dK/dbeta = alpha*K*(1/beta - 1/s), s = t+t'+beta; times beta for the log-parameter.
            grads.append(K * self.alpha * (1.0 - np.exp(log_ratio)))
        gradient = np.stack(grads, axis=-1) if grads else np.empty((t1.size, t1.size, 0))
        return K, gradient

    def diag(self, X: np.ndarray) -> np.ndarray:
        t = self._times(X)
        return _decay_cov(t, t, self.alpha, self.beta)[0]

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha:.3g}, beta={self.beta:.3g})"


def _log_grid(c: np.ndarray, y: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``(t, log loss)`` with ``t = log(c/c[0])``, resampled to ``n_points`` log-spaced points if longer."""
    x = np.log(c)
    z = np.log(y)
    if x.size > n_points:
        grid = np.linspace(x[0], x[-1], n_points)
        z = np.interp(grid, x, z)
        x = grid
    return x - x[0], z


def _monotone_forecast(
    t: np.ndarray,
    t_last: float,
    predict_log: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    extrapolation_std: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss mean and std at ``t`` from a log-loss predictor.

    Beyond ``t_last`` the log-loss std gains the discrepancy term ``extrapolation_std * (t - t_last)`` (in
    quadrature), then the mean is made non-increasing and the std non-decreasing along ``t`` (loss units).
    """

    def to_loss(q: np.ndarray, m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.hypot(s, extrapolation_std * np.maximum(q - t_last, 0.0))
        mean = np.exp(m)
        return mean, mean * s

    beyond = t > t_last
    if not beyond.any():
        return to_loss(t, *predict_log(t))
    grid = np.union1d(np.linspace(t_last, float(t[beyond].max()), _MONOTONE_GRID), t[beyond])
    inside = t[~beyond]
    both = np.concatenate([inside, grid])
    m, s = to_loss(both, *predict_log(both))
    mg = np.minimum.accumulate(m[inside.size:])
    sg = np.maximum.accumulate(s[inside.size:])
    mean = np.empty_like(t)
    std = np.empty_like(t)
    mean[~beyond], std[~beyond] = m[: inside.size], s[: inside.size]
    pos = np.searchsorted(grid, t[beyond])
    mean[beyond], std[beyond] = mg[pos], sg[pos]
    return mean, std


def _check_gp_settings(estimator: GPSurrogate | MultiCurveGPSurrogate) -> tuple[int, int]:
    """Validated ``(n_points, n_restarts_optimizer)``; also checks ``extrapolation_std``."""
    name = type(estimator).__name__
    n_points = check_int(estimator.n_points, "n_points", MIN_FIT_POINTS, name)
    restarts = check_int(estimator.n_restarts_optimizer, "n_restarts_optimizer", 0, name)
    check_extrapolation_std(estimator.extrapolation_std, name)
    return n_points, restarts


def _freeze_thaw_kernel() -> Kernel:
    """``ConstantKernel * ExponentialDecayKernel + ConstantKernel + WhiteKernel`` at the shared start."""
    h = _HYPER
    decay = ExponentialDecayKernel(h["alpha"][0], h["beta"][0], h["alpha"][1], h["beta"][1])
    return ConstantKernel(*h["decay_var"]) * decay + ConstantKernel(*h["bias_var"]) + WhiteKernel(*h["noise_var"])


class GPSurrogate(BaseEstimator):
    """One Gaussian process per learning curve (scikit-learn ``GaussianProcessRegressor``).

    Kernel ``ConstantKernel * ExponentialDecayKernel + ConstantKernel + WhiteKernel`` on
    ``t = log(C/C_first)``, target ``log(loss)`` centred on its mean; see the
    module docstring for the transform and the monotone forecast. Hyper-parameters maximise the marginal
    likelihood with L-BFGS-B and ``n_restarts_optimizer`` random restarts; the regressor is handed a
    closed-form likelihood for this kernel (``optimizer=``), ten times cheaper per evaluation than
    scikit-learn's generic kernel algebra, and does the rest (posterior, prediction) itself.

    Args:
        n_points: Curves with more points are resampled to this many log-spaced points (default 20).
        n_restarts_optimizer: Extra L-BFGS runs from random starts (default 0: each restart costs about one
            more fit, and restarts did not change the routing-curve forecasts; the fixed start plus the noise
            bound avoid the bad optimum).
        random_state: Seed of the restarts (default 0: forecasts are reproducible).
        extrapolation_std: Relative std added per e-fold of compute beyond the data, for the model discrepancy
            the GP's point-estimated hyper-parameters ignore (default
            :data:`~sh_scaling.surrogates.EXTRAPOLATION_STD`, 0.02; see there).

    Attributes:
        gp_: The fitted ``GaussianProcessRegressor``; ``kernel_``: its fitted kernel.
        log_compute_ref_: ``log(C_first)``; ``t_last_``: ``t`` of the last observation.
        y_mean_: Mean log-loss of the fitted points (the GP models log-loss minus this).

    Example:
        >>> import numpy as np
        >>> c = np.geomspace(1e17, 1e19, 15)
        >>> gp = GPSurrogate().fit(c, 1.8 + 300 * c ** -0.14)
        >>> mean, std = gp.predict(np.array([1e19, 1e20]), return_std=True)
        >>> bool(mean[1] <= mean[0] and std[1] >= std[0])
        True
    """

    def __init__(
        self,
        n_points: int = 20,
        n_restarts_optimizer: int = 0,
        random_state: int | None = 0,
        extrapolation_std: float = EXTRAPOLATION_STD,
    ) -> None:
        self.n_points = n_points
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state
        self.extrapolation_std = extrapolation_std

    def fit(self, compute: Any, loss: Any) -> GPSurrogate:
        """Fit the GP to one curve; raises ``ValueError`` on fewer than 3 points or non-finite values."""
        n_points, restarts = _check_gp_settings(self)
        c, y = check_curve(compute, loss, type(self).__name__)
        t, z = _log_grid(c, y, n_points)
        y_mean = float(z.mean())
        gp = GaussianProcessRegressor(
            _freeze_thaw_kernel(), optimizer=_BlockOptimizer(_BlockData([t], [z - y_mean])), normalize_y=False,
            n_restarts_optimizer=restarts, random_state=self.random_state,
        )
        # The regressor factorises its covariance unchecked (check_finite=False); it is finite because it is
        # built from finite times (checked here and again by scikit-learn's input validation) and
        # hyper-parameters held within the bounds of _HYPER.
        require_finite(t, "log-compute", f"{type(self).__name__}.fit")
        with one_blas_thread():
            gp.fit(t[:, None], z - y_mean)
        self.y_mean_ = y_mean
        self.gp_ = gp
        self.kernel_ = gp.kernel_
        self.log_compute_ref_ = float(np.log(c[0]))
        self.t_last_ = float(t[-1])
        return self

    def _predict_log(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, s = self.gp_.predict(t[:, None], return_std=True)
        return np.asarray(m, float) + self.y_mean_, np.asarray(s, float)

    def predict(self, compute: Any, return_std: bool = False) -> Any:
        """Forecast loss at ``compute`` (monotone beyond the data); with ``return_std`` also its std.

        Raises:
            sklearn.exceptions.NotFittedError: before :meth:`fit`.
        """
        check_is_fitted(self, "gp_")
        c = check_query(compute, type(self).__name__)
        t = np.maximum(np.log(np.atleast_1d(c).ravel()) - self.log_compute_ref_, 0.0)
        mean, std = _monotone_forecast(t, self.t_last_, self._predict_log, self.extrapolation_std)
        if not return_std:
            return mean.reshape(np.shape(c))
        return mean.reshape(np.shape(c)), std.reshape(np.shape(c))


# Hyper-parameters of the multi-curve model, optimised on the log scale, in the order of ``_HYPER``.
_MULTI_NAMES = tuple(_HYPER)
_MULTI_BOUNDS = np.log(np.array([bounds for _, bounds in _HYPER.values()]))
_MULTI_START = np.log(np.array([start for start, _ in _HYPER.values()]))


class _BlockOptimizer:
    """L-BFGS-B on the closed-form likelihood, in the form ``GaussianProcessRegressor(optimizer=...)`` expects.

    For the kernel ``ConstantKernel * ExponentialDecayKernel + ConstantKernel + WhiteKernel`` on centred
    targets, scikit-learn's ``theta`` is ``log(decay_var, alpha, beta, bias_var, noise_var)`` and its
    objective is :func:`_block_likelihood` with the mean fixed at 0 (the tests check both). scikit-learn's
    generic kernel algebra costs about 1.4 ms per likelihood evaluation on a 20-point curve, this one about
    0.06 ms: the same optimum, found some ten times faster.
    """

    def __init__(self, data: _BlockData) -> None:
        self.data = data

    def __call__(self, obj_func: Any, initial_theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
        res = minimize(_negative_likelihood, initial_theta, args=(self.data, 0.0), jac=True, method="L-BFGS-B",
                       bounds=bounds, options={"maxiter": _LBFGS_MAXITER})
        return res.x, float(res.fun)


class _BlockData:
    """Curves padded to a common length: times ``T``, targets ``Z`` and a validity mask, shape ``(N, P)``."""

    def __init__(self, ts: Sequence[np.ndarray], zs: Sequence[np.ndarray]) -> None:
        n, p = len(ts), max(t.size for t in ts)
        self.T = np.zeros((n, p))
        self.Z = np.zeros((n, p))
        self.mask = np.zeros((n, p), dtype=bool)
        for i, (t, z) in enumerate(zip(ts, zs)):
            self.T[i, : t.size], self.Z[i, : t.size], self.mask[i, : t.size] = t, z, True
        self.pair = self.mask[:, :, None] & self.mask[:, None, :]
        self.eye = np.eye(p)[None] * self.mask[:, :, None]
        self.pad_eye = np.eye(p)[None] * (~self.mask)[:, :, None]
        self.n_obs = int(self.mask.sum())


def _block_likelihood(
    theta: np.ndarray, d: _BlockData, with_grad: bool = True, mean: float | None = None
) -> tuple[float, np.ndarray, dict]:
    """Profiled log marginal likelihood of the shared-hyper-parameter freeze–thaw model, and its gradient.

    Model (curves ``n`` independent given the shared hyper-parameters and the shared mean ``mu``):
    ``z_n(t) = mu + b_n + f_n(t) + eps``, ``b_n ~ N(0, bias_var)``, ``f_n ~ GP(0, decay_var * k_decay)``,
    ``eps ~ N(0, noise_var)``. ``mu`` is its generalised-least-squares estimate (the likelihood maximised over
    ``mu``), so the gradient with respect to ``theta = log(hyper-parameters)`` is the partial gradient at fixed
    ``mu`` (envelope theorem); with ``mean`` given, ``mu`` is fixed to it instead (scikit-learn's convention).
    Block-diagonal covariance: one small Cholesky per curve, batched; padded entries carry an identity block
    and a zero residual, so they add nothing.
    """
    decay_var, alpha, beta, bias_var, noise_var = np.exp(theta)
    kd, log_ratio = _decay_cov(d.T[:, :, None], d.T[:, None, :], alpha, beta)
    kd = kd * d.pair
    K = decay_var * kd + bias_var * d.pair + noise_var * d.eye + d.pad_eye
    if not np.all(np.isfinite(K)):
        return -np.inf, np.zeros_like(theta), {}
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros_like(theta), {}
    K_inv = np.linalg.inv(K)
    ones = d.mask.astype(float)
    k_inv_one = (K_inv @ ones[:, :, None])[:, :, 0]
    k_inv_z = (K_inv @ d.Z[:, :, None])[:, :, 0]
    one_k_one = float(np.sum(k_inv_one * ones))
    mu = float(np.sum(k_inv_one * d.Z)) / one_k_one if mean is None else float(mean)
    a = (k_inv_z - mu * k_inv_one) * ones
    r = (d.Z - mu) * ones
    log_det = 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
    lml = -0.5 * float(np.sum(a * r)) - 0.5 * log_det - 0.5 * d.n_obs * np.log(2.0 * np.pi)
    state = {"mu": mu, "K_inv": K_inv, "a": a, "k_inv_one": k_inv_one, "one_k_one": one_k_one}
    if not with_grad:
        return lml, np.zeros_like(theta), state
    W = a[:, :, None] * a[:, None, :] - K_inv * d.pair
    dk_decay = decay_var * kd
    grads = (
        dk_decay,  # d/dlog(decay_var)
        dk_decay * alpha * log_ratio,  # d/dlog(alpha)
        dk_decay * alpha * (1.0 - np.exp(log_ratio)),  # d/dlog(beta)
        bias_var * d.pair,  # d/dlog(bias_var)
        noise_var * d.eye,  # d/dlog(noise_var)
    )
    grad = np.array([0.5 * float(np.sum(W * g)) for g in grads])
    return lml, grad, state


#: Objective value reported to L-BFGS-B where the covariance is not positive definite (or the likelihood or
#: its gradient is not finite): far above any attainable ``-log likelihood`` but finite, so the line search
#: backs off from the point instead of handing ``inf`` or ``NaN`` to the optimiser's own linear algebra.
_FAILED = 1e25


def _negative_likelihood(theta: np.ndarray, data: _BlockData, mean: float | None) -> tuple[float, np.ndarray]:
    """``-log marginal likelihood`` and its gradient, for the minimiser."""
    lml, grad, _ = _block_likelihood(theta, data, mean=mean)
    if not (np.isfinite(lml) and np.all(np.isfinite(grad))):
        return _FAILED, np.zeros_like(theta)
    return -lml, -grad


#: NotFittedError message of the multi-curve surrogate, which is fitted by ``fit`` or ``fit_many``.
_NOT_FITTED = "This %(name)s instance is not fitted yet; call fit() or fit_many() before predicting."


class MultiCurveGPSurrogate(BaseEstimator):
    """One Gaussian-process model over many learning curves that share what they have in common.

    The freeze–thaw model of Swersky et al. (2014, section 3.2) with a constant asymptote mean: for curve
    ``n`` and ``t = log(C/C_first)``, ``log L_n(t) = mu + b_n + f_n(t) + noise`` with

    * ``mu`` one mean level shared by all curves (estimated by generalised least squares),
    * ``b_n ~ N(0, bias_var)`` the curve's own asymptote offset, partially pooled towards ``mu``,
    * ``f_n ~ GP(0, decay_var * ExponentialDecayKernel(alpha, beta))`` the curve's decay, independent
      between curves but with shared ``alpha, beta, decay_var``,
    * white noise with shared ``noise_var``.

    In coregionalisation terms this is a linear model of coregionalisation with two latent processes: a bias
    whose coregionalisation matrix is ``bias_var * I`` plus the shared mean, and a decay whose matrix is
    ``decay_var * I``. Curves share information through the hyper-parameters (fitted on all curves jointly,
    so a short curve borrows how fast learning curves bend from the long ones) and through ``mu``. A full-rank
    coregionalisation matrix (curve-to-curve correlations of the decay) was not used: with 20 curves it adds
    ~200 hyper-parameters and a dense 400x400 covariance whose likelihood gradient needs one 400x400 matrix
    per hyper-parameter; this model's covariance is block-diagonal, so the likelihood and its gradient cost
    one batched 20x20 Cholesky per evaluation and a 20-curve x 20-point fit takes about 15 ms with the
    default single restart on a 2-core machine (``benchmarks/bench_surrogates.py``).

    Targets are ``log(loss)`` centred on the mean over all points; transform, resampling and
    monotone forecasts as described in the module docstring. The predictive variance includes the noise and
    the uncertainty of ``mu``.

    Args:
        n_points: Curves with more points are resampled to this many log-spaced points (default 20).
        n_restarts_optimizer: Extra L-BFGS-B runs from random log-uniform starts within the bounds (default 1;
            the first run starts from a fixed, typical point).
        random_state: Seed of the restarts (default 0).
        extrapolation_std: As for :class:`GPSurrogate` (default 0.02).

    Attributes:
        hyperparameters_: Fitted ``decay_var, alpha, beta, bias_var, noise_var`` (log-loss units, centred) and
            ``mu``; ``theta_``: their logs (without ``mu``), as optimised.
            ``log_marginal_likelihood_value_``: the profiled log marginal likelihood at the optimum;
            ``converged_``: whether the best L-BFGS-B run converged.
        n_curves_: Number of curves fitted.
        log_compute_ref_, t_last_: Per curve, ``log(C_first)`` and ``t`` of its last observation.
        y_mean_: Mean log-loss over all fitted points (the model's targets are log-loss minus this).
        block_data_, posterior_: The padded training data and the posterior quantities predictions use.

    Example:
        >>> import numpy as np
        >>> c = np.geomspace(1e17, 1e19, 12)
        >>> obs = [(c * s, 1.8 + 300 * (c * s) ** -0.14) for s in (1.0, 3.0, 10.0)]
        >>> gp = MultiCurveGPSurrogate().fit_many(obs)
        >>> means, stds = gp.predict_many([np.array([1e21])] * 3, return_std=True)
        >>> len(means), bool(np.all(np.concatenate(stds) > 0))
        (3, True)
    """

    def __init__(
        self,
        n_points: int = 20,
        n_restarts_optimizer: int = 1,
        random_state: int | None = 0,
        extrapolation_std: float = EXTRAPOLATION_STD,
    ) -> None:
        self.n_points = n_points
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state
        self.extrapolation_std = extrapolation_std

    def fit_many(self, observations: Sequence[tuple[Any, Any]]) -> MultiCurveGPSurrogate:
        """Fit the model on ``(compute, loss)`` pairs, one per curve (each at least 3 finite points).

        Raises:
            ValueError: no curve, a curve with fewer than 3 points or non-finite values (the message names the
                curve's index), or bad settings.
            RuntimeError: every optimiser run failed (no positive-definite covariance found).
        """
        name = type(self).__name__
        n_points, restarts = _check_gp_settings(self)
        if len(observations) == 0:
            raise ValueError(f"{name}.fit_many: observations is empty; pass at least one (compute, loss) pair")
        ts, zs, refs = [], [], []
        for i, pair in enumerate(observations):
            if len(pair) != 2:
                raise ValueError(f"{name}.fit_many: observation {i} is not a (compute, loss) pair")
            c, y = check_curve(pair[0], pair[1], f"{name} (curve {i})")
            t, z = _log_grid(c, y, n_points)
            ts.append(t)
            zs.append(z)
            refs.append(float(np.log(c[0])))
        z_mean = float(np.concatenate(zs).mean())
        data = _BlockData(ts, [z - z_mean for z in zs])

        rng = np.random.default_rng(self.random_state)
        starts = [_MULTI_START] + [rng.uniform(_MULTI_BOUNDS[:, 0], _MULTI_BOUNDS[:, 1]) for _ in range(restarts)]
        best = None
        with one_blas_thread():
            for x0 in starts:
                res = minimize(_negative_likelihood, x0, args=(data, None), jac=True, method="L-BFGS-B",
                               bounds=_MULTI_BOUNDS, options={"maxiter": _LBFGS_MAXITER})
                if np.isfinite(res.fun) and res.fun < _FAILED and (best is None or res.fun < best.fun):
                    best = res
        if best is None:
            raise RuntimeError(f"{name}.fit_many: no hyper-parameters gave a positive-definite covariance")
        lml, _, state = _block_likelihood(best.x, data, with_grad=False)
        self.theta_ = best.x
        self.hyperparameters_ = dict(zip(_MULTI_NAMES, np.exp(best.x).tolist()), mu=state["mu"])
        self.log_marginal_likelihood_value_ = lml
        self.converged_ = bool(best.success)
        self.n_curves_ = len(ts)
        self.block_data_ = data
        self.posterior_ = state
        self.y_mean_ = z_mean
        self.log_compute_ref_ = np.array(refs)
        self.t_last_ = np.array([float(t[-1]) for t in ts])
        return self

    def _predict_log(self, i: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of log-loss for curve ``i`` at times ``t`` (original log units)."""
        decay_var, alpha, beta, bias_var, noise_var = np.exp(self.theta_)
        d, s = self.block_data_, self.posterior_
        m = d.mask[i]
        ti = d.T[i, m]
        k_star = decay_var * _decay_cov(t[:, None], ti[None, :], alpha, beta)[0] + bias_var
        k_inv = s["K_inv"][i][np.ix_(m, m)]
        mean = s["mu"] + k_star @ s["a"][i, m]
        k_ss = decay_var * _decay_cov(t, t, alpha, beta)[0] + bias_var + noise_var
        var = k_ss - np.einsum("qi,ij,qj->q", k_star, k_inv, k_star)
        var += (1.0 - k_star @ s["k_inv_one"][i, m]) ** 2 / s["one_k_one"]  # uncertainty of the shared mean
        std = np.sqrt(np.maximum(var, 0.0))
        return self.y_mean_ + mean, std

    def predict_many(self, targets: Sequence[Any], return_std: bool = False) -> Any:
        """Forecast each fitted curve at its own compute values.

        Args:
            targets: One array of compute values per fitted curve, in the order of ``fit_many``.
            return_std: Also return the standard deviations.

        Returns:
            A list of mean arrays (one per curve), or ``(means, stds)``.

        Raises:
            sklearn.exceptions.NotFittedError: before :meth:`fit_many`.
        """
        check_is_fitted(self, "theta_", msg=_NOT_FITTED)
        if len(targets) != self.n_curves_:
            raise ValueError(
                f"{type(self).__name__}.predict_many: {len(targets)} targets for {self.n_curves_} fitted curves"
            )
        out = [self._forecast_curve(i, target) for i, target in enumerate(targets)]
        means = [m for m, _ in out]
        return (means, [s for _, s in out]) if return_std else means

    def _forecast_curve(self, i: int, compute: Any) -> tuple[np.ndarray, np.ndarray]:
        c = check_query(compute, type(self).__name__)
        t = np.maximum(np.log(np.atleast_1d(c).ravel()) - self.log_compute_ref_[i], 0.0)
        mean, std = _monotone_forecast(t, self.t_last_[i], lambda q: self._predict_log(i, q), self.extrapolation_std)
        return mean.reshape(np.shape(c)), std.reshape(np.shape(c))

    def fit(self, compute: Any, loss: Any) -> MultiCurveGPSurrogate:
        """Fit on a single curve (the model then reduces to one freeze–thaw GP)."""
        return self.fit_many([(compute, loss)])

    def predict(self, compute: Any, return_std: bool = False) -> Any:
        """Forecast the first fitted curve at ``compute`` (the single-curve protocol of :meth:`fit`)."""
        check_is_fitted(self, "theta_", msg=_NOT_FITTED)
        mean, std = self._forecast_curve(0, compute)
        return (mean, std) if return_std else mean

