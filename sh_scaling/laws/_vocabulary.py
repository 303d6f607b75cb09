"""The vocabulary scaling law of Tao et al., "Scaling Laws with Vocabulary: Larger Models Deserve Larger
Vocabularies" (NeurIPS 2024).

Notation (the paper's): ``Nnv`` non-vocabulary parameters, ``Nv = V * d`` vocabulary parameters (the embedding
matrix counted once), ``d`` the model width taken from the paper's width table, ``C`` the training budget in
FLOPs. The paper predicts the compute-optimal ``Nv`` three ways:

1. *IsoFLOPs* (Section 4.1): a power law of ``Nv`` in the compute-optimal budget ``C``.
2. *Derivative-based estimate* (Section 4.2): a power law of ``Nv`` in ``Nnv`` anchored at the 33M model.
3. *Parametric loss* (Section 4.3): ``L = -E + A1/Nnv**a1 + A2/Nv**a2 + B/D**b`` with ``D = C/(6 (Nnv + Nv))``,
   minimised over ``Nv``. Only this approach accepts a budget that is not compute-optimal.

All three return a :class:`VocabularyPrediction`, so a caller never has to know which unit a bare number is in.
The constants live in :data:`sh_scaling.constants.TAO_2024`; the test vectors in ``tests/test_vocabulary.py``
reproduce the paper's reference code to the integer.

Differences from the reference code: approach 3 is solved with a bracketed root finder on a bracket proved to
contain the unique root (the reference's ``fsolve`` started at ``V = 1000`` returns garbage for tiny or heavily
under-trained models without complaint), and every approach warns with :class:`VocabularyExtrapolationWarning`
when asked about models or budgets far outside the range the law was fitted on.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from scipy.optimize import brentq

from sh_scaling.constants import FLOPS_PER_PARAM_TOKEN
from sh_scaling.constants import (
    TAO_2024,
    TAO_2024_FITTED_MAX_FLOPS,
    TAO_2024_FITTED_NNV,
    TAO_2024_WIDTH_ABOVE,
    TAO_2024_WIDTH_TABLE,
    VocabularyLawConstants,
)

__all__ = [
    "VocabularyPrediction",
    "VocabularyExtrapolationWarning",
    "VocabularySolverError",
    "EXTRAPOLATION_FACTOR",
    "width_for_non_vocab",
    "optimal_flops_for_non_vocab",
    "optimal_non_vocab_for_flops",
    "vocabulary_loss",
    "optimal_vocabulary",
]

#: How far outside the fitted range (Nnv 33M-1.13B, C <= 4.4e20 FLOPs) a query may go before a
#: :class:`VocabularyExtrapolationWarning` is issued: a factor of 10 on Nnv (below 3.3M or above 11.3B) or on C
#: (above 4.4e21 FLOPs). Mild extrapolation, such as the paper's own 3B prediction, does not warn.
EXTRAPOLATION_FACTOR = 10.0

# Normalisation of approach 3 (Tao et al. 2024, reference code): Nnv and Nv in millions, C in 1e15 FLOPs.
_PARAM_UNIT = 1e6
_FLOP_UNIT = 1e15


class VocabularyExtrapolationWarning(UserWarning):
    """The vocabulary law is being used far outside the range it was fitted on.

    Tao et al. (2024) fitted it on Nnv from 33M to 1.13B, vocabularies from 4K to 96K and budgets up to
    4.4e20 FLOPs. The paper itself extrapolates to 300B; such predictions are plausible, not measured.
    """


class VocabularySolverError(ValueError):
    """Approach 3's optimality condition has no root the solver could find for the given inputs."""


@dataclass(frozen=True)
class VocabularyPrediction:
    """A predicted compute-optimal vocabulary.

    Attributes:
        n_vocab_params: ``Nv``, vocabulary parameters (``V * d``, counted once), as the law predicts them.
        vocab_size: ``V = floor(Nv / d)``, the vocabulary size.
        width: ``d``, the model width from the paper's width table.
        flops: ``C``, the training budget in FLOPs the prediction is for.
        n_non_vocab_params: ``Nnv``, the non-vocabulary parameters asked about.
        approach: 1 (IsoFLOPs), 2 (derivative-based) or 3 (parametric loss).
    """

    n_vocab_params: float
    vocab_size: int
    width: int
    flops: float
    n_non_vocab_params: float
    approach: int


