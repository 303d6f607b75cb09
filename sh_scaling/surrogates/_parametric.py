"""Parametric learning-curve surrogates: power law, stretched exponential and Morgan–Mercer–Flodin.

Each family is a decreasing, saturating function of compute with an irreducible loss ``E``; the bounds on the
parameters make every fitted curve non-increasing in compute, so extrapolation cannot turn upwards.

How the fit works (the same for every family):

* Compute enters through ``u = log(C / C_ref)``, with ``C_ref`` the last observed compute: the parameters stay
  of order one whatever the unit of compute (FLOPs near 1e20, or PF-days), and ``u = 0`` is "now".
* Residuals are taken on the log of the loss, ``log L_model(u) - log L_observed``, so a 1 % miss counts the
  same at the start of the curve (loss 5) as at its end (loss 2), and scipy's ``least_squares`` minimises them
  with a robust loss (``soft_l1`` by default): the warm-up points at the start of a curve, which no saturating
  law follows, are down-weighted instead of bending the fit.
* Bounds: ``0 <= E < min(observed loss)`` (the asymptote lies below every observation) and positive rates.
* Starting values: for the power law, a grid over ``E`` with a linear regression of ``log(L - E)`` on ``u`` at
  each grid value (closed form, vectorised), then one robust refinement. The other families start from the
  fitted power law, to which each reduces in a limit, and from a few generic points.
* Uncertainty: the delta method on the Gauss–Newton covariance ``s^2 (J^T J)^+`` of the fitted parameters,
  plus the residual scale ``s^2`` as observation noise (the forecast is of a loss one will *observe*), plus a
  model-discrepancy term that grows with the distance beyond the data (:data:`EXTRAPOLATION_STD`). No
  bootstrap: it would cost a hundred fits per curve.

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
from scipy.optimize import least_squares
from scipy.special import expit

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

#: Largest exponent passed to ``exp``; keeps intermediate values finite far outside the data.
_EXP_CLIP = 700.0

_blas_controller: Any = None


def _one_blas_thread() -> Any:
    """Context manager in which BLAS runs on a single thread.

    Surrogate fits make thousands of linear-algebra calls on matrices of at most a few hundred entries, where
    threads cannot help; but numpy and scipy each ship an OpenBLAS with its own thread pool, and on a busy
    2-core machine the pools fight: scipy's L-BFGS-B step took 3 ms instead of 0.1 ms and a GP fit was 3-7x
    slower than with one thread (measured while writing ``benchmarks/bench_surrogates.py``). The limit is
    process-wide while the context is open (threadpoolctl, a scikit-learn dependency).
    """
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def _check_curve(compute: Any, loss: Any, owner: str, min_points: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(compute, loss)`` as float arrays sorted by compute; raises ``ValueError`` on bad input."""
    c = np.asarray(compute, dtype=float).ravel()
    y = np.asarray(loss, dtype=float).ravel()
    if c.shape != y.shape:
        raise ValueError(f"{owner}.fit: compute has {c.size} points but loss has {y.size}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{owner}.fit: compute contains non-finite values (NaN or inf); clean the curve first")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{owner}.fit: loss contains non-finite values (NaN or inf); clean the curve first")
    if np.any(c <= 0):
        raise ValueError(f"{owner}.fit: compute must be > 0 (log-compute is used), got {c[c <= 0][0]!r}")
    if np.any(y <= 0):
        raise ValueError(f"{owner}.fit: loss must be > 0 (log-loss residuals are used), got {y[y <= 0][0]!r}")
    if c.size < min_points:
        raise ValueError(f"{owner}.fit: needs at least {min_points} points, got {c.size}")
    order = np.argsort(c, kind="stable")
    c, y = c[order], y[order]
    if np.unique(c).size < min_points:
        raise ValueError(f"{owner}.fit: needs at least {min_points} distinct compute values, got {np.unique(c).size}")
    return c, y


def _check_extrapolation_std(value: Any, owner: str) -> None:
    if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}: extrapolation_std must be a finite number >= 0, got {value!r}")


def _check_query(compute: Any, owner: str) -> np.ndarray:
    c = np.asarray(compute, dtype=float)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"{owner}.predict: compute must be finite and > 0")
    return c


