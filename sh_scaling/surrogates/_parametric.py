"""Parametric learning-curve surrogates: power law, stretched exponential and Morgan–Mercer–Flodin.

Each family is a decreasing, saturating function of compute with an irreducible loss ``E``; the bounds on the
parameters make every fitted curve non-increasing in compute, so extrapolation cannot turn upwards.

How the fit works (the same for every family):

* Compute enters through ``u = log(C / C_ref)``, with ``C_ref`` the last observed compute: the parameters stay
  of order one whatever the unit of compute (FLOPs near 1e20, or PF-days), and ``u = 0`` is "now".
* Loss enters relative to ``L_ref``, the lowest observed loss, for the same reason: a curve near 1e-200 or
  1e200 is fitted as the same well-scaled problem as one near 2, and nothing underflows or overflows.
* Residuals are taken on the log of the loss, ``log L_model(u) - log L_observed``, so a 1 % miss counts the
  same at the start of the curve (loss 5) as at its end (loss 2), and scipy's ``least_squares`` minimises them
  with a robust loss (``soft_l1`` by default): the warm-up points at the start of a curve, which no saturating
  law follows, are down-weighted instead of bending the fit. Each family computes ``log L_model`` and its
  Jacobian in log space (``logaddexp``, shares ``term / L`` in [0, 1]), so both stay finite far from the data.
* Bounds: ``0 <= E < min(observed loss)`` (the asymptote lies below every observation) and positive rates.
* Starting values: for the power law, a grid over ``E`` with a linear regression of ``log(L - E)`` on ``u`` at
  each grid value (closed form, vectorised), then one robust refinement. The other families start from the
  fitted power law, to which each reduces in a limit, and from a few generic points.
* Uncertainty: the delta method on the Gauss–Newton covariance ``s^2 (J^T J)^+`` of the fitted parameters,
  plus the residual scale ``s^2`` as observation noise (the forecast is of a loss one will *observe*), plus a
  model-discrepancy term that grows with the distance beyond the data (:data:`EXTRAPOLATION_STD`). No
  bootstrap: it would cost a hundred fits per curve.
* Every matrix is checked to be finite before it reaches a solver (a non-finite one raises ``ValueError``),
  and every refinement is capped by ``max_nfev``: a fit ends, with a result or a clear error.

Fitting the power law to a 25-point curve takes about a millisecond (``benchmarks/bench_surrogates.py``).

References:
    T. Domhan, J. T. Springenberg, F. Hutter. Speeding up Automatic Hyperparameter Optimization of Deep Neural
    Networks by Extrapolation of Learning Curves. IJCAI 2015 (the ``pow3``, ``exp4``/``weibull`` and ``mmf``
    families of their parametric ensemble).
    P. H. Morgan, L. P. Mercer, N. W. Flodin. General model for nutritional responses of higher organisms.
    PNAS 72(11), 1975 (the MMF growth model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from sh_scaling.surrogates._numerics import EXP_CLIP, least_squares_trf, one_blas_thread
from sh_scaling.surrogates._validation import (
    check_curve,
    check_extrapolation_std,
    check_int,
    check_positive,
    check_query,
    require_finite,
)

__all__ = ["PowerLawSurrogate", "ExponentialSurrogate", "MMFSurrogate", "EXTRAPOLATION_STD"]

#: Relative standard deviation added per e-fold of compute beyond a curve's last observation.
#:
#: Real curves leave any fitted shape (learning-rate schedules, for one): on the routing curves (Clark et al.
#: 2022) every surrogate here misses the final loss by 1-3 % when fitted on the first quarter or half of the
#: compute, while the fit's own standard deviation is about 0.15 %, so without this term the final loss lay
#: outside +-2 std for almost every curve. The discrepancy std ``EXTRAPOLATION_STD * log(C / C_last)`` (on
#: log-loss) is added in quadrature; 0.02 is the measured median error per e-fold of extrapolation (2.9 % over
#: log(4) = 1.4 e-folds, 1.9 % over log(2) = 0.7), rounded down. ``benchmarks/bench_surrogates.py`` reports the
#: coverage it gives. Pass ``extrapolation_std=0`` for the fit's uncertainty alone.
EXTRAPOLATION_STD = 0.02

#: Robust losses :func:`scipy.optimize.least_squares` offers.
_ROBUST_LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")

#: The asymptote's upper bound is ``(1 - _E_MARGIN) * min(loss)``: strictly below every observation, so that
#: ``log(L - E)`` in the start is finite; a relative 1e-6 is far below any evaluation noise.
_E_MARGIN = 1e-6

#: A start is moved this fraction of each parameter's range inside the bounds: the trust-region reflective
#: method needs a strictly feasible start.
_START_INTERIOR = 1e-9

#: Grid over ``E`` for the power-law start: 24 values from 0 to within ``_START_GRID_DEPTH`` (0.1 %) of the
#: observed minimum, geometric in the gap ``min(loss) - E`` because the asymptote of a curve that has nearly
#: saturated lies just below its minimum; 24 values put the start within a few refinement steps of the
#: optimum (about 6 evaluations on the routing curves) for 50 microseconds.
_START_GRID_POINTS = 24
_START_GRID_DEPTH = 1e-3

#: Floor of ``L - E`` relative to the lowest loss in the start's regression, so its log is finite when a grid
#: value of ``E`` meets a point at the minimum.
_START_GAP_FLOOR = 1e-12

#: Range of the power-law exponent (and of the MMF's ``delta``, its exponent past the knee): from 1e-3, nearly
#: flat, to 10, steeper than any exponent reported for learning curves (0.05-0.5 for language models).
_ALPHA_RANGE = (1e-3, 10.0)

#: Singular values of ``J^T J`` below this fraction of the largest are treated as zero in the covariance: a
#: direction the data cannot identify (``E`` against ``A`` on a three-point curve) gets a large variance
#: instead of a numerically meaningless one. ``J^T J`` squares the condition number of ``J``, so 1e-10 keeps
#: directions that ``J`` resolves to about 1e-5.
_PINV_RCOND = 1e-10


def _log_or_minus_inf(x: float) -> float:
    return float(np.log(x)) if x > 0 else -np.inf


def _log_loss_and_shares(log_e: float, log_term: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log(E + term)``, and the derivatives of it with respect to ``E`` and to ``log(term)``.

    ``d log L / d log term`` is the decaying term's share of the loss, in [0, 1]; ``d log L / dE = 1/L`` is
    capped at ``exp(EXP_CLIP)`` where the model's loss underflows, far from any fit.
    """
    log_f = np.logaddexp(log_e, log_term)
    share = np.exp(log_term - log_f)
    inverse = np.exp(np.minimum(-log_f, EXP_CLIP))
    return log_f, inverse, share