def _check_positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def width_for_non_vocab(n_non_vocab: float) -> int:
    """Model width ``d`` for ``Nnv`` non-vocabulary parameters, from the width table of Tao et al. (2024).

    Each bound is inclusive: ``width_for_non_vocab(50e6) == 512`` and ``width_for_non_vocab(50e6 + 1) == 768``.
    """
    n = _check_positive("n_non_vocab", n_non_vocab)
    for upper, d in TAO_2024_WIDTH_TABLE:
        if n <= upper:
            return d
    return TAO_2024_WIDTH_ABOVE


def optimal_flops_for_non_vocab(n_non_vocab: float, constants: VocabularyLawConstants = TAO_2024) -> float:
    """The budget ``C`` (FLOPs) for which ``Nnv`` non-vocabulary parameters are compute-optimal.

    Inverse of :func:`optimal_non_vocab_for_flops`: ``C = (Nnv / exp(-2.4847))**2`` (Tao et al. 2024).
    """
    n = _check_positive("n_non_vocab", n_non_vocab)
    return (n / math.exp(constants.nnv_log_coef)) ** (1.0 / constants.nnv_exponent)


def optimal_non_vocab_for_flops(flops: float, constants: VocabularyLawConstants = TAO_2024) -> float:
    """Compute-optimal non-vocabulary parameters for a budget: ``Nnv = exp(-2.4847) * C**0.5``."""
    c = _check_positive("flops", flops)
    return math.exp(constants.nnv_log_coef) * c**constants.nnv_exponent


def vocabulary_loss(
    n_non_vocab: float, n_vocab: float, flops: float, constants: VocabularyLawConstants = TAO_2024
) -> float:
    """Approach 3's fitted loss ``-E + A1/Nnv**a1 + A2/Nv**a2 + B/D**b`` with ``D = C / (6 (Nnv + Nv))``.

    Arguments are in natural units (parameters, FLOPs); the normalisation of the fit (millions of parameters,
    1e15 FLOPs) is applied here. The value is the paper's unigram-normalised loss, meaningful for comparing
    configurations, not a cross-entropy in nats.
    """
    nnv = _check_positive("n_non_vocab", n_non_vocab) / _PARAM_UNIT
    nv = _check_positive("n_vocab", n_vocab) / _PARAM_UNIT
    c = _check_positive("flops", flops) / _FLOP_UNIT
    k = constants
    tokens = c / (FLOPS_PER_PARAM_TOKEN * (nnv + nv))
    return -k.E + k.A1 / nnv**k.alpha1 + k.A2 / nv**k.alpha2 + k.B / tokens**k.beta


def _warn_if_extrapolating(n_non_vocab: float, flops: float) -> None:
    lo, hi = TAO_2024_FITTED_NNV
    f = EXTRAPOLATION_FACTOR
    if n_non_vocab < lo / f or n_non_vocab > hi * f or flops > TAO_2024_FITTED_MAX_FLOPS * f:
        warnings.warn(
            f"vocabulary law extrapolated far beyond its fitted range (Nnv {lo:.3g}-{hi:.3g}, "
            f"C <= {TAO_2024_FITTED_MAX_FLOPS:.2g} FLOPs; Tao et al. 2024): Nnv={n_non_vocab:.3g}, "
            f"C={flops:.3g}",
            VocabularyExtrapolationWarning,
            stacklevel=3,
        )


