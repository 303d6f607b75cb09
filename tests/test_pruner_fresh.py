"""Decisions on what is known now (competitors scored by their freshest estimate), the stage error model's
margin in the pruner, and the review's defects in the pruner's input handling."""

from __future__ import annotations

import functools
import math
import time
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sh_scaling.curves import generate_synthetic
from sh_scaling.keys import DECISION_KEY, SCHEDULE_KEY, rung_key, rung_records
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.pruning._competitors import Finished, RungSummary, competitors_at, freshest
from sh_scaling.simulation import PrunerSpec, replay_study

from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _pruner(**kwargs):
    """Hand-checkable settings: rungs a factor 2 apart, the forecast mean at the target, no stage margin."""
    for key, value in {"decision_start": 0.0, "reduction_factor": 2, "rung_factor": None, "min_compute": 4.0,
                       "objective": "best_loss", "optimism": None, "margin": None, "n_startup_trials": 1}.items():
        kwargs.setdefault(key, value)
    return SurrogateHalvingPruner(LogLinear(), max_compute=64.0, **kwargs)


def _run(study, compute, loss):
    trial = study.ask()
    for c, l in zip(compute, loss):
        report(trial, float(l), compute=float(c))
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return trial.number, optuna.trial.TrialState.PRUNED
    study.tell(trial, float(loss[-1]))
    return trial.number, optuna.trial.TrialState.COMPLETE


C = np.geomspace(1.0, 64.0, 13)
# A run that follows c^-0.5 to compute 8 and then stops improving: at rung 4 (compute 4) a log-log line through
# its points forecasts 64^-0.5 = 0.125 at the end; it ends at 8^-0.5 = 0.354.
STALLS = np.where(C <= 8.0, C**-0.5, 8.0**-0.5)
# A run twice as high all along (worse at every compute seen early) that ends at 2 * 64^-0.5 = 0.25: better than
# the first run's outcome, worse than the first run's forecast at rung 4.
STEADY = 2.0 * C**-0.5
# A run on a plateau to compute 16 that then drops to 0.5 at 64: forecasts from its plateau miss by far.
PLATEAU_THEN_DROP = np.where(C <= 16.0, 3.0 * C**-0.1, 0.5 * (C / 64.0) ** -0.5)
# A stage error model whose tables say forecasts never miss (margins and median errors of 0).
NEVER_MISSES = {"coverage": 0.9, "own": (0.0,) * 5, "multipower": (0.0,) * 5}


def test_a_finished_competitor_is_scored_by_its_outcome_not_its_forecast_at_the_rung():
    study = optuna.create_study(pruner=_pruner())
    assert _run(study, C, STALLS)[1] == optuna.trial.TrialState.COMPLETE  # alone: promoted at every rung
    first = study.trials[0].system_attrs[rung_key(2)]
    assert first["forecast"] == pytest.approx(0.125, rel=1e-6)  # what it promised at rung 2 (compute 4)
    number, state = _run(study, C, STEADY)
    rec = study.trials[number].system_attrs[rung_key(2)]
    # Its forecast 0.25 loses to the promise 0.125, but beats the outcome 0.354: it goes on, ranked first.
    assert rec["forecast"] == pytest.approx(0.25, rel=1e-6)
    assert rec["promoted"] and rec["rank"] == 1
    assert state == optuna.trial.TrialState.COMPLETE


def test_a_running_competitor_is_scored_by_its_latest_forecast():
    study = optuna.create_study(pruner=_pruner())
    # The first trial runs to compute 16 and stays RUNNING: its forecast at rung 4 (compute 16) has seen the
    # stall and is higher than the one it made at rung 2.
    first = study.ask()
    for c, l in zip(C, STALLS):
        if c > 16.0:
            break
        report(first, float(l), compute=float(c))
        assert not first.should_prune()
    recs = {k: study.trials[0].system_attrs[rung_key(k)] for k in (2, 3, 4)}
    # The second run ends at 0.15: below what the first now forecasts, above what it promised at rung 2.
    assert recs[4]["forecast"] > 0.15 > recs[2]["forecast"]
    number, state = _run(study, C, 1.2 * C**-0.5)
    assert study.trials[number].system_attrs[rung_key(2)]["rank"] == 1
    assert state == optuna.trial.TrialState.COMPLETE


