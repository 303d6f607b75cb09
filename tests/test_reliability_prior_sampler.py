"""A prior that fails (raises, or answers with the wrong shape) never fails a trial nor leaves one RUNNING."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from sh_scaling.sampling import (
    FROM_PRIOR_KEY,
    PREDICTED_LOSS_KEY,
    PRIOR_ERROR_KEY,
    ScalingLawPrior,
    ScalingPriorSampler,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"n_layers": IntDistribution(1, 96), "d_model": IntDistribution(64, 16384, log=True)}
LAW = ScalingLawPrior(flops=1e20, params={"n_layers": "n_layers", "d_model": "d_model"})


class _Service:
    """A prior behind a service that can go down: ``predict_many`` raises ``error`` while ``down``."""

    param_names = LAW.param_names

    def __init__(self, error: Exception | None = None, answer=None) -> None:
        self.error = error
        self.answer = answer  # a wrong answer to return instead of the law's
        self.calls = 0

    def predict_many(self, params):
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer
        return LAW.predict_many(params)


def _objective(trial: optuna.Trial) -> float:
    return LAW({n: trial.suggest_int(n, d.low, d.high, log=d.log) for n, d in SPACE.items()})


def _no_trial_left_running(study: optuna.Study) -> bool:
    return not study.get_trials(states=(TrialState.RUNNING,))


def test_a_prior_that_raises_while_sampling_falls_back_to_the_base():
    prior = _Service(KeyError("d_model"))
    study = optuna.create_study(sampler=ScalingPriorSampler(prior, search_space=SPACE, seed=0))
    with pytest.warns(UserWarning, match="the prior failed .*KeyError.*d_model") as record:
        study.optimize(_objective, n_trials=4)
    assert sum("the prior failed" in str(w.message) for w in record) == 1  # once, not once per trial
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    failed = [t for t in study.trials if PRIOR_ERROR_KEY in t.system_attrs]
    assert failed and prior.calls == len(failed)  # the prior is asked again on every trial given to it
    for t in failed:
        assert t.system_attrs[PRIOR_ERROR_KEY] == "predict_many raised KeyError: 'd_model'"
        assert PREDICTED_LOSS_KEY not in t.system_attrs


def test_a_prior_that_raises_inside_ask_leaves_no_trial_running():
    # With evidence, ask() itself consults the prior (its agreement with the observed losses).
    prior = _Service()
    sampler = ScalingPriorSampler(prior, search_space=SPACE, seed=0, min_agreement_trials=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective, n_trials=4)
    prior.error = ConnectionError("prior service unreachable")
    with pytest.warns(UserWarning, match="ConnectionError: prior service unreachable"):
        trial = study.ask()
    stored = study._storage.get_trial(trial._trial_id)
    assert stored.system_attrs[PRIOR_ERROR_KEY] == "predict_many raised ConnectionError: prior service unreachable"
    assert stored.system_attrs[FROM_PRIOR_KEY] is False
    study.tell(trial, _objective(trial))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(_objective, n_trials=3)
    assert _no_trial_left_running(study)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sampler.prior_weight(study) == 0.0  # while the prior fails
    # The service comes back: the prior is used again.
    prior.error = None
    study.optimize(_objective, n_trials=2)
    assert PRIOR_ERROR_KEY not in study.trials[-1].system_attrs
    assert sampler.prior_weight(study) > 0.0


@pytest.mark.parametrize("answer", [[1.0, 2.0], "not numbers", [[1.0]]])
def test_a_prior_answering_the_wrong_shape_falls_back_to_the_base(answer):
    study = optuna.create_study(sampler=ScalingPriorSampler(_Service(answer=answer), search_space=SPACE, seed=0))
    with pytest.warns(UserWarning, match="predict_many returned"):
        study.optimize(_objective, n_trials=2)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert "predict_many returned" in study.trials[0].system_attrs[PRIOR_ERROR_KEY]


def test_a_callable_prior_that_is_unavailable_falls_back_to_the_base():
    def remote(params):
        raise TimeoutError("no answer in 5 s")

    study = optuna.create_study(sampler=ScalingPriorSampler(remote, search_space=SPACE, seed=0))
    with pytest.warns(UserWarning, match="TimeoutError: no answer in 5 s"):
        study.optimize(_objective, n_trials=3)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].system_attrs[PRIOR_ERROR_KEY] == "the prior raised TimeoutError: no answer in 5 s"