def _approach3_nv(n_non_vocab: float, flops: float, k: VocabularyLawConstants) -> float:
    """Root in Nv (parameters) of dL/dNv = 0 for approach 3.

    In normalised units the condition is ``a2 A2 Nv**(-a2-1) = b B (6/C)**b (Nnv + Nv)**(b-1)`` (the width
    cancels). With ``x = log Nv`` define ``h(x) = K - (a2+1) x + (1-b) log(Nnv + e**x)``, the log of the ratio
    of the two sides, ``K = log(a2 A2) - log(b B) - b log(6/C)``. Because ``(1-b)/(Nnv+Nv) < (a2+1)/Nv``,
    ``h`` is strictly decreasing, so the root is unique. Bracket, proved:

    * ``log(Nnv + e**x) >= log Nnv`` gives ``h(x) >= K - (a2+1) x + (1-b) log Nnv``, which is ``a2 + 1 > 0`` at
      ``x_lo = (K + (1-b) log Nnv) / (a2+1) - 1``;
    * for ``x >= log Nnv``, ``log(Nnv + e**x) <= log 2 + x`` gives ``h(x) <= K + (1-b) log 2 - (a2+b) x``,
      which is ``<= -(a2+b) < 0`` at ``x_hi = max(log Nnv, (K + (1-b) log 2) / (a2+b) + 1)``.
    """
    nnv = n_non_vocab / _PARAM_UNIT
    c = flops / _FLOP_UNIT
    a2, b = k.alpha2, k.beta
    K = math.log(a2 * k.A2) - math.log(b * k.B) - b * math.log(6.0 / c)
    log_nnv = math.log(nnv)

    def h(x: float) -> float:
        log_total = max(log_nnv, x) + math.log1p(math.exp(-abs(log_nnv - x)))
        return K - (a2 + 1.0) * x + (1.0 - b) * log_total

    x_lo = (K + (1.0 - b) * log_nnv) / (a2 + 1.0) - 1.0
    x_hi = max(log_nnv, (K + (1.0 - b) * math.log(2.0)) / (a2 + b) + 1.0)
    h_lo, h_hi = h(x_lo), h(x_hi)
    if not (math.isfinite(h_lo) and math.isfinite(h_hi) and h_lo > 0.0 > h_hi):
        raise VocabularySolverError(
            f"approach 3 found no root of dL/dNv for n_non_vocab={n_non_vocab!r}, flops={flops!r} "
            f"(bracket [{x_lo:.3g}, {x_hi:.3g}] in log Nv/1e6 gave h={h_lo!r}, {h_hi!r})"
        )
    x = brentq(h, x_lo, x_hi, xtol=1e-14, rtol=1e-15, maxiter=500)
    nv = math.exp(x) * _PARAM_UNIT
    if not math.isfinite(nv) or nv <= 0:
        raise VocabularySolverError(
            f"approach 3 returned a non-finite Nv for n_non_vocab={n_non_vocab!r}, flops={flops!r}"
        )
    return nv


def optimal_vocabulary(
    n_non_vocab: float,
    *,
    approach: int = 3,
    flops: float | None = None,
    constants: VocabularyLawConstants = TAO_2024,
) -> VocabularyPrediction:
    """Predict the optimal vocabulary for a model with ``n_non_vocab`` non-vocabulary parameters.

    Args:
        n_non_vocab: ``Nnv``, non-vocabulary parameters (embeddings and output layer excluded).
        approach: 1 (IsoFLOPs power law, Section 4.1), 2 (derivative-based estimate, Section 4.2) or
            3 (parametric loss minimised over ``Nv``, Section 4.3; the default, and the only one that accepts a
            budget other than the compute-optimal one).
        flops: The training budget in FLOPs. ``None`` (default) means the compute-optimal budget for
            ``n_non_vocab`` (:func:`optimal_flops_for_non_vocab`). Approaches 1 and 2 assume that budget and reject
            any other.
        constants: The fitted constants (default :data:`sh_scaling.constants.TAO_2024`).

    Returns:
        A :class:`VocabularyPrediction` with ``Nv``, ``V = floor(Nv / d)``, ``d``, ``C`` and the approach.

    Raises:
        ValueError: non-positive or non-finite ``n_non_vocab``/``flops``, unknown ``approach``, or a budget
            passed to approach 1 or 2.
        VocabularySolverError: approach 3's optimality condition could not be solved (a subclass of
            ``ValueError``).

    Warns:
        VocabularyExtrapolationWarning: far outside the fitted range (see :data:`EXTRAPOLATION_FACTOR`).

    Example:
        >>> optimal_vocabulary(7e9, approach=3).vocab_size  # doctest: +SKIP
        59547
    """
    n = _check_positive("n_non_vocab", n_non_vocab)
    if approach not in (1, 2, 3):
        raise ValueError(f"approach must be 1, 2 or 3, got {approach!r}")
    optimal_c = optimal_flops_for_non_vocab(n, constants)
    if flops is None:
        c = optimal_c
    else:
        c = _check_positive("flops", flops)
        if approach != 3:
            raise ValueError(
                f"approach {approach} assumes the compute-optimal budget; got flops={flops!r} "
                "(use approach=3 for any other budget)"
            )
    _warn_if_extrapolating(n, c)
    d = width_for_non_vocab(n)
    if approach == 1:
        nv = math.exp(constants.a1_log_coef) * c**constants.a1_exponent
    elif approach == 2:
        nv = constants.a2_nv0 * (n / constants.a2_nnv0) ** constants.a2_exponent
    else:
        nv = _approach3_nv(n, c, constants)
    return VocabularyPrediction(
        n_vocab_params=nv,
        vocab_size=int(math.floor(nv / d)),
        width=d,
        flops=c,
        n_non_vocab_params=n,
        approach=approach,
    )