def _power_law_start(u: np.ndarray, y: np.ndarray, n_grid: int = 24) -> np.ndarray:
    """Starting ``(E, b, alpha)`` for ``L = E + exp(b - alpha*u)``: grid over E, regression of log(L-E) on u.

    For each grid value of ``E`` (between 0 and just below the observed minimum) the other two parameters are
    the ordinary least-squares line through ``(u, log(L - E))``; the grid value with the smallest log-loss
    residual wins. Vectorised over the grid: about 50 microseconds.
    """
    y_min = float(y.min())
    frac = 1.0 - np.geomspace(1.0, 1e-3, n_grid)  # dense near the observed minimum, where E usually is
    e = y_min * frac[:, None]
    w = np.log(np.maximum(y[None, :] - e, 1e-12 * y_min))
    um = u.mean()
    du = u - um
    suu = float(du @ du)
    slope = (w - w.mean(axis=1, keepdims=True)) @ du / suu
    b = w.mean(axis=1) - slope * um
    alpha = np.clip(-slope, 1e-3, 10.0)
    pred = np.log(e + np.exp(np.clip(b[:, None] - alpha[:, None] * u[None, :], -_EXP_CLIP, _EXP_CLIP)))
    sse = np.sum((pred - np.log(y)[None, :]) ** 2, axis=1)
    k = int(np.argmin(sse))
    return np.array([e[k, 0], b[k], alpha[k]])


