import warnings

import numpy as np
import pytest

from sh_scaling.curves import Curve, CurveSet, CurveWarning


def test_clean_curve_is_unchanged():
    c = Curve.from_arrays("a", [1.0, 2.0, 4.0], [3.0, 2.5, 2.0])
    np.testing.assert_allclose(c.compute, [1, 2, 4])
    assert c.final_compute == 4.0 and c.min_loss == 2.0


def test_nan_dropped_with_counted_warning():
    with pytest.warns(CurveWarning, match="dropped 2 non-finite"):
        c = Curve.from_arrays("a", [1, 2, 3, 4], [3.0, np.nan, np.inf, 2.0])
    assert len(c) == 2


def test_unsorted_and_duplicates():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        c = Curve.from_arrays("a", [4, 1, 2, 2], [2.0, 3.0, 2.4, 2.6])
    msgs = " ".join(str(w.message) for w in rec)
    assert "sorted" in msgs and "averaged" in msgs
    np.testing.assert_allclose(c.compute, [1, 2, 4])
    np.testing.assert_allclose(c.loss, [3.0, 2.5, 2.0])


def test_zero_compute_dropped_negative_rejected():
    c = Curve.from_arrays("a", [0, 1, 2], [10.0, 3.0, 2.0])
    assert len(c) == 2
    with pytest.raises(ValueError, match="curve 'bad'.*negative compute"):
        Curve.from_arrays("bad", [-1, 1], [3.0, 2.0])
    with pytest.raises(ValueError, match="curve 'bad'.*loss must be > 0"):
        Curve.from_arrays("bad", [1, 2], [3.0, 0.0])


def test_observed_until_and_interpolation():
    c = Curve.from_arrays("a", [1, 10, 100], [4.0, 2.0, 1.0])
    assert len(c.observed_until(50)) == 2
    assert len(c.observed_until(100)) == 3
    # Linear in log-log: halfway between 1 and 10 in log space.
    np.testing.assert_allclose(c.loss_at(np.sqrt(10)), np.sqrt(8.0))
    assert np.isnan(c.loss_at(1000))[0]
    assert np.isnan(c.best_loss_at(0.5))[0]
    np.testing.assert_allclose(c.best_loss_at(1000), 1.0)


def test_curveset_rejects_duplicate_ids():
    a = Curve.from_arrays("a", [1, 2], [2, 1])
    with pytest.raises(ValueError, match="duplicated curve ids"):
        CurveSet([a, a])
    s = CurveSet([a, Curve.from_arrays("b", [1, 3], [2, 1])])
    assert s.exhaustive_compute == 5.0
    assert list(s.to_frame().columns[:3]) == ["run_id", "compute", "loss"]
