"""Intervals of the fitted law come from resampling runs (SPEC §1.9): grid-free, calibrated, extrapolated."""

import math
import warnings

import numpy as np
import pytest

from sh_scaling.curves import Curve, generate_synthetic
from sh_scaling.laws import LossPrediction, fit_scaling_law, observed_frontier

# Three decades that every sweep of 10 synthetic curves reaches, clear of the plateau at the curves' start and
# of the flattening near the irreducible loss (see benchmarks/bench_law_coverage.py).
RANGE = (1e16, 1e19)


@pytest.fixture(scope="module")
def curves():
    return list(generate_synthetic(20, seed=0))


def _width(law) -> float:
    lo, hi = law.intervals["gamma"]
    return hi - lo


def test_interval_width_does_not_depend_on_grid_size(curves):
    runs = {n: _width(fit_scaling_law(curves, n_grid=n, n_bootstrap=500)) for n in (10, 50, 400)}
    points = {n: _width(fit_scaling_law(curves, n_grid=n, n_bootstrap=500, resample="points")) for n in (10, 50, 400)}
    # Measured over 6-30 curves (seeds 0-3): 50 points within 12 % of 400, 10 points 0.8-1.55x. Ten points
    # over these eight decades of compute are one per 0.9 decade, so the end of a replicate's frontier (the
    # last point of the largest curve it drew) moves in steps that coarse: a cruder fit, not narrower
    # intervals. The grid bootstrap over points shrinks about 8x from 10 to 400 points.
    assert 0.6 < runs[10] / runs[400] < 1.6
    assert 0.87 < runs[50] / runs[400] < 1.15
    assert points[10] / points[400] > 3


def test_coverage_of_the_population_exponent_is_sane():
    population = list(generate_synthetic(500, seed=3))
    truth = fit_scaling_law(population, compute_range=RANGE, n_bootstrap=0).exponent
    rng = np.random.default_rng(0)
    new, old = [], []
    for sweep in range(20):
        chosen = [population[i] for i in rng.choice(len(population), 10, replace=False)]
        for resample, hits in (("runs", new), ("points", old)):
            law = fit_scaling_law(chosen, compute_range=RANGE, n_bootstrap=200, seed=sweep, resample=resample)
            lo, hi = law.intervals["gamma"]
            hits.append(lo <= truth <= hi)
    # The benchmark measures about 90 % over 200 sweeps of 10 runs, and about 40 % for the grid bootstrap.
    assert np.mean(new) >= 0.6
    assert np.mean(new) > np.mean(old)


def test_prediction_interval_holds_the_point_and_widens_with_extrapolation(curves):
    law = fit_scaling_law(curves, n_bootstrap=400)
    compute = law.c_max * np.array([1.0, 1e2, 1e4, 1e6])
    pred = law.predict_interval(compute)
    assert isinstance(pred, LossPrediction)
    np.testing.assert_allclose(pred.loss, law.predict(compute))
    assert np.all(pred.low <= pred.loss) and np.all(pred.loss <= pred.high)
    # Wider in log-loss (relative width) the further out: the loss itself falls, so absolute widths need not.
    assert np.all(np.diff(np.log(pred.high / pred.low)) > 0)
    assert pred.confidence == 0.95
    narrow = law.predict_interval(compute, confidence=0.5)
    assert np.all(narrow.high - narrow.low < pred.high - pred.low)


def test_irreducible_form_gets_intervals_over_runs(curves):
    law = fit_scaling_law(curves[:12], form="irreducible", n_bootstrap=100)
    assert law.resampling == "runs" and law.n_runs == 12
    for name, (lo, hi) in law.intervals.items():
        assert lo <= law.params[name] <= hi, name
    pred = law.predict_interval(1e23)
    assert pred.low[0] <= pred.loss[0] <= pred.high[0]


def test_bca_interval_is_available(curves):
    law = fit_scaling_law(curves, n_bootstrap=300, interval="bca")
    lo, hi = law.intervals["gamma"]
    assert law.interval_method == "bca" and lo < hi
    assert law.jackknife.shape == (len(curves), 2)


def test_seeded_and_reproducible(curves):
    a = fit_scaling_law(curves, n_bootstrap=200, seed=7)
    b = fit_scaling_law(curves, n_bootstrap=200, seed=7)
    c = fit_scaling_law(curves, n_bootstrap=200, seed=8)
    assert a.intervals == b.intervals
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert a.intervals != c.intervals
    assert a.params == c.params


