"""SurrogateHalvingPruner and report(): rung semantics, stored state, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.halving import frontier_scores
from sh_scaling.keys import DECISION_KEY, FORECAST_KEY, PRUNED_KEY, rung_key
from sh_scaling.pruning import reported_compute
from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.ERROR)


class Broken:
    def fit(self, compute, loss):
        raise RuntimeError("did not converge")

    def predict(self, compute, return_std=False):
        raise AssertionError("never called")


def _pruner(*args, **kwargs):
    """Classic SH settings (rungs eta apart, ranking on the forecast mean at the target, no stage margin), no warm-up guard:
    small hand-made curves, where each decision can be worked out by hand."""
    for key, value in {"decision_start": 0.0, "warmup_fraction": 0.0, "reduction_factor": 2, "rung_factor": None,
                       "objective": "best_loss", "optimism": None, "margin": None}.items():
        kwargs.setdefault(key, value)
    return SurrogateHalvingPruner(*args, **kwargs)


def _study(pruner, direction="minimize"):
    return optuna.create_study(pruner=pruner, direction=direction)


def _run(study, compute, loss, params=None, use_report=True, **report_kw):
    """Report a curve point by point into a new trial; returns (trial number, state)."""
    trial = study.ask(fixed_distributions={}) if params is None else study.ask()
    for name, value in (params or {}).items():
        trial.suggest_float(name, value, value)
    for step, (c, l) in enumerate(zip(compute, loss)):
        if use_report:
            report(trial, l, compute=c, **report_kw)
        else:
            trial.report(l, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return trial.number, optuna.trial.TrialState.PRUNED
    study.tell(trial, float(loss[-1]))
    return trial.number, optuna.trial.TrialState.COMPLETE


def _power_curve(scale, n=12, c0=1.0, c1=100.0, e=1.0):
    c = np.geomspace(c0, c1, n)
    return c, e + scale * c**-0.5


# ---------------------------------------------------------------------------------------------- report()
def test_report_keeps_compute_out_of_step_column():
    study = _study(_pruner(LogLinear(), max_compute=1e30, min_compute=1e20))
    trial = study.ask()
    assert report(trial, 3.0, compute=1e21) == 0
    assert report(trial, 2.5, compute=2e21) == 1
    assert report(trial, 2.0, compute=5e21, step=7) == 7
    frozen = study.trials[0]
    assert frozen.intermediate_values == {0: 3.0, 1: 2.5, 7: 2.0}
    assert reported_compute(frozen)[7] == 5e21
    assert reported_compute(frozen)[0] == 1e21


def test_report_with_compute_fn():
    study = _study(_pruner(LogLinear(), max_compute=1e9))
    trial = study.ask()
    trial.suggest_float("n", 10.0, 10.0)
    report(trial, 3.0, step=4, compute_fn=lambda p, s: p["n"] * (s + 1))
    assert reported_compute(study.trials[0])[4] == 50.0


def test_report_without_compute_says_how():
    study = _study(_pruner(LogLinear(), max_compute=10.0))
    trial = study.ask()
    with pytest.raises(ValueError, match="compute="):
        report(trial, 3.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "lots"])
def test_report_rejects_bad_compute(bad):
    trial = _study(_pruner(LogLinear(), max_compute=10.0)).ask()
    with pytest.raises(ValueError, match="compute"):
        report(trial, 3.0, compute=bad)


def test_report_rejects_decreasing_compute_both_ways():
    trial = _study(_pruner(LogLinear(), max_compute=10.0)).ask()
    report(trial, 3.0, compute=2.0, step=2)
    with pytest.raises(ValueError, match="increase"):
        report(trial, 2.9, compute=1.5, step=3)
    with pytest.raises(ValueError, match="increase"):
        report(trial, 3.1, compute=2.5, step=1)
    report(trial, 3.1, compute=1.0, step=1)  # out of order but consistent: accepted
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: 3.1, 2: 3.0}


def test_report_repeated_step_keeps_first_value_and_compute():
    study = _study(_pruner(LogLinear(), max_compute=10.0))
    trial = study.ask()
    report(trial, 3.0, compute=1.0, step=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report(trial, 9.0, compute=5.0, step=0)
    frozen = study.trials[0]
    assert frozen.intermediate_values == {0: 3.0}
    assert reported_compute(frozen)[0] == 1.0


def test_report_multi_objective_is_a_clear_error():
    study = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="multi-objective"):
        report(study.ask(), 1.0, compute=1.0)


# --------------------------------------------------------------------------------------------- the rungs
def test_rung_value_is_read_at_the_rung_compute_not_the_last_report():
    # Rungs sit at 1.5**k; with min_compute=3 the first one is k=3 at 3.375.
    pruner = _pruner(LogLinear(), max_compute=100.0, min_compute=3.0, n_startup_trials=1, rung_factor=1.5)
    study = _study(pruner)
    c = np.array([1.0, 2.0, 4.0, 8.0])
    l = np.array([5.0, 4.0, 3.0, 2.5])
    _run(study, c, l)
    assert rung_key(2) not in study.trials[0].system_attrs  # 2.25 lies below min_compute
    rec = study.trials[0].system_attrs[rung_key(3)]
    expected = math.exp(np.interp(math.log(3.375), np.log(c), np.log(l)))
    assert rec["compute"] == pytest.approx(3.375)
    assert rec["loss"] == pytest.approx(expected)
    assert rec["loss"] != pytest.approx(3.0)  # not the value at the report that crossed the rung
    assert rec["n_points"] == 3
    # rung 4 at compute 5.0625, again interpolated between the reports at 4 and 8
    rec1 = study.trials[0].system_attrs[rung_key(4)]
    assert rec1["loss"] == pytest.approx(math.exp(np.interp(math.log(5.0625), np.log(c), np.log(l))))


def test_big_late_winner_survives_because_of_the_forecast():
    """A large model is worse than small ones at the rung compute but forecast to end lower."""
    pruner = _pruner(LogLinear(), max_compute=lambda p: p["target"], min_compute=4.0,
                                    n_startup_trials=1, reduction_factor=2)
    study = _study(pruner)
    grid = np.geomspace(1.0, 8.0, 7)
    for _ in range(3):  # small models: good now, flat later
        _run(study, grid, 2.0 + 0.5 * grid**-1.0, params={"target": 8.0})
    big_c = np.geomspace(1.0, 1000.0, 16)
    number, state = _run(study, big_c, 1.0 + 3.0 * big_c**-0.3, params={"target": 1000.0})
    assert state == optuna.trial.TrialState.COMPLETE
    rec = study.trials[number].system_attrs[rung_key(2)]  # the rung at compute 4 = 2**2
    assert rec["loss"] > 2.2 and rec["forecast"] < 2.0 and rec["promoted"]


def test_quota_is_ceil_n_over_eta_and_first_arrivals_are_not_required_to_beat_everyone():
    # Final losses get worse with each trial; with eta=2 the k-th arrival (1-based) goes on iff its rank k
    # is within ceil(k/2): only the first (and the ones that tie) survive. Pure power laws (e=0), which LogLinear
    # forecasts exactly: a finished competitor's outcome and its forecast are then the same number.
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    states = [_run(study, *_power_curve(1.0 + i, c1=64.0, e=0.0))[1] for i in range(4)]
    assert states[0] == optuna.trial.TrialState.COMPLETE
    assert all(s == optuna.trial.TrialState.PRUNED for s in states[1:])
    # Improving trials: each newcomer is the best so far, so every one survives.
    study2 = _study(_pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1))
    states2 = [_run(study2, *_power_curve(5.0 - i, c1=64.0))[1] for i in range(4)]
    assert all(s == optuna.trial.TrialState.COMPLETE for s in states2)
    # Second arrival of three-way eta: rank 2 of 2 with ceil(2/3) = 1 is pruned; rank 2 of 3 with eta=1.5
    # (ceil(3/1.5) = 2) is promoted.
    study3 = _study(_pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1,
                                           reduction_factor=1.5))
    s3 = [_run(study3, *_power_curve(v, c1=64.0))[1] for v in (1.0, 3.0, 2.0)]
    assert s3[2] == optuna.trial.TrialState.COMPLETE


def test_min_improvement_stops_a_best_so_far_trial_that_would_not_improve_enough():
    # Each newcomer is the best so far (final losses 1.625, 1.5, 1.375, 1.25 at compute 64: about 8 % better
    # each), and the first three arrivals at every rung are promoted unranked. Without the rule all finish.
    def states(min_improvement):
        pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=3,
                         min_improvement=min_improvement)
        study = _study(pruner)
        return study, [_run(study, *_power_curve(5.0 - i, c1=64.0))[1] for i in range(4)]

    for asked in (None, 0.02):
        assert all(s == optuna.trial.TrialState.COMPLETE for s in states(asked)[1])
    # Asking for 30 %: the first trial has nothing to improve on; the others, startup or not, are stopped.
    study, got = states(0.3)
    assert got == [optuna.trial.TrialState.COMPLETE] + [optuna.trial.TrialState.PRUNED] * 3
    recs = [v for k, v in study.trials[1].system_attrs.items() if k.startswith("sh_scaling:rung:")]
    last = recs[-1]
    assert last["rule"] == "improvement" and not last["promoted"] and math.log(0.7) < last["observed_gap"] < 0
    assert "stopped by the improvement rule" in study.trials[1].user_attrs[DECISION_KEY]


def test_small_trials_about_to_finish_do_not_take_a_large_trials_slot():
    pruner = _pruner(LogLinear(), max_compute=lambda p: p["target"], min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    small_c = np.geomspace(1.0, 5.0, 6)
    for _ in range(3):  # much lower losses, but they end at 5, before the next rung (8)
        _run(study, small_c, 1.0 + small_c**-0.5, params={"target": 5.0})
    big_c = np.geomspace(1.0, 100.0, 12)
    number, state = _run(study, big_c, 3.0 + 2.0 * big_c**-0.3, params={"target": 100.0})
    rec = study.trials[number].system_attrs[rung_key(2)]
    assert rec["promoted"] and rec["n_competitors"] == 1
    # Among themselves, the small trials are ranked: the pool of each holds the others.
    assert study.trials[2].system_attrs[rung_key(2)]["n_competitors"] == 3


def test_trials_that_start_beyond_a_rung_compete_there_with_their_first_record():
    pruner = _pruner(LogLinear(), max_compute=lambda p: p["target"], min_compute=2.0, n_startup_trials=1)
    study = _study(pruner)
    big_c = np.geomspace(10.0, 1000.0, 12)  # first evaluation already beyond rungs 0-2
    _run(study, big_c, 1.0 + 3.0 * big_c**-0.3, params={"target": 1000.0})
    big = study.trials[0].system_attrs
    assert rung_key(1) not in big and big["sh_scaling:first_rung"] >= 4  # rungs at 2**k; it starts at 10
    small_c = np.geomspace(1.0, 40.0, 10)
    _, state = _run(study, small_c, 2.5 + 1.0 * small_c**-0.5, params={"target": 40.0})
    rec = study.trials[1].system_attrs[rung_key(1)]  # rung 1 at compute 2, 5 times below the big one's start
    assert rec["n_competitors"] == 2 and rec["rank"] == 2 and not rec["promoted"]
    assert state == optuna.trial.TrialState.PRUNED


def test_startup_trials_are_promoted_not_pruned():
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=3)
    study = _study(pruner)
    states = [_run(study, *_power_curve(1.0 + i, c1=64.0))[1] for i in range(4)]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert states[3] == optuna.trial.TrialState.PRUNED
    rec = study.trials[1].system_attrs[rung_key(2)]
    assert rec["promoted"] and rec["n_competitors"] == 2


def test_decisions_and_forecasts_are_stored_for_dashboard_and_samplers():
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    for i in range(3):
        _run(study, *_power_curve(1.0 + i, c1=64.0, e=0.0))
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned
    for t in pruned:
        assert isinstance(t.user_attrs[FORECAST_KEY], float)
        assert t.user_attrs[DECISION_KEY].startswith("pruned at rung")
        assert "forecast" in t.system_attrs[PRUNED_KEY]
        last = max(int(k.rsplit(":", 1)[1]) for k in t.system_attrs if k.startswith("sh_scaling:rung:"))
        rec = t.system_attrs[rung_key(last)]
        assert rec["promoted"] is False and rec["rank"] > rec["quota"]
        assert t.user_attrs[FORECAST_KEY] == pytest.approx(rec["forecast"])


def test_no_decision_before_decision_start():
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1, decision_start=0.2)
    study = _study(pruner)
    for i in range(3):
        _run(study, *_power_curve(1.0 + i, c1=64.0))
    decided = [int(k.rsplit(":", 1)[1]) for t in study.trials for k in t.system_attrs if k.startswith("sh_scaling:rung:")]
    assert decided and min(decided) == 4  # rungs 2 and 3 (at 4 and 8) lie below 0.2 * 64


def test_rung_factor_spaces_rungs_independently_of_the_quota():
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1, rung_factor=1.5,
                     reduction_factor=4)
    study = _study(pruner)
    _run(study, *_power_curve(1.0, c1=64.0, n=30))
    recs = {int(k.rsplit(":", 1)[1]): v for k, v in study.trials[0].system_attrs.items()
            if k.startswith("sh_scaling:rung:")}
    # Rungs at 1.5**k from min_compute=4 on: k=4 at 5.0625, k=5 at 7.59375.
    assert min(recs) == 4
    assert recs[4]["compute"] == pytest.approx(1.5**4) and recs[5]["compute"] == pytest.approx(1.5**5)


def test_trial_without_forecast_is_ranked_on_observed_loss_at_the_rung():
    pruner = _pruner(Broken(), max_compute=64.0, min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    _run(study, *_power_curve(3.0, c1=64.0))
    _run(study, *_power_curve(1.0, c1=64.0))  # lower loss at the same compute: promoted
    rec = study.trials[1].system_attrs[rung_key(2)]
    assert rec["ranking"] == "observed" and rec["promoted"] and rec["rank"] == 1


def test_no_rung_at_or_beyond_the_trials_target():
    pruner = _pruner(LogLinear(), max_compute=8.0, min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    for i in range(3):
        _run(study, *_power_curve(1.0 + i, c1=8.0))
    for t in study.trials:
        assert rung_key(3) not in t.system_attrs  # rung 3 sits at 8 = max_compute


def test_rung_grid_is_fixed_without_shared_state():
    pruner = _pruner(LogLinear(), max_compute=100.0, rung_factor=1.5)
    study = _study(pruner)
    c, l = _power_curve(1.0, c1=100.0)
    _run(study, c, l)
    assert study._storage.get_study_system_attrs(study._study_id) == {}
    recs = {int(k.rsplit(":", 1)[1]): v for k, v in study.trials[0].system_attrs.items()
            if k.startswith("sh_scaling:rung:")}
    assert recs and all(v["compute"] == pytest.approx(1.5**k) for k, v in recs.items())


def test_pruner_compute_fn_lets_plain_trial_report_work():
    pruner = _pruner(LogLinear(), max_compute=64.0, min_compute=4.0, n_startup_trials=1,
                                    compute_fn=lambda p, s: 2.0 ** (s / 2))
    study = _study(pruner)
    for i in range(3):
        c, l = _power_curve(1.0 + i, n=13, c1=64.0, e=0.0)
        _run(study, c, l, use_report=False)
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED
    assert rung_key(2) in study.trials[0].system_attrs


def test_frontier_score_keeps_the_small_model_that_owns_low_compute():
    # Rung at compute 1. Two big trials forecast 2.0 at 1000; the small one (target 10) forecasts 2.2 but
    # gets there at compute 10, where the big trials' paths are still higher.
    loss_r = np.array([3.0, 4.0, 4.0])
    target = np.array([10.0, 1000.0, 1000.0])
    mean = np.array([2.2, 2.0, 2.0])
    start = np.ones(3)
    everyone = np.ones(3, bool)
    scores = frontier_scores(start, loss_r, target, mean, np.zeros(3), optimism=None, at_risk=everyone)
    assert scores[0] < 0  # the small trial lowers the others' frontier somewhere
    assert np.argmin(scores) == 0
    # best_loss would rank it last
    assert np.argmax(mean) == 0
    # An observed point below everything (of a curve no longer competing) means nobody can lower the frontier.
    floor = (np.array([0.5]), np.array([1.5]), np.array([-1]))
    assert np.all(frontier_scores(start, loss_r, target, mean, np.zeros(3), optimism=None, at_risk=everyone,
                                  anchors=floor) > 0)


@pytest.mark.parametrize("objective, expected", [("frontier", "COMPLETE"), ("best_loss", "PRUNED")])
def test_frontier_objective_end_to_end(objective, expected):
    # A small model that owns the frontier at low compute: kept for the frontier, pruned for the best loss.
    pruner = _pruner(LogLinear(), max_compute=lambda p: p["target"], min_compute=2.0,
                                    n_startup_trials=1, objective=objective)
    study = _study(pruner)
    big_c = np.geomspace(1.0, 1000.0, 16)
    _run(study, big_c, 1.0 + 3.0 * big_c**-0.3, params={"target": 1000.0})
    small_c = np.geomspace(1.0, 10.0, 8)
    _, state = _run(study, small_c, 1.5 + 1.0 * small_c**-1.0, params={"target": 10.0})
    assert state.name == expected


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_prunes_with_reason(bad):
    study = _study(_pruner(LogLinear(), max_compute=64.0, min_compute=4.0))
    trial = study.ask()
    report(trial, 3.0, compute=1.0)
    assert not trial.should_prune()
    report(trial, bad, compute=2.0)
    assert trial.should_prune()
    assert "non-finite" in study.trials[0].system_attrs[PRUNED_KEY]
    assert trial.should_prune()  # stays pruned


def test_trial_without_compute_gets_one_clear_error():
    study = _study(_pruner(LogLinear(), max_compute=64.0))
    trial = study.ask()
    trial.report(3.0, 0)
    with pytest.raises(ValueError, match=r"no compute.*sh_scaling\.report\(trial, loss, compute="):
        trial.should_prune()


def test_failed_surrogate_fit_falls_back_and_is_recorded():
    pruner = _pruner(Broken(), max_compute=64.0, min_compute=4.0, n_startup_trials=1)
    study = _study(pruner)
    for i in range(3):
        _run(study, *_power_curve(1.0 + i, c1=64.0))
    rec = study.trials[1].system_attrs[rung_key(2)]
    assert rec["fallback"] is True and "did not converge" in rec["reason"]
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED  # observed ranking still works


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan])
def test_non_positive_max_compute(bad):
    with pytest.raises(ValueError, match="max_compute"):
        SurrogateHalvingPruner(LogLinear(), max_compute=bad)
    study = _study(_pruner(LogLinear(), max_compute=lambda p: bad, min_compute=1.0))
    trial = study.ask()
    report(trial, 3.0, compute=1.0)
    with pytest.raises(ValueError, match="max_compute"):
        trial.should_prune()


def test_missing_max_compute_and_per_trial_override():
    study = _study(_pruner(LogLinear(), min_compute=1.0))
    trial = study.ask()
    report(trial, 3.0, compute=1.0)
    with pytest.raises(ValueError, match="max_compute"):
        trial.should_prune()
    trial2 = study.ask()
    report(trial2, 3.0, compute=1.0, max_compute=50.0)
    assert trial2.should_prune() is False


def test_maximize_and_multi_objective_studies_are_refused():
    pruner = _pruner(LogLinear(), max_compute=10.0)
    study = _study(pruner, direction="maximize")
    trial = study.ask()
    report(trial, 3.0, compute=1.0)
    with pytest.raises(ValueError, match="maximize"):
        trial.should_prune()
    multi = optuna.create_study(directions=["minimize", "minimize"], pruner=pruner)
    with pytest.raises(ValueError, match="multi-objective"):
        pruner.prune(multi, multi.ask()._get_latest_trial())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"surrogate": "splines"}, "surrogate"),
        ({"surrogate": object()}, "surrogate protocol"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"n_startup_trials": -1}, "n_startup_trials"),
        ({"optimism": 0.9}, "optimism"),
        ({"objective": "area"}, "objective"),
        ({"min_compute": -1.0}, "min_compute"),
        ({"compute_fn": 3}, "compute_fn"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"rung_factor": 1.0}, "rung_factor"),
        ({"min_improvement": 1.0}, "min_improvement"),
        ({"min_improvement": -0.1}, "min_improvement"),
        ({"min_improvement": "a lot"}, "min_improvement"),
    ],
)
def test_constructor_validation(kwargs, match):
    kwargs = {"surrogate": LogLinear(), **kwargs}
    with pytest.raises(ValueError, match=match):
        SurrogateHalvingPruner(**kwargs)


def test_pruner_pickles_and_keeps_no_trial_state():
    import pickle

    pruner = SurrogateHalvingPruner("powerlaw", max_compute=64.0)
    study = _study(pruner)
    _run(study, *_power_curve(1.0, c1=64.0))
    clone = pickle.loads(pickle.dumps(pruner))
    assert clone._min_compute is None and not clone._warned
    # A fresh pruner object on the same storage continues the study: same decisions on a new trial.
    study.pruner = clone
    _run(study, *_power_curve(1.0, c1=64.0))
    a, b = (sorted(k for k in t.system_attrs if k.startswith("sh_scaling:rung:")) for t in study.trials)
    assert a == b and a


def test_threads_share_one_pruner():
    pruner = _pruner(LogLinear(), max_compute=64.0, n_startup_trials=2)

    def objective(trial):
        scale = trial.suggest_float("scale", 0.5, 5.0)
        # Pure power laws, which LogLinear forecasts exactly: worse trials are pruned whatever order the threads
        # interleave in (with an offset, LogLinear's forecasts are too optimistic to prune against outcomes).
        c, l = _power_curve(scale, c1=64.0, e=0.0)
        for ci, li in zip(c, l):
            report(trial, li, compute=ci)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(l[-1])

    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=24, n_jobs=4)
    states = [t.state for t in study.trials]
    assert len(states) == 24 and optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.FAIL not in states
    assert any(s == optuna.trial.TrialState.PRUNED for s in states)


# ---------------------------------------------------------------------------------------- property-based
_curve = st.lists(
    st.tuples(
        st.floats(0.01, 5.0),  # compute increment
        st.one_of(st.floats(0.05, 20.0), st.sampled_from([math.nan, math.inf])),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    curves=st.lists(_curve, min_size=1, max_size=5),
    order_seed=st.integers(0, 2**16),
    eta=st.sampled_from([1.5, 2, 3]),
    objective=st.sampled_from(["best_loss", "frontier"]),
    broken=st.booleans(),
    optimism=st.sampled_from([None, 0.2]),
)
def test_prune_never_raises_and_never_loses_a_report(curves, order_seed, eta, objective, broken, optimism):
    rng = np.random.default_rng(order_seed)
    pruner = _pruner(Broken() if broken else LogLinear(), max_compute=lambda p: p["target"],
                                    reduction_factor=eta, n_startup_trials=1, objective=objective,
                                    optimism=optimism)
    study = _study(pruner)
    for points in curves:
        compute = np.cumsum([p[0] for p in points])
        loss = [p[1] for p in points]
        trial = study.ask()
        trial.suggest_float("target", float(compute[-1] * rng.uniform(0.5, 3)), float(compute[-1] * 3))
        steps = rng.permutation(len(points))
        for s in steps:
            report(trial, loss[s], compute=float(compute[s]), step=int(s))
            trial.should_prune()  # must not raise
        frozen = study._storage.get_trial(trial._trial_id)
        assert sorted(frozen.intermediate_values) == list(range(len(points)))
        for s in range(len(points)):
            assert reported_compute(frozen)[s] == pytest.approx(compute[s])
            got = frozen.intermediate_values[s]
            assert got == loss[s] or (math.isnan(got) and math.isnan(loss[s]))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def test_multi_curve_surrogate_sees_other_trials():
    sizes = []

    class CountingMulti:
        """A multi-curve surrogate that records how many curves it was fitted on."""

        def fit_many(self, observations):
            sizes.append(len(observations))
            self.last = [float(np.min(l)) for _, l in observations]
            return self

        def predict_many(self, targets, return_std=False):
            means = [np.full(len(t), 0.9 * m) for t, m in zip(targets, self.last)]
            return (means, [np.zeros(len(t)) for t in targets]) if return_std else means

    study = _study(_pruner(CountingMulti(), max_compute=100.0, min_compute=3.0, n_startup_trials=1))
    for scale in (1.0, 2.0, 3.0):
        _run(study, *_power_curve(scale))
    assert sizes and sizes[0] == 1  # the first decision has no other trial yet
    assert max(sizes) == 3  # later decisions fit the deciding trial together with the two others


# ---------------------------------------------------------------------------------------------- calibrate=True
def test_calibration_reads_each_finished_forecast_against_its_outcome():
    from sh_scaling.halving import MIN_CALIBRATION_RESIDUALS
    from sh_scaling.keys import RUNG_PREFIX
    from sh_scaling.pruning._outcomes import forecast_residuals

    pruner = SurrogateHalvingPruner("powerlaw", max_compute=100.0, calibrate=True, decision_start=0.0,
                                    rung_factor=1.3)
    study = _study(pruner)
    rng = np.random.default_rng(0)
    for i in range(20):
        c, loss = _power_curve(2.0 - 0.05 * i, n=15)  # each better than the last: most finish
        _run(study, c, loss * np.exp(0.01 * rng.standard_normal(c.size)))
    expected = []
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        final = t.intermediate_values[max(t.intermediate_values)]
        for name, rec in t.system_attrs.items():
            if name.startswith(RUNG_PREFIX) and not rec["fallback"] and rec["std"]:
                expected.append((final - rec["forecast"]) / rec["std"])
    assert len(expected) >= MIN_CALIBRATION_RESIDUALS
    residuals = forecast_residuals([o for _, o in pruner._finished_trials(study)])
    assert sorted(residuals) == pytest.approx(sorted(expected))
    # Every decision says what calibration it used: none until enough forecasts had an outcome, then the
    # study's quantiles.
    records = [rec for t in study.trials for n, rec in sorted(t.system_attrs.items()) if n.startswith(RUNG_PREFIX)]
    assert all("calibration" in rec for rec in records if rec.get("ranking") != "observed")
    applied = [rec["calibration"] for rec in records if "shift" in rec.get("calibration", {})]
    assert applied and all(a["n"] >= MIN_CALIBRATION_RESIDUALS and a["scale"] > 0 for a in applied)
    assert any(rec["calibration"].get("applied") is False for rec in records if "calibration" in rec)


def test_calibration_leaves_trials_that_stopped_short_of_their_target_out():
    from sh_scaling.pruning._outcomes import forecast_residuals

    pruner = SurrogateHalvingPruner("powerlaw", max_compute=100.0, calibrate=True, decision_start=0.0)
    study = _study(pruner)
    c, loss = _power_curve(1.0, n=15)
    _run(study, c[:10], loss[:10])  # finished (COMPLETE) at compute < max_compute: no outcome at the target
    assert forecast_residuals([o for _, o in pruner._finished_trials(study)]).size == 0
    assert SurrogateHalvingPruner(calibrate=True).__getstate__()["_finished"] == {}


def test_calibration_holds_a_forecast_the_finished_trials_make_implausible():
    from sh_scaling.keys import RUNG_PREFIX

    class Wild:
        """A surrogate that forecasts half the last loss: a drop no finished trial ever made."""

        def fit(self, compute, loss):
            self.last_ = float(loss[-1])
            return self

        def predict(self, compute, return_std=False):
            mean = np.full(np.shape(compute), 0.5 * self.last_)
            return (mean, np.full(np.shape(compute), 0.01)) if return_std else mean

    honest = SurrogateHalvingPruner("powerlaw", max_compute=100.0, decision_start=0.0)
    study = _study(honest)
    for i in range(6):
        c, loss = _power_curve(1.0 - 0.01 * i, n=15)  # each better than the last (all finish); 16 % drop from 10 % to the end
        _run(study, c, loss)
    wild = SurrogateHalvingPruner(Wild(), max_compute=100.0, decision_start=0.0, calibrate=True)
    study.pruner = wild
    c, loss = _power_curve(0.9, n=15)
    _run(study, c[:8], loss[:8])
    trial = study.trials[-1]
    records = [rec for n, rec in trial.system_attrs.items() if n.startswith(RUNG_PREFIX)]
    held = [rec for rec in records if "implausible" in rec]
    assert held and all("finished trials dropped at most" in rec["implausible"] for rec in held)
    for rec in held:  # held at 1.5 x (in log loss) the finished trials' largest drop from that stage, not at half
        assert rec["forecast"] > 0.5 * rec["loss"] * 1.001
    # Without calibrate nothing is checked: the wild forecast is used as it is.
    study.pruner = SurrogateHalvingPruner(Wild(), max_compute=100.0, decision_start=0.0)
    _run(study, c[:8], loss[:8])
    plain = [rec for n, rec in study.trials[-1].system_attrs.items() if n.startswith(RUNG_PREFIX)]
    assert plain and all("implausible" not in rec for rec in plain)
    assert all(rec["forecast"] == pytest.approx(0.5 * rec["loss"], rel=0.05) for rec in plain if not rec["fallback"])


def test_rung_records_by_rung_index_in_compute_order():
    from sh_scaling.keys import RUNG_PREFIX, rung_key, rung_records

    attrs = {rung_key(3): {"compute": 3.4}, rung_key(-2): {"compute": 0.44}, rung_key(0): {"compute": 1.0},
             f"{RUNG_PREFIX}oops": {"compute": 9.0}, rung_key(5): "not a record", "other": {"compute": 2.0}}
    records = rung_records(attrs)
    assert list(records) == [-2, 0, 3] and [r["compute"] for r in records.values()] == [0.44, 1.0, 3.4]
