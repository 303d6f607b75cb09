import numpy as np
import pytest

from sh_scaling.curves import Curve
from sh_scaling.laws import area_between_laws, fit_scaling_law, observed_frontier


def test_frontier_is_lower_envelope_without_extrapolation():
    small = Curve.from_arrays("s", [1, 10, 100], [4.0, 2.0, 1.5])
    big = Curve.from_arrays("b", [10, 100, 1000], [5.0, 1.8, 1.0])
    grid, f = observed_frontier([small, big], grid=np.array([0.5, 1, 10, 100, 1000]))
    assert np.isnan(f[0])
    np.testing.assert_allclose(f[1:], [4.0, 2.0, 1.5, 1.0])


def test_frontier_uses_best_loss_so_far():
    bumpy = Curve.from_arrays("x", [1, 2, 4], [3.0, 2.0, 2.5])
    _, f = observed_frontier([bumpy], grid=np.array([4.0]))
    np.testing.assert_allclose(f, [2.0])


def test_power_law_recovered_with_intervals():
    c = np.geomspace(1e17, 1e21, 40)
    rng = np.random.default_rng(0)
    y = 30.0 * c ** -0.05 * np.exp(rng.normal(0, 0.002, c.size))
    # Frontier points without their curves: only the pairs bootstrap over points is possible (not an
    # uncertainty over runs; tests/test_law_intervals.py covers the intervals over runs).
    law = fit_scaling_law(c, y, n_bootstrap=100, resample="points")
    assert law.exponent == pytest.approx(0.05, abs=2e-3)
    lo, hi = law.intervals["gamma"]
    assert lo < 0.05 < hi and hi - lo < 0.01


def test_irreducible_law_recovered():
    c = np.geomspace(1e17, 1e22, 40)
    y = 1.7 + 1e4 * c ** -0.2
    law = fit_scaling_law(c, y, form="irreducible", n_bootstrap=0)
    assert law.params["E"] == pytest.approx(1.7, rel=0.02)
    assert law.params["gamma"] == pytest.approx(0.2, rel=0.05)
    np.testing.assert_allclose(law.predict(c), y, rtol=1e-3)


def test_area_between_laws():
    c = np.geomspace(1, 100, 10)
    a = fit_scaling_law(c, 2.0 * c ** -0.1, n_bootstrap=0)
    b = fit_scaling_law(c, 2.0 * np.e * c ** -0.1, n_bootstrap=0)  # ln gap is exactly 1 everywhere
    assert area_between_laws(a, a, 1, 100) == pytest.approx(0.0, abs=1e-9)
    assert area_between_laws(a, b, 1, 100) == pytest.approx(np.log(100), rel=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        fit_scaling_law([1, 2], [1, 1])
    with pytest.raises(ValueError, match="form must be"):
        fit_scaling_law([1, 2, 3], [3, 2, 1], form="cubic")
