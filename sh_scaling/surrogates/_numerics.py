"""Numerical settings shared by the surrogates' fits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["EXP_CLIP", "least_squares_trf", "one_blas_thread"]

#: Largest argument passed to ``exp``: ``exp(700)`` is about 1e304, just inside double precision (whose
#: largest value is about 1.8e308), so values and their products with small factors stay finite.
EXP_CLIP = 700.0

_blas_controller: Any = None


def one_blas_thread() -> Any:
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


def least_squares_trf(
    fun: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    jac: Callable[[np.ndarray], np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    *,
    max_nfev: int | None = None,
    loss: str = "linear",
    f_scale: float = 1.0,
    x_scale: Any = None,
) -> Any:
    """``scipy.optimize.least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", ...)`` for a dense Jacobian
    function, at its default tolerances: the same result, bitwise, for less work per call.

    The surrogates' fits solve small problems (a few to a few hundred residuals, 3 or 7 parameters) in 5-30
    evaluations, where SciPy's front end costs about as much per evaluation as its trust-region loop: checking
    the arguments and wrapping ``fun`` and ``jac`` in objects that copy and compare ``x`` at every evaluation (a
    tenth to a fifth of a fit on the latency benchmark's curves). Here ``fun`` and ``jac`` are handed to the loop
    (``scipy.optimize._lsq.trf``) as they are, after the checks ``least_squares`` makes of the first point; they
    are pure functions of ``x``, so the wrappers' caching changes no value. Where SciPy's internals do not have
    the expected shape, ``least_squares`` itself is called. ``tests/test_decision_caches.py`` checks both give
    the same bits.

    ``x_scale``: ``None`` for ``least_squares``'s default.
    """
    direct = _direct_trf()
    if direct is None:
        options = {} if x_scale is None else {"x_scale": x_scale}
        return _scipy_least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", max_nfev=max_nfev, loss=loss,
                                    f_scale=f_scale, **options)
    lsq, trf, x_scale_default = direct
    x = np.atleast_1d(x0).astype(float)
    lb, ub = lsq.prepare_bounds(bounds, x.shape[0])
    if not lsq.in_bounds(x, lb, ub):
        raise ValueError("Initial guess is outside of provided bounds")
    scale = lsq.check_x_scale(x_scale_default if x_scale is None else x_scale, x, "trf")
    ftol, xtol, gtol = lsq.check_tolerance(1e-8, 1e-8, 1e-8, "trf")
    x = lsq.make_strictly_feasible(x, lb, ub)
    f0 = np.atleast_1d(fun(x.copy()))
    J0 = np.atleast_2d(jac(x.copy()))
    if f0.ndim != 1:
        raise ValueError(f"`fun` must return at most 1-d array_like. f0.shape: {f0.shape}")
    if not np.all(np.isfinite(f0)):
        raise ValueError("Residuals are not finite in the initial point.")
    if J0.shape != (f0.size, x.size):
        raise ValueError(f"The return value of `jac` has wrong shape: expected {(f0.size, x.size)}, "
                         f"actual {J0.shape}.")
    loss_function = lsq.construct_loss_function(f0.size, loss, f_scale)
    result = trf(fun, jac, x, f0, J0, lb, ub, ftol, xtol, gtol, max_nfev, scale, loss_function, "exact", {}, 0)
    result.message = lsq.TERMINATION_MESSAGES[result.status]
    result.success = result.status > 0
    return result


def _scipy_least_squares(*args: Any, **kwargs: Any) -> Any:
    from scipy.optimize import least_squares

    return least_squares(*args, **kwargs)


_DIRECT: list[Any] = []


def _direct_trf() -> tuple[Any, Any, Any] | None:
    """SciPy's ``least_squares`` module, its ``trf`` loop and the default ``x_scale``, once; ``None`` when they
    are not what :func:`least_squares_trf` expects (another SciPy)."""
    if not _DIRECT:
        found = None
        try:
            import importlib
            import inspect

            # The module, not the function of the same name that scipy.optimize._lsq exports.
            lsq = importlib.import_module("scipy.optimize._lsq.least_squares")
            trf = importlib.import_module("scipy.optimize._lsq.trf").trf

            names = ("prepare_bounds", "in_bounds", "check_x_scale", "check_tolerance", "make_strictly_feasible",
                     "construct_loss_function", "TERMINATION_MESSAGES")
            params = list(inspect.signature(trf).parameters)
            expected = ["fun", "jac", "x0", "f0", "J0", "lb", "ub", "ftol", "xtol", "gtol", "max_nfev", "x_scale",
                        "loss_function", "tr_solver", "tr_options", "verbose"]
            front = inspect.signature(lsq.least_squares).parameters
            if all(hasattr(lsq, n) for n in names) and params[:len(expected)] == expected \
                    and lsq.trf is trf and "x_scale" in front:
                found = (lsq, trf, front["x_scale"].default)
                _DIRECT.append(found)
                if not _agrees_with_scipy():
                    found = None
                _DIRECT.clear()
        except Exception:  # noqa: BLE001 - any surprise: SciPy's public least_squares
            _DIRECT.clear()
            found = None
        _DIRECT.append(found)
    return _DIRECT[0]


def _agrees_with_scipy() -> bool:
    """Whether :func:`least_squares_trf` gives ``least_squares``' result, bit for bit, on a small bounded robust
    fit: the helpers it calls may take other arguments in another SciPy (``check_x_scale`` took two before
    1.16), which their names alone do not tell."""
    t = np.linspace(0.0, 3.0, 12)
    y = 2.0 * np.exp(-0.7 * t) + 0.3 + 0.01 * np.sin(7.0 * t)

    def fun(p: np.ndarray) -> np.ndarray:
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    def jac(p: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * t)
        return np.stack([e, -p[0] * t * e, np.ones_like(t)], axis=1)

    bounds = (np.array([0.0, 0.0, -1.0]), np.array([10.0, 5.0, 1.0]))
    x0 = np.array([1.0, 1.0, 0.0])
    for loss in ("linear", "soft_l1"):
        mine = least_squares_trf(fun, x0, jac, bounds, max_nfev=50, loss=loss, f_scale=0.1)
        theirs = _scipy_least_squares(fun, x0, jac=jac, bounds=bounds, method="trf", max_nfev=50, loss=loss,
                                      f_scale=0.1)
        if not (np.array_equal(mine.x, theirs.x) and mine.cost == theirs.cost and mine.nfev == theirs.nfev
                and mine.status == theirs.status):
            return False
    return True