@settings(max_examples=60, deadline=None)
@given(
    at_rung=st.floats(0.5, 5.0), later=st.lists(st.floats(0.5, 5.0), max_size=4), outcome=st.floats(0.5, 5.0),
    k=st.integers(0, 3),
)
def test_a_finished_trials_score_never_depends_on_when_it_passed_the_rung(at_rung, later, outcome, k):
    records = {k: {"compute": 2.0**k, "loss": 3.0, "target": 64.0, "forecast": at_rung, "std": 0.1,
                   "fallback": False}}
    for j, value in enumerate(later, start=k + 1):
        records[j] = {"compute": 2.0**j, "loss": 2.0, "target": 64.0, "forecast": value, "std": 0.1,
                      "fallback": False}
    summary = RungSummary(records, k, [], [])
    fresh = freshest(records[k], k, summary, outcome)
    assert fresh["forecast"] == outcome and fresh["std"] == 0.0 and fresh["fresh"] == "outcome"
    # The comparison point stays the rung's.
    assert (fresh["compute"], fresh["loss"], fresh["target"]) == (2.0**k, 3.0, 64.0)
    # Without an outcome: the latest model forecast (from the highest rung), or the rung's own.
    running = freshest(records[k], k, summary, None)
    assert running["forecast"] == (later[-1] if later else at_rung)


@pytest.mark.parametrize("outcome", [2.25, None])
def test_a_finished_trial_competes_as_freshest_scores_it_at_every_rung_asked_again(outcome):
    records = {j: {"compute": 2.0**j, "loss": 3.0 - 0.1 * j, "target": 64.0, "forecast": 2.5 - 0.05 * j, "std": 0.1,
                   "fallback": False} for j in (2, 3, 5)}
    summary = RungSummary(records, 2, [4.0, 8.0, 32.0], [2.8, 2.7, 2.5])
    info = Finished(summary, (64.0, 2.2), outcome)
    for k in (2, 3, 1, 4, 5, 6, 2, 1, 4):  # scored once per rung: the second time must give the same
        got = info.competitor_at(k)
        rec = records.get(k, records[2] if k < 2 else None)
        assert got == (None if rec is None else freshest(rec, k, summary, outcome))
        if got is not None:  # a new dict each time: a caller's change does not reach the next decision
            got["forecast"] = -1.0
            assert info.competitor_at(k)["forecast"] != -1.0


def test_fallback_records_are_not_taken_as_a_fresher_forecast():
    records = {
        1: {"compute": 2.0, "loss": 3.0, "target": 64.0, "forecast": 2.0, "std": 0.1, "fallback": False},
        2: {"compute": 4.0, "loss": 2.5, "target": 64.0, "forecast": 2.5, "std": 0.0, "fallback": True},
    }
    summary = RungSummary(records, 1, [], [])
    assert freshest(records[1], 1, summary, None)["forecast"] == 2.0
    assert summary.latest_forecast() == (1, records[1])


# ---------------------------------------------------------------------------------------------- stage margin
def test_the_margin_keeps_an_early_trial_whose_forecast_alone_would_lose():
    # The second trial's forecast (0.25 at the end) loses to the first trial's outcome (0.23 at the end) by 8 %
    # of the loss; at rung 2 (6 % of the run) the margin is larger than that and gives it the benefit of the doubt.
    finished = 0.23 * (C / 64.0) ** -0.5
    plain = optuna.create_study(pruner=_pruner())
    _run(plain, C, finished)
    assert _run(plain, C, STEADY)[1] == optuna.trial.TrialState.PRUNED
    widened = optuna.create_study(pruner=_pruner(margin="stage"))
    _run(widened, C, finished)
    number, _ = _run(widened, C, STEADY)
    rec = widened.trials[number].system_attrs[rung_key(2)]
    assert rec["margin"] > math.log(0.25 / 0.23) and rec["margin_info"]["kind"] == "own"
    assert rec["promoted"]
    text = widened.trials[number].user_attrs[DECISION_KEY]
    assert "margin down to" in text