class _ParametricSurrogate:
    """Shared fitting machinery; a family defines its parameters, bounds, model, Jacobian and starts."""

    #: Evaluation cap of ``least_squares`` per start when ``max_nfev`` is ``None``.
    _default_max_nfev = 100

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
    def _bounds(self, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def _model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss at ``u`` and its Jacobian with respect to the parameters (shape ``(len(u), n_params)``)."""
        raise NotImplementedError

    def _publish(self, p: np.ndarray) -> None:
        """Set the public fitted attributes (ending with ``_``) from the internal parameters."""
        raise NotImplementedError

    # -- scikit-learn-shaped API ------------------------------------------------------------------------
    def fit(self, compute: Any, loss: Any) -> _ParametricSurrogate:
        """Fit the family to one learning curve.

        Args:
            compute: Cumulative compute of each point (> 0, any unit; only ratios matter).
            loss: Observed loss of each point (> 0).

        Returns:
            ``self``.

        Raises:
            ValueError: fewer than 3 points, non-finite or non-positive values, or bad settings.
            RuntimeError: the optimiser returned no finite solution.
        """
        name = type(self).__name__
        if self.loss not in ("linear", "soft_l1", "huber", "cauchy", "arctan"):
            raise ValueError(f"{name}: unknown loss {self.loss!r}; use 'linear', 'soft_l1', 'huber', ...")
        if not (np.isfinite(self.f_scale) and self.f_scale > 0):
            raise ValueError(f"{name}: f_scale must be > 0, got {self.f_scale!r}")
        _check_extrapolation_std(self.extrapolation_std, name)
        max_nfev = self._default_max_nfev if self.max_nfev is None else int(self.max_nfev)
        if max_nfev < 1:
            raise ValueError(f"{name}: max_nfev must be >= 1, got {self.max_nfev!r}")
        c, y = _check_curve(compute, loss, name)
        ref = float(np.log(c[-1]))
        u = np.log(c) - ref
        z = np.log(y)
        lo, hi = self._bounds(u, y)

        def residuals(p: np.ndarray) -> np.ndarray:
            return np.log(self._model(u, p)[0]) - z

        def jacobian(p: np.ndarray) -> np.ndarray:
            f, jac = self._model(u, p)
            return jac / f[:, None]

        best = None
        with _one_blas_thread():
            for start in self._starts(u, y):
                p0 = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
                res = least_squares(residuals, p0, jac=jacobian, bounds=(lo, hi), loss=self.loss,
                                    f_scale=self.f_scale, max_nfev=max_nfev, method="trf")
                if np.isfinite(res.cost) and np.all(np.isfinite(res.x)) and (best is None or res.cost < best.cost):
                    best = res
        if best is None:
            raise RuntimeError(f"{name}.fit: the least-squares fit returned no finite solution")
        p = best.x
        r = residuals(p)
        jac = jacobian(p)
        dof = max(u.size - p.size, 1)
        s2 = float(r @ r) / dof
        self.params_ = p
        self.covariance_ = s2 * np.linalg.pinv(jac.T @ jac, rcond=1e-10)
        self.noise_var_ = s2
        self.log_compute_ref_ = ref
        self.n_points_ = int(u.size)
        self.converged_ = bool(best.status > 0)
        self._publish(p)
        return self

    def predict(self, compute: Any, return_std: bool = False) -> Any:
        """Predicted loss at ``compute``; with ``return_std`` also its standard deviation.

        The standard deviation combines the parameter uncertainty (delta method), the residual scale of the
        fit and the model-discrepancy term ``extrapolation_std * log(C / C_last)`` beyond the data, all on
        log-loss, mapped to loss units (``std_L = L * std_logL``).
        """
        if not hasattr(self, "params_"):
            raise RuntimeError(f"{type(self).__name__}: call fit() before predict()")
        c = _check_query(compute, type(self).__name__)
        u = np.log(np.atleast_1d(c).ravel()) - self.log_compute_ref_
        f, jac = self._model(u, self.params_)
        mean = f.reshape(np.shape(c))
        if not return_std:
            return mean
        g = jac / f[:, None]
        var = np.einsum("ij,jk,ik->i", g, self.covariance_, g) + self.noise_var_
        var += (self.extrapolation_std * np.maximum(u, 0.0)) ** 2  # u = e-folds beyond the last observation
        std = f * np.sqrt(np.maximum(var, 0.0))
        return mean, std.reshape(np.shape(c))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(loss={self.loss!r}, f_scale={self.f_scale!r}, max_nfev={self.max_nfev!r}, "
                f"extrapolation_std={self.extrapolation_std!r})")


class PowerLawSurrogate(_ParametricSurrogate):
    """Power law with an irreducible loss: ``L(C) = E + A * C**(-alpha)``.

    The form of the seed paper's parametric surrogate (Schram et al., ICML 2026) and of Domhan et al.'s
    ``pow3``. Fitted as ``L = E + exp(b - alpha*u)``, ``u = log(C/C_ref)`` (so ``A = exp(b) * C_ref**alpha``),
    with ``0 <= E < min(loss)`` and ``1e-3 <= alpha <= 10``: every fitted curve decreases towards ``E``.

    Args:
        loss: Robust loss of :func:`scipy.optimize.least_squares` on log-loss residuals (default ``"soft_l1"``).
        f_scale: Residual scale where the robust loss starts to flatten (default 0.01, i.e. a 1 % miss; the
            routing curves' evaluation noise is well below that, warm-up deviations well above).
        max_nfev: Evaluation cap of the refinement; ``None`` means 100 (the start is usually within a few steps
            of the optimum: about 6 evaluations on the routing curves).
        extrapolation_std: Relative std added per e-fold of compute beyond the data (default
            :data:`EXTRAPOLATION_STD`, 0.02; 0 reports the fit's uncertainty alone).

    Attributes:
        E_, A_, alpha_: The fitted law in the caller's compute unit. ``A_`` can be huge for large ``alpha_``;
            ``params_ = (E, b, alpha)`` and ``log_compute_ref_`` hold the well-scaled form.
        covariance_: Covariance of ``params_``; ``noise_var_``: residual variance of log-loss.

    Example:
        >>> import numpy as np
        >>> c = np.geomspace(1e17, 1e19, 20)
        >>> s = PowerLawSurrogate().fit(c, 1.7 + 400 * c ** -0.15)
        >>> round(s.alpha_, 3), round(s.E_, 3)
        (0.15, 1.7)
    """

    def _bounds(self, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = float(y.min()) * (1.0 - 1e-6)
        return np.array([0.0, -60.0, 1e-3]), np.array([top, 60.0, 10.0])

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        return [_power_law_start(u, y)]

    @staticmethod
    def _model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, b, alpha = p
        term = np.exp(np.clip(b - alpha * u, -_EXP_CLIP, _EXP_CLIP))
        return e + term, np.column_stack([np.ones_like(u), term, -u * term])

    def _publish(self, p: np.ndarray) -> None:
        e, b, alpha = (float(v) for v in p)
        self.E_ = e
        self.alpha_ = alpha
        with np.errstate(over="ignore"):
            self.A_ = float(np.exp(b + alpha * self.log_compute_ref_))


class ExponentialSurrogate(_ParametricSurrogate):
    """Stretched (Weibull) exponential saturation: ``L(C) = E + A * exp(-(C/tau)**c)``.

    Domhan et al.'s ``exp4``/``weibull`` family. With ``c = 1`` it is the plain exponential decay in compute;
    smaller ``c`` stretches the decay over decades of compute, which is what learning curves do (a plain
    exponential in compute saturates far too early). Fitted as ``L = E + exp(a - exp(c*(u - v)))`` with
    ``u = log(C/C_ref)`` and ``v = log(tau/C_ref)``; bounds ``0 <= E < min(loss)``, ``1e-3 <= c <= 5``.
    Four parameters: with 3 or 4 points the fit is under-determined and its reported std is large.

    As ``c -> 0`` (with ``tau -> 0``) the family tends to a power law; on curves that are power laws (most of
    the routing curves) the optimiser creeps along that limit without converging, so ``max_nfev`` defaults to
    40 evaluations per start: the forecast has settled long before (within about 0.4 % of the converged value on the
    routing curves) and ``converged_`` is then ``False``.

    Args:
        loss, f_scale, extrapolation_std: As for :class:`PowerLawSurrogate`.
        max_nfev: Evaluation cap per start (``None``: 40; three starts).

    Attributes:
        E_, A_, tau_, c_: The fitted law (``tau_`` in the caller's compute unit); ``params_ = (E, a, c, v)``.
    """

    _default_max_nfev = 40

    def _bounds(self, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = float(y.min()) * (1.0 - 1e-6)
        return np.array([0.0, -30.0, 1e-3, -30.0]), np.array([top, 30.0, 5.0, 30.0])

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
    def _model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, c, v = p
        s = np.exp(np.clip(c * (u - v), -_EXP_CLIP, np.log(_EXP_CLIP)))
        term = np.exp(np.clip(a - s, -_EXP_CLIP, _EXP_CLIP))
        jac = np.column_stack([np.ones_like(u), term, -term * s * (u - v), term * s * c])
        return e + term, jac

    def _publish(self, p: np.ndarray) -> None:
        e, a, c, v = (float(x) for x in p)
        self.E_ = e
        self.A_ = float(np.exp(a))
        self.c_ = c
        self.tau_ = float(np.exp(v + self.log_compute_ref_))


class MMFSurrogate(_ParametricSurrogate):
    """Morgan–Mercer–Flodin curve: ``L(C) = E + A / (1 + (C/kappa)**delta)``.

    A sigmoid in log-compute from ``E + A`` (before ``kappa``) down to ``E``; well past ``kappa`` it is the
    power law ``E + A*(C/kappa)**(-delta)``, so it can follow the slow start of a curve that a pure power law
    cannot. Morgan, Mercer & Flodin (PNAS 1975); Domhan et al.'s ``mmf``. Fitted as
    ``L = E + exp(a) * expit(-delta*(u - v))``, ``u = log(C/C_ref)``, ``v = log(kappa/C_ref)``; bounds
    ``0 <= E < min(loss)``, ``1e-3 <= delta <= 10``.

    Where the data are a pure power law the optimum is the limit ``kappa -> 0``; the first start sits close to
    that limit (the fitted power law carried over with ``kappa`` eight e-folds before the first point) and
    ``max_nfev`` defaults to 40 evaluations per start, so the fit stops there instead of creeping on.

    Args:
        loss, f_scale, extrapolation_std: As for :class:`PowerLawSurrogate`.
        max_nfev: Evaluation cap per start (``None``: 40; two starts).

    Attributes:
        E_, A_, kappa_, delta_: The fitted law (``kappa_`` in the caller's compute unit);
            ``params_ = (E, a, delta, v)``.
    """

    _default_max_nfev = 40

    def _bounds(self, u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = float(y.min()) * (1.0 - 1e-6)
        return np.array([0.0, -30.0, 1e-3, -60.0]), np.array([top, 30.0, 10.0, 30.0])

    def _starts(self, u: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        e, b, alpha = _power_law_start(u, y)
        # Far past kappa the MMF curve is the power law: put kappa eight e-folds before the first point and
        # carry the power law's amplitude over (b = a + delta*v).
        v = float(u[0]) - 8.0
        starts = [np.array([e, b - alpha * v, alpha, v])]
        mid = float(np.median(u))
        starts.append(np.array([e, np.log(2.0 * float(y.max() - e)), max(alpha, 0.5), mid]))
        return starts

    @staticmethod
    def _model(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, delta, v = p
        amp = np.exp(np.clip(a, -_EXP_CLIP, _EXP_CLIP))
        g = expit(-delta * (u - v))  # 1 / (1 + (C/kappa)**delta)
        term = amp * g
        dg = g * (1.0 - g)  # derivative of expit at its argument
        jac = np.column_stack([np.ones_like(u), term, -amp * dg * (u - v), amp * dg * delta])
        return e + term, jac

    def _publish(self, p: np.ndarray) -> None:
        e, a, delta, v = (float(x) for x in p)
        self.E_ = e
        self.A_ = float(np.exp(a))
        self.delta_ = delta
        self.kappa_ = float(np.exp(v + self.log_compute_ref_))