def test_replicates_are_scaled_for_the_distinct_curves_they_drew(curves):
    law = fit_scaling_law(curves, n_bootstrap=300)
    n = len(curves)
    assert law.replicates.shape == (300, 2) and law.replicate_scale.shape == (300,)
    m = n * law.replicate_scale**2 / (1 + law.replicate_scale**2)  # invert sqrt(m / (n - m))
    np.testing.assert_allclose(m, np.round(m), atol=1e-9)
    assert np.all((m >= 1) & (m < n))
    # About 63 % of the curves are distinct in a bootstrap draw.
    assert abs(m.mean() / n - (1 - (1 - 1 / n) ** n)) < 0.03


def test_curves_and_frontier_points_give_the_same_fit(curves):
    grid, frontier = observed_frontier(curves, n=30)
    from_points = fit_scaling_law(grid, frontier, n_bootstrap=0)
    from_curves = fit_scaling_law(curves, n_grid=30, n_bootstrap=0)
    assert from_curves.params == pytest.approx(from_points.params, rel=1e-12)
    assert from_curves.n_runs == len(curves) and from_points.n_runs == 0


def test_frontier_points_alone_have_no_intervals_over_runs(curves):
    grid, frontier = observed_frontier(curves, n=30)
    with pytest.warns(UserWarning, match="pass the curves"):
        law = fit_scaling_law(grid, frontier, n_bootstrap=100)
    assert law.intervals == {} and law.resampling is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = fit_scaling_law(grid, frontier, n_bootstrap=100, resample="points")
    assert old.resampling == "points" and "gamma" in old.intervals
    assert "frontier points" in str(old)


def test_stated_compute_range_limits_the_fit(curves):
    law = fit_scaling_law(curves, compute_range=RANGE, n_bootstrap=0)
    assert law.c_min == pytest.approx(RANGE[0]) and law.c_max == pytest.approx(RANGE[1])
    assert law.n_points == 50


def test_two_curves_are_enough_one_is_not():
    a = Curve.from_arrays("a", [1, 10, 100], [4.0, 2.0, 1.5])
    b = Curve.from_arrays("b", [10, 100, 1000], [5.0, 1.8, 1.0])
    law = fit_scaling_law([a, b], n_bootstrap=50)
    assert "gamma" in law.intervals
    with pytest.raises(ValueError, match="at least 2 curves"):
        fit_scaling_law([a], n_bootstrap=50)
    assert math.isfinite(fit_scaling_law([a], n_bootstrap=0).exponent)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"form": "cubic"}, "form must be"),
        ({"interval": "student"}, "interval must be"),
        ({"resample": "grid"}, "resample must be"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"n_grid": 2}, "n_grid"),
        ({"confidence": 1.0}, "confidence"),
        ({"compute_range": (1e19, 1e16)}, "compute_range"),
        ({"compute_range": (0, 1e16)}, "compute_range"),
        ({"compute_range": 1e16}, "compute_range"),
    ],
)
def test_bad_options(curves, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_scaling_law(curves, **kwargs)


def test_bad_data(curves):
    with pytest.raises(ValueError, match="list of Curve"):
        fit_scaling_law([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="list of Curve"):
        fit_scaling_law([])
    with pytest.raises(ValueError, match="compute must be positive"):
        fit_scaling_law([0.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0], n_bootstrap=0)
    with pytest.raises(ValueError, match="compute must be positive"):
        fit_scaling_law([-1.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0], n_bootstrap=0)
    with pytest.raises(ValueError, match="loss must be positive"):
        fit_scaling_law([1.0, 2.0, 3.0], [3.0, 0.0, 1.0], n_bootstrap=0)
    with pytest.raises(ValueError, match="at least 3"):
        fit_scaling_law(curves, compute_range=(1e40, 1e41), n_bootstrap=0)


def test_bad_prediction_requests(curves):
    law = fit_scaling_law(curves, n_bootstrap=50)
    for bad in (0.0, -1e20, float("nan"), float("inf"), []):
        with pytest.raises(ValueError, match="compute must be positive"):
            law.predict_interval(bad)
    with pytest.raises(ValueError, match="confidence"):
        law.predict_interval(1e22, confidence=0)
    with pytest.raises(ValueError, match="no bootstrap replicates"):
        fit_scaling_law(curves, n_bootstrap=0).predict_interval(1e22)