def test_the_margin_learns_from_the_study_own_outcomes():
    """Finished trials whose forecasts were right (pure power laws, forecast exactly by LogLinear) pull the
    margin at their stages below the development table's."""
    from sh_scaling.halving import MARGIN_COVERAGE, STAGE_MARGINS, STAGE_NODES, stage_margin

    study = optuna.create_study(pruner=_pruner(margin="stage", n_startup_trials=100))
    for i in range(12):
        _run(study, C, (1.0 + 0.01 * i) * C**-0.5)
    last = study.trials[-1].system_attrs
    rec = last[rung_key(2)]
    table = STAGE_MARGINS[MARGIN_COVERAGE]
    prior, _ = stage_margin(rec["compute"] / rec["target"], table["own"], coverage=0.9, prior_weight=10)
    assert rec["margin_info"]["n"] >= 10 and rec["margin_info"]["study"] == pytest.approx(0.0, abs=1e-9)
    assert rec["margin"] < 0.5 * prior
    assert len(STAGE_NODES) == len(table["own"]) == len(table["multipower"])


def test_a_study_whose_forecasts_missed_by_more_than_the_table_is_believed_at_once():
    """Runs that sit on a plateau and then drop: a finished one, forecast at 6 % of its run from its plateau,
    ended 4x lower than forecast. A second like it, a little lower on its plateau, is its equal on what the
    first taught; a table that says forecasts never miss (margins of 0) outweighs that lesson unless the study's
    wider misses are believed whole."""
    lower_plateau = np.where(C <= 16.0, 2.9 * C**-0.1, 0.45 * (C / 64.0) ** -0.5)
    states = {}
    for widen in (False, True):
        study = optuna.create_study(pruner=_pruner(margin={**NEVER_MISSES, "widen": widen}))
        _run(study, C, PLATEAU_THEN_DROP)
        number, states[widen] = _run(study, C, lower_plateau)
        rec = study.trials[number].system_attrs[rung_key(2)]
        assert rec["margin_info"]["study"] > math.log(3.0 * 64**-0.1 / 0.5) - 0.05  # the miss it learned
        assert ("widened" in rec["margin_info"]) == widen
    assert states == {False: optuna.trial.TrialState.PRUNED, True: optuna.trial.TrialState.COMPLETE}
    text = study.trials[number].user_attrs[DECISION_KEY]
    assert "the largest miss of this study's own forecasts near that stage" in text


def test_a_miss_a_running_trial_has_already_proven_widens_the_margin_of_the_next_decision():
    """Two trials at once: the first, forecast from its plateau at rung 2 (1.98 at the end), has since reached
    0.707 at compute 32 while still running; the second, decided at the same stage before anything has
    finished, is given that proven miss as its margin when ``proven`` is on, and the table's (0) when off."""
    for proven in (False, True):
        study = optuna.create_study(pruner=_pruner(margin={**NEVER_MISSES, "proven": proven}))
        first = study.ask()
        for c, l in zip(C[C < 33], PLATEAU_THEN_DROP[C < 33]):
            report(first, float(l), compute=float(c))
            assert not first.should_prune()
        promised = study.trials[0].system_attrs[rung_key(2)]["forecast"]
        second = study.ask()
        for c in C[C < 5]:
            report(second, float(3.2 * c**-0.1), compute=float(c))
            second.should_prune()
        rec = study.trials[1].system_attrs[rung_key(2)]
        assert study.trials[0].state == optuna.trial.TrialState.RUNNING
        if proven:
            assert rec["margin"] == pytest.approx(math.log(promised / (0.5 * 2**0.5)))
            assert rec["margin_info"]["widened"] == 1.0 and rec["margin_info"]["n_proven"] >= 1
            assert "the largest miss of this study's own forecasts" in study.trials[1].user_attrs[DECISION_KEY]
        else:
            assert rec["margin"] == 0.0 and "proven" not in rec["margin_info"]
        study.tell(first, float(PLATEAU_THEN_DROP[-1]))
        study.tell(second, state=optuna.trial.TrialState.PRUNED)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [{"kind": "no-such-kind"}, {"kind": ["cosine"]}, {"kind": {"a": 1}},
                                 {"kind": "cosine", "warmup": [0.1]}, ["cosine"], "cosine", 3])
