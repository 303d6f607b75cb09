"""The pruner with learning-rate schedules: stated per trial, checked against reported rates, forecast by the
multi-power law."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from sh_scaling.keys import SCHEDULE_KEY, SCHEDULE_NOTE_KEY, SCHEDULE_WARNING_KEY, RUNG_PREFIX
from sh_scaling.pruning import SurrogateHalvingPruner, report, reported_compute, reported_lr
from sh_scaling.schedules import LUO_2025, WSD, Constant, Cosine, multi_power_law

MAX = 10_000.0
COSINE = Cosine(peak_lr=3e-4, warmup=0.09, final_ratio=0.1)


def _curve(schedule, upto=0.3, n=60, size="100M"):
    f = np.linspace(0.01, upto, n)
    return f * MAX, multi_power_law(f, schedule, LUO_2025[size], run_length=24_000)


def _study(**kwargs):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruner = SurrogateHalvingPruner(max_compute=MAX, n_startup_trials=5, **kwargs)
    return optuna.create_study(direction="minimize", pruner=pruner)


def _run(study, compute, loss, lrs=None, params=None):
    if params:
        study.enqueue_trial(params)
    trial = study.ask()
    for name in params or {}:
        trial.suggest_categorical(name, ["cosine", "constant"])
    for i, (c, l) in enumerate(zip(compute, loss)):
        report(trial, float(l), compute=float(c), lr=None if lrs is None else float(lrs[i]))
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return study.trials[-1]
    study.tell(trial, float(loss[-1]))
    return study.trials[-1]


def _records(trial):
    return [v for k, v in sorted(trial.system_attrs.items()) if k.startswith(RUNG_PREFIX)]


def test_bad_schedules_are_errors_at_construction():
    with pytest.raises(ValueError, match="final_ratio"):
        SurrogateHalvingPruner(max_compute=MAX, schedule={"kind": "cosine", "final_ratio": -1})
    with pytest.raises(ValueError, match="unknown schedule kind"):
        SurrogateHalvingPruner(max_compute=MAX, schedule={"kind": "sawtooth"})
    with pytest.raises(ValueError, match="schedule=3"):
        SurrogateHalvingPruner(max_compute=MAX, schedule=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"schedule\(params\)"):
        SurrogateHalvingPruner(max_compute=MAX, schedule=lambda p, q: COSINE)  # type: ignore[arg-type]


def test_schedule_is_stored_once_per_trial_and_a_cosine_run_is_forecast_to_drop():
    compute, loss = _curve(COSINE)
    truth = float(multi_power_law(1.0, COSINE, LUO_2025["100M"], run_length=24_000))
    aware = _run(_study(schedule=COSINE), compute, loss)
    blind = _run(_study(), compute, loss)
    assert aware.system_attrs[SCHEDULE_KEY] == COSINE.to_dict()
    assert SCHEDULE_KEY not in blind.system_attrs
    last_aware, last_blind = _records(aware)[-1], _records(blind)[-1]
    assert last_aware["surrogate"] == "multipower" and last_aware["schedule"] == "cosine"
    assert "surrogate" not in last_blind  # no schedule: today's forecast, unchanged
    # From 30 % of a cosine run the law that knows the decay is within 1 % of the final loss; the power law in
    # compute, which sees a still-hot run, is further off.
    assert abs(last_aware["forecast"] / truth - 1) < 0.01
    assert abs(last_blind["forecast"] / truth - 1) > abs(last_aware["forecast"] / truth - 1)


def test_schedule_from_params_differs_per_trial():
    study = _study(schedule=lambda p: COSINE if p["kind"] == "cosine" else {"kind": "constant", "warmup": 0.09})
    compute, loss = _curve(COSINE, n=10)
    a = _run(study, compute, loss, params={"kind": "cosine"})
    b = _run(study, compute, loss, params={"kind": "constant"})
    assert a.system_attrs[SCHEDULE_KEY] == COSINE.to_dict()
    assert b.system_attrs[SCHEDULE_KEY] == Constant(warmup=0.09).to_dict()


@pytest.mark.parametrize(
    "fn",
    [
        lambda p: 1 / 0,
        lambda p: (lambda f: -1.0),  # a function of the fraction returning negative rates
        lambda p: (lambda f: float("nan")),
        lambda p: "cosine",
    ],
)
def test_a_failing_schedule_function_is_a_recorded_fallback(fn):
    study = _study(schedule=fn)
    compute, loss = _curve(COSINE)
    with pytest.warns(UserWarning, match="no valid schedule"):
        t = _run(study, compute, loss)
    assert t.system_attrs[SCHEDULE_KEY] is None
    assert "no valid schedule" in t.system_attrs[SCHEDULE_NOTE_KEY]
    assert "no valid schedule" in study._storage.get_study_system_attrs(study._study_id)[SCHEDULE_WARNING_KEY]
    assert all("surrogate" not in r for r in _records(t))  # forecast as without a schedule


def test_reported_lr_of_another_shape_warns_once_and_the_reports_are_trusted():
    study = _study(schedule=COSINE)
    compute, loss = _curve(COSINE)
    wrong = 3e-4 * (0.05 + compute / MAX)  # rising all the way: another shape, whatever the unit or the length
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = _run(study, compute, loss, lrs=wrong)
        b = _run(study, compute, loss, lrs=wrong)
    mine = [w for w in caught if "disagree" in str(w.message)]
    assert len(mine) == 1
    assert "disagree" in study._storage.get_study_system_attrs(study._study_id)[SCHEDULE_WARNING_KEY]
    for t in (a, b):
        assert "disagree" in t.system_attrs[SCHEDULE_NOTE_KEY]
        rec = _records(t)[-1]
        assert rec["surrogate"] == "multipower" and "trusted" in rec["schedule"]


@pytest.mark.parametrize("unit", [1 / 3e-4, 3.0, 1e-3])
def test_reported_lr_in_another_unit_is_no_disagreement(unit):
    """A schedule is a shape: ``Cosine()`` states a peak of 1, a training loop reports rates such as 3e-4."""
    study = _study(schedule=COSINE)
    compute, loss = _curve(COSINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = _run(study, compute, loss, lrs=unit * COSINE(compute / MAX))
    assert SCHEDULE_NOTE_KEY not in t.system_attrs
    assert {r["schedule"] for r in _records(t)} == {"cosine"}


def test_reported_lr_on_a_stretched_run_names_max_compute():
    """Rates that follow the stated shape on a run 1.6 x longer than max_compute says: the message names
    max_compute (a planned compute counting other parameters), not the schedule."""
    from sh_scaling.pruning._trial_schedules import lr_disagreement

    f = np.linspace(0.01, 0.95, 40)
    why = lr_disagreement(COSINE, f, 7.0 * COSINE(f / 1.6))
    assert why is not None and "max_compute" in why and "1.6" in why
    # And a shape the stretch cannot explain is not blamed on max_compute.
    assert "max_compute" not in lr_disagreement(COSINE, f, Constant(peak_lr=3e-4)(f))


def test_reported_lr_that_agrees_with_the_schedule_is_silent():
    study = _study(schedule=COSINE)
    compute, loss = _curve(COSINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = _run(study, compute, loss, lrs=1.5 * COSINE(compute / MAX))  # within the factor of 2
    assert SCHEDULE_NOTE_KEY not in t.system_attrs
    assert _records(t)[-1]["schedule"] == "cosine"


def test_reported_lr_without_a_schedule_is_used_and_recorded():
    wsd = WSD(peak_lr=3e-4, warmup=0.09, decay_start=0.8)
    compute, loss = _curve(wsd)
    study = _study()
    t = _run(study, compute, loss, lrs=wsd(compute / MAX))
    assert "without a schedule" in t.system_attrs[SCHEDULE_NOTE_KEY]
    rec = _records(t)[-1]
    assert rec["surrogate"] == "multipower" and "held at the latest" in rec["schedule"]
    assert SCHEDULE_WARNING_KEY not in study._storage.get_study_system_attrs(study._study_id)


def test_report_stores_lr_with_the_compute():
    study = _study()
    trial = study.ask()
    report(trial, 3.0, compute=10.0, lr=3e-4)
    report(trial, 2.9, compute=20.0)
    report(trial, 2.8, compute=30.0, lr=1e-4)
    frozen = study._storage.get_trial(trial._trial_id)
    assert reported_compute(frozen) == {0: 10.0, 1: 20.0, 2: 30.0}
    assert reported_lr(frozen) == {0: 3e-4, 2: 1e-4}


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf"), "fast", True])
def test_report_rejects_a_bad_lr(bad):
    study = _study()
    trial = study.ask()
    with pytest.raises(ValueError, match="lr"):
        report(trial, 3.0, compute=10.0, lr=bad)
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {}


# --- families ------------------------------------------------------------------------------------------------


def _family_study(**kwargs):
    return _study(schedule=lambda p: COSINE, family=lambda p: p["kind"], **kwargs)


def _long_and_short(size="100M"):
    """A short cosine run (a third of the long one's length) finished, and the first 30 % of a long one."""
    f_short = np.linspace(0.03, 1.0, 60)
    short = multi_power_law(f_short, COSINE, LUO_2025[size], run_length=8_000)
    f_long = np.linspace(0.01, 0.3, 60)
    long = multi_power_law(f_long, COSINE, LUO_2025[size], run_length=24_000)
    return f_short * MAX / 3, short, f_long * MAX, long


def _run_with_max(study, compute, loss, kind, max_compute):
    study.enqueue_trial({"kind": kind})
    trial = study.ask()
    trial.suggest_categorical("kind", ["cosine", "constant"])
    for c, l in zip(compute, loss):
        report(trial, float(l), compute=float(c), max_compute=max_compute)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return study.trials[-1]
    study.tell(trial, float(loss[-1]))
    return study.trials[-1]


def test_bad_family_is_an_error_at_construction():
    with pytest.raises(ValueError, match="family"):
        SurrogateHalvingPruner(max_compute=MAX, family=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"family\(params\)"):
        SurrogateHalvingPruner(max_compute=MAX, family=lambda p, q: 1)  # type: ignore[arg-type]


def test_a_family_of_one_falls_back_to_the_trials_own_fit():
    study = _family_study()
    c_short, short, c_long, long = _long_and_short()
    t = _run_with_max(study, c_long, long, "cosine", MAX)
    rec = _records(t)[-1]
    assert rec["family_size"] == 1 and "family of one" in rec["family_fallback"]
    assert rec["surrogate"] == "multipower" and not rec["fallback"]


def test_a_long_run_is_fitted_jointly_with_its_familys_finished_short_run():
    study = _family_study()
    c_short, short, c_long, long = _long_and_short()
    _run_with_max(study, c_short, short, "cosine", MAX / 3)
    t = _run_with_max(study, c_long, long, "cosine", MAX)
    rec = _records(t)[-1]
    assert rec["family"] == "cosine" and rec["family_size"] == 2 and "family_fallback" not in rec
    truth = float(multi_power_law(1.0, COSINE, LUO_2025["100M"], run_length=24_000))
    assert abs(rec["forecast"] / truth - 1) < 0.01
    # Another family's runs are not borrowed from.
    other = _run_with_max(study, c_long, long, "constant", MAX)
    assert _records(other)[-1]["family_size"] == 1


def test_a_family_whose_runs_disagree_wildly_falls_back():
    study = _family_study()
    c_short, short, c_long, long = _long_and_short()
    _run_with_max(study, c_short, 1.6 * short, "cosine", MAX / 3)  # not the same model at all
    t = _run_with_max(study, c_long, long, "cosine", MAX)
    rec = _records(t)[-1]
    assert rec["family_size"] == 2 and "misses the trial's own points" in rec["family_fallback"]
    assert rec["family_miss"] > 0.02
    truth = float(multi_power_law(1.0, COSINE, LUO_2025["100M"], run_length=24_000))
    assert abs(rec["forecast"] / truth - 1) < 0.02  # the trial's own fit, unharmed by the other run


def test_a_family_function_that_raises_is_a_recorded_fallback():
    study = _study(schedule=COSINE, family=lambda p: p["missing"])
    c_short, short, c_long, long = _long_and_short()
    t = _run(study, c_long, long)
    rec = _records(t)[-1]
    assert "family(params) raised KeyError" in rec["family_fallback"] and not rec["fallback"]


def test_with_auto_the_improvement_rule_stops_a_schedule_aware_repeat_of_a_finished_run():
    # A second run 1 % worse than a finished one cannot improve on it by the 1 % that "auto" asks of trials
    # forecast under a stated schedule, even with the stage margin its forecast is given (3.8 % of the loss early
    # in a run, under 1.5 % past a fifth of it): stopped, although startup would promote it. The default (no rule),
    # the power-law pruner (no schedule) and rates reported without a stated schedule (whose future is a guess)
    # apply no such rule.
    compute, loss = _curve(COSINE, upto=1.0, n=60)
    lrs = COSINE(compute / MAX)
    auto = {"min_improvement": "auto"}
    for kwargs, with_lr, stopped in (({"schedule": COSINE, **auto}, False, True),
                                     ({"schedule": COSINE}, False, False),
                                     (auto, False, False), (auto, True, False)):
        study = _study(**kwargs)
        first = _run(study, compute, loss, lrs=lrs if with_lr else None)
        second = _run(study, compute, loss * 1.01, lrs=lrs if with_lr else None)
        if with_lr:
            assert max(_records(second), key=lambda rec: rec["compute"])["surrogate"] == "multipower"
        assert first.state == optuna.trial.TrialState.COMPLETE
        last = max(_records(second), key=lambda rec: rec["compute"])
        if stopped:
            assert second.state == optuna.trial.TrialState.PRUNED
            assert last["rule"] == "improvement" and last["observed_gap"] > np.log(0.99) and last["margin"] > 0
        else:
            assert second.state == optuna.trial.TrialState.COMPLETE
            assert all("observed_gap" not in rec for rec in _records(second))


@pytest.mark.parametrize("floor", [True, False])
def test_a_schedule_aware_forecast_records_its_floor_from_the_trials_own_power_law(floor):
    from sh_scaling.halving import STAGE_MARGINS, at_stage

    margin = {"coverage": 0.9, **STAGE_MARGINS[0.9], "floor": floor}
    study = _study(schedule=COSINE, margin=margin)
    trial = _run(study, *_curve(COSINE, upto=0.3))
    recs = [r for r in _records(trial) if r.get("rule") is not None and not r["fallback"]]
    assert recs and all(r["surrogate"] == "multipower" for r in recs)
    for rec in recs:
        if not floor:
            assert "floor" not in rec and "forecast_own" not in rec
            continue
        assert np.isfinite(rec["forecast_own"]) and rec["forecast_own"] > 0
        expected = rec["forecast_own"] * np.exp(-at_stage(STAGE_MARGINS[0.9]["own"], rec["compute"] / MAX))
        assert rec["floor"] == pytest.approx(min(float(expected), rec["loss"]))
