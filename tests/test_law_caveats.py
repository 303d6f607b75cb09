"""A law says when its sweep cannot pin it, and its point estimates lie inside the intervals printed beside them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sh_scaling.curves import Curve, generate_synthetic
from sh_scaling.laws import ScalingLaw, fit_scaling_law

C = np.geomspace(10, 1000, 8)


def dominated(gamma: float = 0.11) -> list[Curve]:
    """Three runs, the first below the others everywhere: one run makes the whole frontier."""
    return [Curve.from_arrays("0", C, 2.0 * C**-gamma), Curve.from_arrays("1", C, 4.0 * C**-0.1),
            Curve.from_arrays("2", C, 5.0 * C**-0.2)]


def test_the_examples_law_with_an_interval_across_zero_and_one_over_decades_says_it_is_not_pinned():
    # As examples/tiny_lm_sweep.py printed it, without a word of caution.
    law = ScalingLaw("irreducible", {"E": 1.2, "A": 1243.0, "gamma": 0.07357},
                     intervals={"E": (0.9, 1.4), "A": (2.465, 1.729e26), "gamma": (-0.0496, 0.074)},
                     confidence=0.95, resampling="runs", interval_method="percentile", n_runs=8, n_frontier_runs=4)
    text = str(law)
    assert "gamma=0.07357 [-0.0496, 0.074]" in text
    assert "this sweep cannot pin the law: " in text
    assert "gamma's interval [-0.0496, 0.074] crosses zero (the sweep cannot tell whether the loss falls" in text
    assert "A's interval [2.465, 1.729e+26] spans a factor of 7.01e+25, more than a decade" in text
    assert len(law.caveats()) == 2  # E's interval is fine
    at_zero = dataclasses.replace(law, intervals={**law.intervals, "E": (0.0, 1.4)})
    assert "E's interval [0, 1.4] reaches zero (the sweep cannot tell whether there is an irreducible" in str(at_zero)


def test_a_law_pinned_by_its_sweep_prints_no_caveat():
    law = fit_scaling_law(list(generate_synthetic(20, seed=0)), n_bootstrap=200)
    assert law.n_frontier_runs >= 3 and law.caveats() == []
    assert "cannot pin" not in str(law)


def test_fewer_than_three_runs_on_the_frontier_is_a_caveat():
    law = fit_scaling_law(dominated(), n_bootstrap=50, seed=0)
    assert law.n_runs == 3 and law.n_frontier_runs == 1
    assert "only 1 of its 3 runs make the frontier it was fitted to (at least 3 are needed)" in str(law)


def test_a_law_fitted_to_given_frontier_points_does_not_claim_to_know_its_runs():
    with pytest.warns(UserWarning):
        law = fit_scaling_law(C, 3.0 * C**-0.1)
    assert law.n_runs == 0 and law.n_frontier_runs == 0 and law.caveats() == []


def test_the_prediction_lies_inside_its_interval_when_it_is_the_interval_s_edge():
    # One run makes the frontier, so most replicates are the full fit itself and the lower bound is the point
    # estimate, read back through exp(log(.)): it came out 1e-16 above the point, and matplotlib refused the
    # negative error bar of `sh-scaling report` (the 2,000-trial study of the review had the same edge).
    law = fit_scaling_law(dominated(0.11), n_bootstrap=50, seed=0)
    p = law.predict_interval([1e4, 1e5, 1e6])
    assert np.all(p.low <= p.loss) and np.all(p.loss <= p.high)
    assert not p.widened.any() and law.widened == ()  # a rounding is no biased bootstrap
    for name, (lo, hi) in law.intervals.items():
        assert lo <= law.params[name] <= hi


def test_an_interval_the_bootstrap_puts_beside_the_estimate_is_widened_to_it_and_says_so():
    law = fit_scaling_law(list(generate_synthetic(8, seed=1)), n_bootstrap=100)
    # Every replicate's log a raised: all of them predict more than the fit, as a biased bootstrap would.
    biased = dataclasses.replace(law, replicates=law.replicates + np.array([0.5, 0.0]))
    p = biased.predict_interval(law.c_max * 10)
    assert p.widened is not None and bool(p.widened[0])
    assert p.low[0] == p.loss[0] < p.high[0]
    assert not law.predict_interval(law.c_max * 10).widened[0]
    named = dataclasses.replace(law, widened=("a",))
    assert "the bootstrap replicates of a lie on one side of the fit" in str(named)


def test_a_sweep_of_mostly_pruned_runs_gets_an_interval_that_holds_its_estimate_and_says_it_was_widened():
    # The review's 2,000-trial study shrunk to 200 runs: sizes 1-64, 98 % of the runs stopped after 1-5 of
    # their 20 reports. Dropping runs can only raise the frontier, and at the law's start most replicates did:
    # a's percentile interval [19.3127, 20.60] excluded a = 19.3124.
    rng = np.random.default_rng(0)
    curves = []
    for i in range(200):
        size = rng.integers(1, 65)
        c = 100.0 * size * np.arange(1, 21) / 20
        loss = 1.5 + 20 * c**-0.3 + 0.5 * size**-0.5 + 0.01 * rng.random(20)
        k = 20 if rng.random() < 0.02 else int(rng.integers(1, 6))
        curves.append(Curve.from_arrays(str(i), c[:k], loss[:k]))
    law = fit_scaling_law(curves, n_bootstrap=100, seed=0)
    for name, (lo, hi) in law.intervals.items():
        assert lo <= law.params[name] <= hi
    assert law.widened == ("a",)
    assert "this sweep cannot pin the law: the bootstrap replicates of a lie on one side of the fit" in str(law)