def test_an_unreadable_stored_schedule_is_ignored_not_raised(bad):
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=100.0))
    t = study.ask()
    study._storage.set_trial_system_attr(t._trial_id, SCHEDULE_KEY, bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, 11):
            report(t, 3 + 10 / k, compute=10.0 * k)
            t.should_prune()  # never raises
    study.tell(t, 3.0)
    from sh_scaling.curves import from_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(from_study(study)) == 1


@pytest.mark.parametrize("schedule", [{"kind": ["cosine"]}, {"kind": "cosine", "final_ratio": "x"}])
def test_the_constructor_rejects_a_bad_schedule_description_with_a_value_error(schedule):
    with pytest.raises(ValueError, match="schedule="):
        SurrogateHalvingPruner(max_compute=1.0, schedule=schedule)


@pytest.mark.parametrize("kwargs", [{"rung_factor": 1.00001}, {"rung_factor": 1.05},
                                    {"rung_factor": None, "reduction_factor": 1.01}])
def test_rungs_closer_than_the_bound_are_refused(kwargs):
    with pytest.raises(ValueError, match="1.1"):
        SurrogateHalvingPruner(max_compute=1.0, **kwargs)


def test_at_the_bound_a_report_costs_a_handful_of_decisions():
    study = optuna.create_study(pruner=SurrogateHalvingPruner(max_compute=1e22, rung_factor=1.1))
    t = study.ask()
    start = time.perf_counter()
    for k in range(1, 21):
        report(t, 2 + 10 * (1e18 * 1.4**k) ** -0.1, compute=1e18 * 1.4**k)
        t.should_prune()
    assert time.perf_counter() - start < 60  # 165 s at 1.00001 before the bound
    records = [k for k in study.trials[0].system_attrs if k.startswith("sh_scaling:rung:")]
    assert len(records) <= math.ceil(math.log(1.4**20 / 0.05 ** 0) / math.log(1.1))


@pytest.mark.parametrize("margin", ["wide", 0.7, 1.5, {"coverage": 0.9, "own": (0.1,) * 5},
                                    {"coverage": 2, "own": (0.1,) * 5, "multipower": (0.0,) * 5},
                                    {"coverage": 0.9, "own": (0.1,) * 4, "multipower": (0.0,) * 5},
                                    {"coverage": 0.9, "own": (-0.1,) * 5, "multipower": (0.0,) * 5},
                                    {"coverage": 0.9, "own": (0.1,) * 5, "multipower": (0.0,) * 5, "widen": 1},
                                    {"coverage": 0.9, "own": (0.1,) * 5, "multipower": (0.0,) * 5, "proven": "yes"}])
def test_margin_setting_is_checked(margin):
    with pytest.raises(ValueError, match="margin"):
        SurrogateHalvingPruner(max_compute=1.0, margin=margin)


def test_a_margin_table_of_ones_own_is_used():
    """A table measured on a user's own past sweeps (``stage_forecast_errors``) replaces the shipped one."""
    table = {"coverage": 0.9, "own": (0.5, 0.5, 0.5, 0.5, 0.5), "multipower": (0.0,) * 5}
    study = optuna.create_study(pruner=_pruner(margin=table))
    _run(study, C, 0.23 * (C / 64.0) ** -0.5)
    number, _ = _run(study, C, STEADY)
    rec = study.trials[number].system_attrs[rung_key(2)]
    assert rec["margin_info"]["prior"] == pytest.approx(0.5) and rec["promoted"]


