"""Numerical settings shared by the surrogates' fits."""

from __future__ import annotations

from typing import Any

__all__ = ["EXP_CLIP", "one_blas_thread"]

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
