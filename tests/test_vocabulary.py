"""Vocabulary scaling law (Tao et al., NeurIPS 2024): every test vector of SPEC section 1.5."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sh_scaling.constants import TAO_2024
from sh_scaling.laws import (
    VocabularyExtrapolationWarning,
    VocabularyPrediction,
    VocabularySolverError,
    optimal_flops_for_non_vocab,
    optimal_non_vocab_for_flops,
    optimal_vocabulary,
    vocabulary_loss,
    width_for_non_vocab,
)
from sh_scaling.laws._vocabulary import _approach3_nv

# Nnv -> (V approach 1, V approach 2, V approach 3) at the compute-optimal budget, from the paper's reference code.
OPTIMAL_VECTORS = {
    3e9: (39367, 42538, 36648),
    7e9: (62280, 67450, 59547),
    13e9: (83429, 90503, 81347),
    30e9: (141711, 154071, 141898),
    70e9: (211860, 230861, 217961),
    300e9: (355894, 389324, 383659),
    33e6: (5754, 6144, 4662),
    302e6: (18183, 19527, 15758),
    1.13e9: (27280, 29401, 24630),
}
# Far outside the fitted range (C > 4.4e21 FLOPs): a VocabularyExtrapolationWarning is expected.
EXTRAPOLATED = {7e9, 13e9, 30e9, 70e9, 300e9}


def _predict(n, **kw) -> VocabularyPrediction:
    if n in EXTRAPOLATED:
        with pytest.warns(VocabularyExtrapolationWarning, match="fitted range"):
            return optimal_vocabulary(n, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VocabularyExtrapolationWarning)
        return optimal_vocabulary(n, **kw)


@pytest.mark.parametrize("n_non_vocab", sorted(OPTIMAL_VECTORS))
@pytest.mark.parametrize("approach", [1, 2, 3])
def test_compute_optimal_vectors_exact(n_non_vocab: float, approach: int) -> None:
    pred = _predict(n_non_vocab, approach=approach)
    assert pred.vocab_size == OPTIMAL_VECTORS[n_non_vocab][approach - 1]
    assert pred.approach == approach
    assert pred.width == width_for_non_vocab(n_non_vocab)
    assert pred.vocab_size == math.floor(pred.n_vocab_params / pred.width)
    assert pred.flops == pytest.approx(optimal_flops_for_non_vocab(n_non_vocab), rel=1e-12)
    assert pred.n_non_vocab_params == n_non_vocab


@pytest.mark.parametrize("n_non_vocab", sorted(OPTIMAL_VECTORS))
@pytest.mark.parametrize("approach", [1, 2, 3])
def test_within_a_thousand_of_the_papers_rounded_table(n_non_vocab: float, approach: int) -> None:
    rounded = round(OPTIMAL_VECTORS[n_non_vocab][approach - 1], -3)
    assert abs(_predict(n_non_vocab, approach=approach).vocab_size - rounded) <= 1000


@pytest.mark.parametrize("flops, expected", [(2.8e20, 23_884), (1.2e21, 35_387), (2.3e21, 42_211)])
def test_fixed_budget_vectors(flops: float, expected: int) -> None:
    pred = _predict(2.87e9, approach=3, flops=flops)
    assert pred.vocab_size == expected
    assert pred.flops == flops


@pytest.mark.parametrize("k, expected", [(0.2, 10_187), (0.5, 13_055), (1, 15_758), (2, 19_032), (6, 25_707)])
def test_multiples_of_the_optimal_budget(k: float, expected: int) -> None:
    c = k * optimal_flops_for_non_vocab(302e6)
    assert _predict(302e6, approach=3, flops=c).vocab_size == expected


def test_width_table_bounds_are_inclusive() -> None:
    assert width_for_non_vocab(50e6) == 512
    assert width_for_non_vocab(50e6 + 1) == 768
    assert width_for_non_vocab(1e9) == 1536
    assert width_for_non_vocab(1e12) == 20480
    assert width_for_non_vocab(1e12 + 1) == 24576
    assert width_for_non_vocab(1.0) == 512


def test_compute_optimal_mapping_round_trips() -> None:
    for n in (33e6, 1e9, 7e9):
        assert optimal_non_vocab_for_flops(optimal_flops_for_non_vocab(n)) == pytest.approx(n, rel=1e-12)
    assert optimal_non_vocab_for_flops(1e20) == pytest.approx(math.exp(-2.4846510161625193) * 1e10)


def test_approach3_root_is_the_minimum_of_the_loss() -> None:
    n, c = 302e6, optimal_flops_for_non_vocab(302e6)
    nv = optimal_vocabulary(n, approach=3).n_vocab_params
    at = vocabulary_loss(n, nv, c)
    assert at < vocabulary_loss(n, nv * 1.05, c)
    assert at < vocabulary_loss(n, nv / 1.05, c)


def test_approach3_optimality_condition_holds() -> None:
    k = TAO_2024
    n, c = 2.87e9, 1.2e21
    nv = _approach3_nv(n, c, k) / 1e6
    lhs = k.alpha2 * k.A2 * nv ** (-k.alpha2 - 1)
    rhs = k.beta * k.B * (6 / (c / 1e15)) ** k.beta * (n / 1e6 + nv) ** (k.beta - 1)
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_tiny_model_gets_a_real_root_not_the_solvers_start() -> None:
    # The reference's fsolve(start V=1000) returns a meaningless huge number for Nnv=1e5; the bracketed solver
    # finds the root, which is smaller than the model itself.
    with pytest.warns(VocabularyExtrapolationWarning):
        pred = optimal_vocabulary(1e5, approach=3)
    assert 0 < pred.n_vocab_params < 1e5


def test_larger_budget_means_larger_vocabulary() -> None:
    sizes = [optimal_vocabulary(302e6, flops=c).n_vocab_params for c in (1e18, 1e19, 1e20)]
    assert sizes == sorted(sizes)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "big", None])
def test_bad_non_vocab_raises(bad) -> None:
    with pytest.raises(ValueError, match="n_non_vocab"):
        optimal_vocabulary(bad)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="approach"):
        optimal_vocabulary(1e8, approach=4)
    with pytest.raises(ValueError, match="flops"):
        optimal_vocabulary(1e8, approach=3, flops=-1.0)
    with pytest.raises(ValueError, match="compute-optimal"):
        optimal_vocabulary(1e8, approach=1, flops=1e19)


def test_solver_error_is_a_value_error_with_a_message() -> None:
    broken = dataclasses.replace(TAO_2024, B=float("inf"))  # no finite bracket exists
    with pytest.raises(VocabularySolverError, match="no root"):
        optimal_vocabulary(1e8, approach=3, constants=broken)
    assert issubclass(VocabularySolverError, ValueError)


def test_no_warning_inside_the_fitted_range() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimal_vocabulary(100e6, approach=3, flops=1e19)


def test_prediction_is_frozen() -> None:
    pred = optimal_vocabulary(302e6)
    with pytest.raises(AttributeError):
        pred.vocab_size = 3  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(
    log_nnv=st.floats(min_value=math.log(1e5), max_value=math.log(1e12)),
    log_k=st.floats(min_value=math.log(1e-3), max_value=math.log(1e3)),
)
def test_approach3_solves_the_condition_everywhere(log_nnv: float, log_k: float) -> None:
    # Over nine decades of model size and six of budget around the optimum, the bracketed solver finds a root
    # that satisfies the optimality condition and is a minimum of the loss along Nv.
    k = TAO_2024
    n = math.exp(log_nnv)
    c = math.exp(log_k) * optimal_flops_for_non_vocab(n)
    nv = _approach3_nv(n, c, k)
    assert math.isfinite(nv) and nv > 0
    m = nv / 1e6
    lhs = k.alpha2 * k.A2 * m ** (-k.alpha2 - 1)
    rhs = k.beta * k.B * (6 / (c / 1e15)) ** k.beta * (n / 1e6 + m) ** (k.beta - 1)
    assert lhs == pytest.approx(rhs, rel=1e-8)
    assert vocabulary_loss(n, nv, c) <= min(vocabulary_loss(n, nv * 1.01, c), vocabulary_loss(n, nv / 1.01, c))