def test_a_running_competitor_is_read_at_its_stage_median_error_and_an_outcome_is_not():
    bias = {"coverage": 0.9, "own": (0.0,) * 5, "multipower": (0.0,) * 5,
            "own_bias": (-0.5, -0.5, -0.5, -0.5, -0.5), "multipower_bias": (0.0,) * 5}
    pruner = _pruner(margin=bias)
    rec = {"compute": 4.0, "loss": 1.0, "target": 64.0, "forecast": 2.0, "std": 0.1, "fallback": False,
           "forecast_stage": 0.0625, "forecast_kind": "own"}
    done = {**rec, "forecast": 1.5, "std": 0.0, "fresh": "outcome"}
    shifted, kept = pruner._debiased([rec, done], lambda kind: (np.empty(0), np.empty(0)))
    assert shifted["forecast"] == pytest.approx(2.0 * math.exp(-0.5)) and shifted["debiased"] == -0.5
    assert kept == done


# --------------------------------------------------------------------------- the floor of schedule-aware forecasts
def test_a_competitor_forecast_below_its_floor_is_read_at_the_floor():
    rec = {"compute": 4.0, "loss": 3.0, "target": 64.0, "forecast": 0.9, "std": 0.1, "fallback": False,
           "surrogate": "multipower", "forecast_own": 2.5, "floor": 2.0}
    summary = RungSummary({2: rec}, 2, [], [])
    read = freshest(rec, 2, summary, None)
    assert read["forecast"] == 2.0 and read["floored"] == 0.9
    # Above its floor a forecast stands; an outcome is an outcome whatever the floor said.
    above = {**rec, "forecast": 2.2}
    assert freshest(above, 2, RungSummary({2: above}, 2, [], []), None)["forecast"] == 2.2
    assert freshest(rec, 2, summary, 1.5)["forecast"] == 1.5
    # The floor of the latest forecast is the one that applies.
    later = {**rec, "compute": 16.0, "loss": 2.6, "forecast": 1.0, "floor": 2.4}
    both = RungSummary({2: rec, 4: later}, 2, [], [])
    assert freshest(rec, 2, both, None)["forecast"] == 2.4


def test_a_trial_is_not_ranked_out_by_a_competitor_forecast_below_its_floor():
    """The first trial's rung record at compute 4 says it will end at 0.05 (far below anything), with a floor of
    1.0 or none; the second, forecast at 0.25, is ranked out by the bare forecast and first against the floor."""
    zero = {"coverage": 0.9, "own": (0.0,) * 5, "multipower": (0.0,) * 5}
    states = {}
    for floor in (None, 1.0):
        study = optuna.create_study(pruner=_pruner(margin=zero))
        first = study.ask()
        for c, l in zip(C[C <= 4.0], STEADY[C <= 4.0]):
            report(first, float(l), compute=float(c))
            first.should_prune()
        rec = dict(study.trials[0].system_attrs[rung_key(2)])
        rec.update(forecast=0.05, surrogate="multipower")
        if floor is not None:
            rec.update(forecast_own=1.2, floor=floor)
        study._storage.set_trial_system_attr(first._trial_id, rung_key(2), rec)
        number, states[floor] = _run(study, C, STEADY)
        decided = study.trials[number].system_attrs[rung_key(2)]
        assert decided["rank"] == (2 if floor is None else 1)
        study.tell(first, state=optuna.trial.TrialState.PRUNED)
    assert states == {None: optuna.trial.TrialState.PRUNED, 1.0: optuna.trial.TrialState.COMPLETE}


@pytest.mark.parametrize("floor", [1, "yes", None])
def test_the_floor_setting_is_checked(floor):
    with pytest.raises(ValueError, match="'floor' must be True or False"):
        SurrogateHalvingPruner(max_compute=1.0, margin={"coverage": 0.9, "own": (0.1,) * 5,
                                                        "multipower": (0.0,) * 5, "floor": floor})


def _running_to_compute_4(pending: bool) -> tuple[optuna.Study, optuna.Trial]:
    """A study whose first trial is RUNNING at compute 4 on a good curve (c^-0.5: forecast 0.125 at 64)."""
    study = optuna.create_study(pruner=_pruner(pending_competitors=pending))
    first = study.ask()
    for c in C[C <= 4.0]:
        report(first, float(c**-0.5), compute=float(c))
        assert not first.should_prune()
    return study, first