def _power_law_start(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Starting ``(E, b, alpha)`` for ``L = E + exp(b - alpha*u)``: grid over E, regression of log(L-E) on u.

    For each grid value of ``E`` (between 0 and just below the observed minimum) the other two parameters are
    the ordinary least-squares line through ``(u, log(L - E))``; the grid value with the smallest log-loss
    residual wins. Vectorised over the grid: about 50 microseconds.
    """
    y_min = float(y.min())
    frac = 1.0 - np.geomspace(1.0, _START_GRID_DEPTH, _START_GRID_POINTS)
    e = y_min * frac[:, None]
    w = np.log(np.maximum(y[None, :] - e, _START_GAP_FLOOR * y_min))
    um = u.mean()
    du = u - um
    suu = float(du @ du)
    if not (np.isfinite(suu) and suu > 0):
        raise ValueError("power-law start: the log-compute values do not vary (compute points too close)")
    slope = (w - w.mean(axis=1, keepdims=True)) @ du / suu
    b = w.mean(axis=1) - slope * um
    alpha = np.clip(-slope, *_ALPHA_RANGE)
    log_e = np.log(np.maximum(e, np.finfo(float).tiny))
    pred = np.logaddexp(np.where(e > 0, log_e, -np.inf), b[:, None] - alpha[:, None] * u[None, :])
    sse = np.sum((pred - np.log(y)[None, :]) ** 2, axis=1)
    k = int(np.argmin(sse))
    return np.array([e[k, 0], b[k], alpha[k]])


class _ParametricSurrogate(BaseEstimator):
    """Shared fitting machinery; a family defines its parameters' box, log-model, Jacobian and starts."""

    #: Evaluation cap of ``least_squares`` per start when ``max_nfev`` is ``None``.
    _default_max_nfev = 100

    #: Bounds of the parameters after ``E`` (rows: lower, upper), in the fit's scaled units.
    _box: np.ndarray

    def __init__(
        self,
        *,
        loss: str = "soft_l1",
        f_scale: float = 0.01,
        max_nfev: int | None = None,
        extrapolation_std: float = EXTRAPOLATION_STD,
    ) -> None:
        self.loss = loss
        self.f_scale = f_scale
        self.max_nfev = max_nfev
        self.extrapolation_std = extrapolation_std

    # -- family interface ------------------------------------------------------------------------------
    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def _log_model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log L`` at ``u`` (in units of the loss reference) and its Jacobian ``(len(u), n_params)``."""
        raise NotImplementedError

    def _publish(self, p: np.ndarray) -> None:
        """Set the family's fitted attributes (ending with ``_``) in the caller's units."""
        raise NotImplementedError

    # -- scikit-learn-shaped API ------------------------------------------------------------------------
    def _check_settings(self) -> int:
        """Validated settings; returns the evaluation cap per start."""
        name = type(self).__name__
        if self.loss not in _ROBUST_LOSSES:
            raise ValueError(f"{name}: unknown loss {self.loss!r}; use one of {', '.join(map(repr, _ROBUST_LOSSES))}")
        check_positive(self.f_scale, "f_scale", name)
        check_extrapolation_std(self.extrapolation_std, name)
        if self.max_nfev is None:
            return self._default_max_nfev
        return check_int(self.max_nfev, "max_nfev", 1, name)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        # Losses are fitted relative to their minimum, so the asymptote lies in [0, 1).
        return np.r_[0.0, self._box[0]], np.r_[1.0 - _E_MARGIN, self._box[1]]

    def fit(self, compute: Any, loss: Any) -> _ParametricSurrogate:
        """Fit the family to one learning curve.

        Args:
            compute: Cumulative compute of each point (> 0, any unit; only ratios matter).
            loss: Observed loss of each point (> 0, any scale; only ratios matter).

        Returns:
            ``self``.

        Raises:
            ValueError: fewer than 3 points, non-finite or non-positive values, a curve whose losses span more
                than double precision can hold relative to each other, or bad settings.
            RuntimeError: the optimiser returned no finite solution.
        """
        name = type(self).__name__
        max_nfev = self._check_settings()
        c, y = check_curve(compute, loss, name)
        log_c = np.log(c)
        ref = float(log_c[-1])
        u = log_c - ref
        log_y = np.log(y)
        log_loss_ref = float(log_y.min())
        z = log_y - log_loss_ref
        if float(z.max()) > EXP_CLIP:
            raise ValueError(
                f"{name}.fit: loss spans a factor of e^{z.max():.0f} between its lowest and highest point; "
                f"at most e^{EXP_CLIP:.0f} can be fitted in double precision"
            )
        scaled = np.exp(z)
        lo, hi = self._bounds()

        # The solver asks for the Jacobian at the point whose residuals it has just accepted: the model (values and
        # Jacobian together) is evaluated once for both. The Jacobian is handed over once, as the solver scales it
        # in place for the robust loss.
        unclaimed: dict[bytes, np.ndarray] = {}

        def residuals(p: np.ndarray) -> np.ndarray:
            log_f, jac = self._log_model(u, p)
            unclaimed.clear()
            unclaimed[p.tobytes()] = jac
            return log_f - z

        def jacobian(p: np.ndarray) -> np.ndarray:
            jac = unclaimed.pop(p.tobytes(), None)
            return require_finite(self._log_model(u, p)[1] if jac is None else jac, "the Jacobian", f"{name}.fit")

        best = None
        with one_blas_thread(), np.errstate(over="ignore", under="ignore", divide="ignore"):
            for start in self._starts(u, scaled):
                if not np.all(np.isfinite(start)):
                    continue
                p0 = np.clip(start, lo + _START_INTERIOR * (hi - lo), hi - _START_INTERIOR * (hi - lo))
                res = least_squares_trf(residuals, p0, jacobian, (lo, hi), loss=self.loss, f_scale=self.f_scale,
                                        max_nfev=max_nfev)
                if np.isfinite(res.cost) and np.all(np.isfinite(res.x)) and (best is None or res.cost < best.cost):
                    best = res
            if best is None:
                raise RuntimeError(f"{name}.fit: the least-squares fit returned no finite solution")
            p = best.x
            r = require_finite(residuals(p), "the residuals at the optimum", f"{name}.fit")
            jac = jacobian(p)
            jtj = require_finite(jac.T @ jac, "J^T J at the optimum", f"{name}.fit")
            dof = max(u.size - p.size, 1)
            s2 = float(r @ r) / dof
            covariance = s2 * np.linalg.pinv(jtj, rcond=_PINV_RCOND)
        self.params_ = p
        self.covariance_ = covariance
        self.noise_var_ = s2
        self.log_compute_ref_ = ref
        self.log_loss_ref_ = log_loss_ref
        self.n_points_ = int(u.size)
        self.converged_ = bool(best.status > 0)
        with np.errstate(over="ignore"):  # a knee far outside the data overflows to inf, which is its value
            self._publish(p)
        return self

    def predict(self, compute: Any, return_std: bool = False) -> Any:
        """Predicted loss at ``compute``; with ``return_std`` also its standard deviation.

        The standard deviation combines the parameter uncertainty (delta method), the residual scale of the
        fit and the model-discrepancy term ``extrapolation_std * log(C / C_last)`` beyond the data, all on
        log-loss, mapped to loss units (``std_L = L * std_logL``). A prediction beyond double precision (far
        before the data, where the law rises without bound) is ``inf``.

        Raises:
            sklearn.exceptions.NotFittedError: before :meth:`fit`.
        """
        check_is_fitted(self, "params_")
        c = check_query(compute, type(self).__name__)
        u = np.log(np.atleast_1d(c).ravel()) - self.log_compute_ref_
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            log_f, g = self._log_model(u, self.params_)
            mean = np.exp(log_f + self.log_loss_ref_)
        if not return_std:
            return mean.reshape(np.shape(c))
        var = np.einsum("ij,jk,ik->i", g, self.covariance_, g) + self.noise_var_
        var += (self.extrapolation_std * np.maximum(u, 0.0)) ** 2  # u = e-folds beyond the last observation
        with np.errstate(over="ignore", invalid="ignore"):
            std = mean * np.sqrt(np.maximum(var, 0.0))
        return mean.reshape(np.shape(c)), std.reshape(np.shape(c))

    def _to_caller_units(self, log_scaled: float) -> float:
        """A quantity fitted as ``log(x / L_ref)``, back in loss units (``inf`` beyond double precision)."""
        with np.errstate(over="ignore"):
            return float(np.exp(log_scaled + self.log_loss_ref_))


class PowerLawSurrogate(_ParametricSurrogate):
    """Power law with an irreducible loss: ``L(C) = E + A * C**(-alpha)``.

    The form of the seed paper's parametric surrogate (Schram et al., ICML 2026) and of Domhan et al.'s
    ``pow3``. Fitted as ``L / L_ref = E' + exp(b - alpha*u)``, ``u = log(C/C_ref)``, ``L_ref`` the lowest
    observed loss (so ``E = L_ref * E'`` and ``A = L_ref * exp(b) * C_ref**alpha``), with ``0 <= E' < 1`` and
    ``1e-3 <= alpha <= 10``: every fitted curve decreases towards ``E``.

    Args:
        loss: Robust loss of :func:`scipy.optimize.least_squares` on log-loss residuals (default ``"soft_l1"``).
        f_scale: Residual scale where the robust loss starts to flatten (default 0.01, i.e. a 1 % miss; the
            routing curves' evaluation noise is well below that, warm-up deviations well above).
        max_nfev: Evaluation cap of the refinement; ``None`` means 100 (the start is usually within a few steps
            of the optimum: about 6 evaluations on the routing curves).
        extrapolation_std: Relative std added per e-fold of compute beyond the data (default
            :data:`EXTRAPOLATION_STD`, 0.02; 0 reports the fit's uncertainty alone).

    Attributes:
        E_, A_, alpha_: The fitted law in the caller's units. ``A_`` can be huge for large ``alpha_``;
            ``params_ = (E', b, alpha)`` with ``log_compute_ref_`` and ``log_loss_ref_`` hold the well-scaled
            form.
        covariance_: Covariance of ``params_``; ``noise_var_``: residual variance of log-loss.
        n_points_: Points fitted; ``converged_``: whether the refinement met its tolerance within ``max_nfev``.

    Example:
        >>> import numpy as np
        >>> c = np.geomspace(1e17, 1e19, 20)
        >>> s = PowerLawSurrogate().fit(c, 1.7 + 400 * c ** -0.15)
        >>> round(s.alpha_, 3), round(s.E_, 3)
        (0.15, 1.7)
    """

    #: ``b`` (log-amplitude at the last observation, relative to the lowest loss) within e^+-60, far wider
    #: than any learning curve; ``alpha`` within :data:`_ALPHA_RANGE`.
    _box = np.array([[-60.0, _ALPHA_RANGE[0]], [60.0, _ALPHA_RANGE[1]]])

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        return [_power_law_start(u, y)]

    @staticmethod
    def _log_model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, b, alpha = p
        log_f, inverse, share = _log_loss_and_shares(_log_or_minus_inf(e), b - alpha * u)
        return log_f, np.column_stack([inverse, share, -u * share])

    def _publish(self, p: np.ndarray) -> None:
        e, b, alpha = (float(v) for v in p)
        self.E_ = self._to_caller_units(_log_or_minus_inf(e))
        self.alpha_ = alpha
        self.A_ = self._to_caller_units(b + alpha * self.log_compute_ref_)


class ExponentialSurrogate(_ParametricSurrogate):
    """Stretched (Weibull) exponential saturation: ``L(C) = E + A * exp(-(C/tau)**c)``.

    Domhan et al.'s ``exp4``/``weibull`` family. With ``c = 1`` it is the plain exponential decay in compute;
    smaller ``c`` stretches the decay over decades of compute, which is what learning curves do (a plain
    exponential in compute saturates far too early). Fitted as ``L / L_ref = E' + exp(a - exp(c*(u - v)))``
    with ``u = log(C/C_ref)``, ``v = log(tau/C_ref)`` and ``L_ref`` the lowest observed loss; bounds
    ``0 <= E' < 1``, ``1e-3 <= c <= 5``. Four parameters: with 3 or 4 points the fit is under-determined and
    its reported std is large.

    As ``c -> 0`` (with ``tau -> 0``) the family tends to a power law; on curves that are power laws (most of
    the routing curves) the optimiser creeps along that limit without converging, so ``max_nfev`` defaults to
    40 evaluations per start: the forecast has settled long before (within about 0.4 % of the converged value on the
    routing curves) and ``converged_`` is then ``False``.

    Args:
        loss, f_scale, extrapolation_std: As for :class:`PowerLawSurrogate`.
        max_nfev: Evaluation cap per start (``None``: 40; three starts).

    Attributes:
        E_, A_, tau_, c_: The fitted law in the caller's units; ``params_ = (E', a, c, v)``; the rest as for
            :class:`PowerLawSurrogate`.
    """

    _default_max_nfev = 40

    #: ``a`` (log-amplitude relative to the lowest loss) within e^+-30; ``c`` from 1e-3 (the power-law limit)
    #: to 5 (a sharper knee than any learning curve); ``v`` (log of ``tau / C_ref``) within e^+-30.
    _box = np.array([[-30.0, 1e-3, -30.0], [30.0, 5.0, 30.0]])

    #: Largest ``(C/tau)**c`` evaluated: beyond it the decaying term is below ``exp(-700)`` of its amplitude,
    #: zero in double precision, and the Jacobian's factor ``(C/tau)**c`` must stay finite.
    _MAX_STRETCH = EXP_CLIP

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        e, _, alpha = _power_law_start(u, y)
        span = float(y.max() - e)
        starts = []
        for c in (min(max(alpha, 0.05), 1.0), 1.0):
            # Choose v so that exp(c*(u-v)) is about 1 at the first point: the decay is under way there.
            v = float(u[0])
            starts.append(np.array([e, np.log(span) + 1.0, c, v]))
        starts.append(np.array([0.5 * e, np.log(float(y.max())) + 1.0, 0.1, float(u[0]) - 5.0]))
        return starts

    @staticmethod
    def _log_model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, c, v = p
        s = np.exp(np.clip(c * (u - v), -EXP_CLIP, np.log(ExponentialSurrogate._MAX_STRETCH)))
        log_f, inverse, share = _log_loss_and_shares(_log_or_minus_inf(e), a - s)
        return log_f, np.column_stack([inverse, share, -share * s * (u - v), share * s * c])

    def _publish(self, p: np.ndarray) -> None:
        e, a, c, v = (float(x) for x in p)
        self.E_ = self._to_caller_units(_log_or_minus_inf(e))
        self.A_ = self._to_caller_units(a)
        self.c_ = c
        self.tau_ = float(np.exp(v + self.log_compute_ref_))


class MMFSurrogate(_ParametricSurrogate):
    """Morgan–Mercer–Flodin curve: ``L(C) = E + A / (1 + (C/kappa)**delta)``.

    A sigmoid in log-compute from ``E + A`` (before ``kappa``) down to ``E``; well past ``kappa`` it is the
    power law ``E + A*(C/kappa)**(-delta)``, so it can follow the slow start of a curve that a pure power law
    cannot. Morgan, Mercer & Flodin (PNAS 1975); Domhan et al.'s ``mmf``. Fitted as
    ``L / L_ref = E' + exp(a) * expit(-delta*(u - v))``, ``u = log(C/C_ref)``, ``v = log(kappa/C_ref)``,
    ``L_ref`` the lowest observed loss; bounds ``0 <= E' < 1``, ``1e-3 <= delta <= 10``.

    Where the data are a pure power law the optimum is the limit ``kappa -> 0``; the first start sits close to
    that limit (the fitted power law carried over with ``kappa`` eight e-folds before the first point) and
    ``max_nfev`` defaults to 40 evaluations per start, so the fit stops there instead of creeping on.

    Args:
        loss, f_scale, extrapolation_std: As for :class:`PowerLawSurrogate`.
        max_nfev: Evaluation cap per start (``None``: 40; two starts).

    Attributes:
        E_, A_, kappa_, delta_: The fitted law in the caller's units; ``params_ = (E', a, delta, v)``; the rest
            as for :class:`PowerLawSurrogate`.
    """

    _default_max_nfev = 40

    #: ``a`` within e^+-30 as for the exponential; ``delta`` within :data:`_ALPHA_RANGE`; ``v`` from -60
    #: (``kappa`` far before the data: the power-law limit, which the first start approaches) to 30.
    _box = np.array([[-30.0, _ALPHA_RANGE[0], -60.0], [30.0, _ALPHA_RANGE[1], 30.0]])

    #: ``kappa`` is placed this many e-folds of compute before the first point in the power-law start, where
    #: the sigmoid is within ``exp(-8 * delta)`` of its power-law tail.
    _START_KNEE_EFOLDS = 8.0

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        e, b, alpha = _power_law_start(u, y)
        # Far past kappa the MMF curve is the power law: put kappa well before the first point and carry the
        # power law's amplitude over (b = a + delta*v).
        v = float(u[0]) - self._START_KNEE_EFOLDS
        starts = [np.array([e, b - alpha * v, alpha, v])]
        mid = float(np.median(u))
        starts.append(np.array([e, np.log(2.0 * float(y.max() - e)), max(alpha, 0.5), mid]))
        return starts

    @staticmethod
    def _log_model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, delta, v = p
        x = delta * (u - v)
        log_g = -np.logaddexp(0.0, x)  # log(1 / (1 + (C/kappa)**delta)), finite for any x
        one_minus_g = expit(x)  # -d log g / dx
        log_f, inverse, share = _log_loss_and_shares(_log_or_minus_inf(e), a + log_g)
        jac = np.column_stack([inverse, share, -share * one_minus_g * (u - v), share * one_minus_g * delta])
        return log_f, jac

    def _publish(self, p: np.ndarray) -> None:
        e, a, delta, v = (float(x) for x in p)
        self.E_ = self._to_caller_units(_log_or_minus_inf(e))
        self.A_ = self._to_caller_units(a)
        self.delta_ = delta
        self.kappa_ = float(np.exp(v + self.log_compute_ref_))
