"""The surrogates as scikit-learn estimators: parameters, cloning, repr, fitted state, validation in fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

from sh_scaling import surrogates
from sh_scaling.surrogates import (
    ExponentialSurrogate,
    GPSurrogate,
    MMFSurrogate,
    MultiCurveGPSurrogate,
    PowerLawSurrogate,
    make_surrogate,
)

ESTIMATORS = [PowerLawSurrogate, ExponentialSurrogate, MMFSurrogate, GPSurrogate, MultiCurveGPSurrogate]
COMPUTE = np.geomspace(1e17, 1e19, 12)
LOSS = 1.7 + 5e3 * COMPUTE**-0.2

#: One non-default setting per estimator, to see that it survives get_params, clone and repr.
CHANGED = {
    PowerLawSurrogate: {"f_scale": 0.05, "loss": "huber"},
    ExponentialSurrogate: {"max_nfev": 60},
    MMFSurrogate: {"extrapolation_std": 0.0},
    GPSurrogate: {"n_points": 15, "random_state": 3},
    MultiCurveGPSurrogate: {"n_restarts_optimizer": 0},
}


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_estimators_are_scikit_learn_estimators(cls):
    est = cls(**CHANGED[cls])
    assert isinstance(est, BaseEstimator)
    params = est.get_params()
    assert params == {**cls().get_params(), **CHANGED[cls]}
    # __init__ stores its arguments and nothing else.
    assert vars(est) == params


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_clone_and_repr_round_trip(cls):
    est = cls(**CHANGED[cls]).fit(COMPUTE, LOSS)
    fresh = clone(est)
    assert type(fresh) is cls and fresh is not est
    assert fresh.get_params() == est.get_params()
    assert vars(fresh) == fresh.get_params()  # a clone is not fitted
    text = repr(est)
    assert text.startswith(f"{cls.__name__}(")
    for name, value in CHANGED[cls].items():
        assert f"{name}={value!r}" in text
    rebuilt = eval(text, vars(surrogates))  # noqa: S307 - the repr of our own estimators
    assert rebuilt.get_params() == est.get_params()
    assert repr(cls()) == f"{cls.__name__}()"


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_predict_before_fit_raises_not_fitted(cls):
    with pytest.raises(NotFittedError, match=cls.__name__):
        cls().predict(np.array([1e20]))
    if cls is MultiCurveGPSurrogate:
        with pytest.raises(NotFittedError, match="fit_many"):
            cls().predict_many([np.array([1e20])])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_learned_state_is_public_with_a_trailing_underscore(cls):
    est = cls().fit(COMPUTE, LOSS)
    params = set(est.get_params())
    learned = set(vars(est)) - params
    assert learned, "fit stores what it learned"
    for name in learned:
        assert name.endswith("_") and not name.startswith("_"), name
    if cls is MultiCurveGPSurrogate:
        est.fit_many([(COMPUTE, LOSS), (COMPUTE, 1.01 * LOSS)])
        assert set(vars(est)) - params == learned


def test_parametric_state_names():
    s = PowerLawSurrogate().fit(COMPUTE, LOSS)
    for name in ("params_", "covariance_", "noise_var_", "log_compute_ref_", "log_loss_ref_", "n_points_",
                 "converged_", "E_", "A_", "alpha_"):
        assert hasattr(s, name), name
    assert s.log_loss_ref_ == pytest.approx(np.log(LOSS.min()))
    assert s.params_[0] * LOSS.min() == pytest.approx(s.E_)
    assert {"E_", "A_", "c_", "tau_"} <= set(vars(ExponentialSurrogate().fit(COMPUTE, LOSS)))
    assert {"E_", "A_", "delta_", "kappa_"} <= set(vars(MMFSurrogate().fit(COMPUTE, LOSS)))


def test_multi_curve_state_names():
    s = MultiCurveGPSurrogate().fit_many([(COMPUTE, LOSS), (COMPUTE[:5] * 3, LOSS[:5])])
    np.testing.assert_allclose(s.log_compute_ref_, np.log([COMPUTE[0], 3 * COMPUTE[0]]))
    np.testing.assert_allclose(s.t_last_, [np.log(COMPUTE[-1] / COMPUTE[0]), np.log(COMPUTE[4] / COMPUTE[0])])
    assert s.n_curves_ == 2 and s.block_data_.T.shape[0] == 2 and "mu" in s.posterior_


@pytest.mark.parametrize(
    ("cls", "setting", "value"),
    [
        (PowerLawSurrogate, "f_scale", -1.0),
        (PowerLawSurrogate, "f_scale", "wide"),
        (PowerLawSurrogate, "loss", "l3"),
        (ExponentialSurrogate, "max_nfev", 0),
        (MMFSurrogate, "max_nfev", 2.5),
        (MMFSurrogate, "extrapolation_std", np.nan),
        (GPSurrogate, "n_points", 2),
        (GPSurrogate, "n_restarts_optimizer", True),
        (MultiCurveGPSurrogate, "n_restarts_optimizer", -1),
        (MultiCurveGPSurrogate, "extrapolation_std", -0.1),
    ],
)
def test_settings_are_validated_in_fit_naming_argument_and_value(cls, setting, value):
    est = cls(**{setting: value})  # construction never validates
    assert est.get_params()[setting] is value
    with pytest.raises(ValueError, match=setting) as info:
        est.fit(COMPUTE, LOSS)
    assert repr(value) in str(info.value)


def test_make_surrogate_clones_estimators_and_copies_other_objects():
    fitted = PowerLawSurrogate(f_scale=0.05).fit(COMPUTE, LOSS)
    fresh = make_surrogate(fitted)
    assert fresh is not fitted and fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "params_")  # a clone starts unfitted

    class Plain:
        def __init__(self):
            self.state = [1, 2]

        def fit(self, compute, loss):
            return self

        def predict(self, compute, return_std=False):
            return np.ones_like(compute)

    proto = Plain()
    copy = make_surrogate(proto)
    assert type(copy) is Plain and copy is not proto
    assert copy.state == proto.state and copy.state is not proto.state