def _first_rung_of_a_late_starter(pending: bool) -> dict:
    """A trial RUNNING at compute 4 (:func:`_running_to_compute_4`), and a worse one (2 c^-0.5, forecast 0.25)
    whose first evaluation is past compute 4: the second one's first decision record."""
    study, _ = _running_to_compute_4(pending)
    second = study.ask()
    for c, l in zip(C[C > 4.0], STEADY[C > 4.0]):
        report(second, float(l), compute=float(c))
        if second.should_prune():
            break
    recs = rung_records(study.trials[1].system_attrs)
    return recs[min(recs)]


def test_a_running_trial_below_the_rung_competes_when_pending_competitors_is_on():
    alone = _first_rung_of_a_late_starter(False)
    # No trial has passed the rung: promoted unranked, as asynchronous successive halving does.
    assert (alone["rule"], alone["promoted"], alone["n_competitors"]) == ("startup", True, 1)
    ranked = _first_rung_of_a_late_starter(True)
    # The running trial, planned past the rung, competes with the forecast it made at its own highest rung.
    assert (ranked["rule"], ranked["promoted"], ranked["n_competitors"], ranked["rank"]) == ("rank", False, 2, 2)


def test_a_pending_competitor_is_a_running_trial_planned_past_the_rung():
    study, trial = _running_to_compute_4(True)
    deciding = study.ask()
    frozen = study._storage.get_trial(deciding._trial_id)
    k_first = min(rung_records(study.trials[0].system_attrs))

    def others(k, r, **kw):
        return competitors_at(study, frozen, k, r, functools.partial(study.pruner._finished_trial, study), **kw)[0]

    r = 8.0
    assert others(k_first + 1, r) == []  # without pending: nobody has passed compute 8
    (pending,) = others(k_first + 1, r, pending=True)
    assert pending["pending"] == k_first and pending["forecast"] == pytest.approx(0.125, rel=1e-6)
    assert others(k_first + 1, 128.0, pending=True) == []  # planned to 64: it never reaches compute 128
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert others(k_first + 1, r, pending=True) == []  # a pruned trial will not reach the rung


def test_pending_competitors_change_nothing_one_trial_at_a_time():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = generate_synthetic(24, seed=3, name="synthetic")
        runs = [replay_study(curves, PrunerSpec("ours", {"pending_competitors": p}), seeds=[0, 1])
                for p in (False, True)]
    for col in ("state", "compute_spent", "decision"):
        assert runs[0][col].tolist() == runs[1][col].tolist()


def test_the_pending_competitors_setting_is_checked():
    with pytest.raises(ValueError, match="pending_competitors"):
        SurrogateHalvingPruner(pending_competitors="yes")


def test_a_few_misses_among_many_right_forecasts_do_not_set_the_margin_at_the_worst_one():
    """Thirty finished trials forecast exactly at 6 % of their runs, and four that sat on a plateau and then
    dropped, by a factor of 4 for the worst and hardly for the mildest: an eighth of the study's errors lie past
    a table that allows 1 %, about as many as chance gives at 90 % coverage. The rule before ``widen_level``
    took the margin to the worst miss (the study's 90 % quantile, the mildest miss, was past the table); now the
    study's quantile is weighed against the table."""
    plateau = 3.0 * C**-0.1
    ends = (0.5, 0.73, 1.47, 1.88)  # the plateau's own forecast of the end is about 1.98
    never_misses = {"coverage": 0.9, "own": (0.01,) * 5, "multipower": (0.01,) * 5}
    margins = {}
    for level in (None, 0.1):
        study = optuna.create_study(pruner=_pruner(margin={**never_misses, "widen_level": level},
                                                   n_startup_trials=100))
        for i in range(34):
            drop = np.minimum(plateau, ends[(i - 4) // 9] * (C / 64.0) ** -0.5) if i % 9 == 4 else None
            _run(study, C, drop if drop is not None else (1.0 + 0.01 * i) * C**-0.5)
        number, _ = _run(study, C, STEADY)
        rec = study.trials[number].system_attrs[rung_key(2)]
        assert rec["margin_info"]["n"] >= 30
        margins[level] = rec["margin"], rec["margin_info"]
    assert margins[None][1]["widened"] == 1.0 and margins[None][0] > 0.9  # the worst trial's miss
    assert "widened" not in margins[0.1][1] and 0.01 < margins[0.1][1]["study"] < 0.2
    n, study_margin = margins[0.1][1]["n"], margins[0.1][1]["study"]
    assert margins[0.1][0] == pytest.approx((10 * 0.01 + n * study_margin) / (10 + n))


def test_a_miss_proven_by_an_enqueued_trial_counts_once_it_runs():
    """Trials queued with ``enqueue_trial`` wait (WAITING) while others decide. The second one queued is read
    while it waits (no proven misses then), then runs and proves a miss at rung 2; a third trial deciding at
    that stage while it still runs, and a fourth after it was pruned, are both given that miss as their margin."""
    study = optuna.create_study(pruner=_pruner(margin={**NEVER_MISSES, "proven": True}))
    study.enqueue_trial({})
    study.enqueue_trial({})
    first = study.ask()
    for c in C[C < 5]:
        report(first, float(3.2 * c**-0.1), compute=float(c))
        first.should_prune()
    assert study.trials[1].state == optuna.trial.TrialState.WAITING
    assert "margin" in study.trials[0].system_attrs[rung_key(2)]  # its decision read the waiting trial
    prover = study.ask()
    assert prover.number == 1
    for c, l in zip(C[C < 33], PLATEAU_THEN_DROP[C < 33]):
        report(prover, float(l), compute=float(c))
        assert not prover.should_prune()
    miss = math.log(study.trials[1].system_attrs[rung_key(2)]["forecast"] / (0.5 * 2**0.5))

    def decided_margin():
        trial = study.ask()
        for c in C[C < 5]:
            report(trial, float(3.2 * c**-0.1), compute=float(c))
            trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return study.trials[trial.number].system_attrs[rung_key(2)]

    assert study.trials[1].state == optuna.trial.TrialState.RUNNING
    rec = decided_margin()
    assert rec["margin"] == pytest.approx(miss) and rec["margin_info"]["n_proven"] >= 1
    study.tell(prover, state=optuna.trial.TrialState.PRUNED)
    rec = decided_margin()
    assert rec["margin"] == pytest.approx(miss) and rec["margin_info"]["n_proven"] >= 1
    study.tell(first, state=optuna.trial.TrialState.PRUNED)


def test_a_miss_the_deciding_trial_has_proven_itself_widens_its_own_margin_when_asked():
    """A trial alone on a plateau, then dropping: at compute 32 its loss (0.707) has beaten the forecast it was
    given at compute 16 (about 2.3 at the end). With ``proven_own`` that miss is its margin at compute 32 (stage
    0.5, within a factor 2 of 0.25); without it, the table's (0)."""
    for own in (False, True):
        study = optuna.create_study(pruner=_pruner(margin={**NEVER_MISSES, "proven_own": own}))
        trial = study.ask()
        for c, l in zip(C[C < 33], PLATEAU_THEN_DROP[C < 33]):
            report(trial, float(l), compute=float(c))
            assert not trial.should_prune()
        records = study.trials[0].system_attrs
        before = records[rung_key(4)]["forecast"]  # made at compute 16, on the plateau
        rec = records[rung_key(5)]
        if own:
            loss_32 = float(PLATEAU_THEN_DROP[np.isclose(C, 32.0)][0])
            assert math.log(before / loss_32) > 1.0
            assert rec["margin"] == pytest.approx(math.log(before / loss_32))  # the one forecast near its stage
            assert rec["margin_info"]["widened"] == 1.0 and rec["margin_info"]["n_proven"] >= 1
        else:
            assert rec["margin"] == 0.0 and "proven" not in rec["margin_info"]
        study.tell(trial, float(PLATEAU_THEN_DROP[-1]))


def test_proven_own_must_be_a_bool():
    with pytest.raises(ValueError, match="proven_own"):
        _pruner(margin={"coverage": 0.9, "own": (0.1,) * 5, "multipower": (0.0,) * 5, "proven_own": "yes"})
