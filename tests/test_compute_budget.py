"""ComputeBudget with many trials at once: each trial reserves its planned compute in the storage before it
trains, so the budget holds with threads and with worker processes, and a trial that would pass it is pruned
before it trains and stops its worker.

The process runs reuse ``benchmarks/bench_compute_budget.py``'s round, so that the test and the benchmark
check the same thing; PostgreSQL reads ``SH_SCALING_TEST_POSTGRES_URL`` and is skipped without it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.budgeted import ComputeBudget
from sh_scaling.budgeted import _budget
from sh_scaling.keys import BUDGET_RESERVATION_KEY, MAX_COMPUTE_KEY
from sh_scaling.pruning import reported_compute

optuna.logging.set_verbosity(optuna.logging.ERROR)

POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_compute_budget.py"
_GATE_S = 60.0


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_compute_budget", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spent(study: optuna.Study) -> float:
    return math.fsum(max(reported_compute(t).values(), default=0.0) for t in study.get_trials(deepcopy=False))


def _state(trial) -> str | None:
    return (trial.system_attrs.get(BUDGET_RESERVATION_KEY) or {}).get("state")


class _Gate:
    """Holds the first ``n`` trials until all ``n`` have arrived (trained or refused), so that they run at once
    whatever the machine's load. Once a trial is refused the study stops starting trials, so the gate then
    opens when every trial that started has arrived. It gives up waiting after a generous deadline rather
    than hang."""

    def __init__(self, n: int) -> None:
        self.n, self.entered, self.arrived, self.refused = n, 0, 0, False
        self.cond = threading.Condition()

    def enter(self) -> None:
        with self.cond:
            self.entered += 1

    def arrive(self, refused: bool = False) -> None:
        with self.cond:
            self.arrived += 1
            self.refused |= refused
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.arrived >= self.n or (self.refused and self.arrived >= self.entered),
                               timeout=_GATE_S)


def _gated_objective(gate: _Gate, budget: ComputeBudget | None, planned: float, n_evals: int = 4):
    def objective(trial: optuna.Trial) -> float:
        gate.enter()
        trial.suggest_float("x", 0.0, 1.0)
        if budget is not None:
            try:
                budget.reserve(trial, max_compute=planned)
            except optuna.TrialPruned:
                gate.arrive(refused=True)
                raise
        gate.arrive()
        for k in range(1, n_evals + 1):
            sh_scaling.report(trial, 1.0 / k, compute=planned * k / n_evals, max_compute=planned)
        return 0.0

    return objective


# -------------------------------------------------------------------------------------------- the rule
def test_admission_admits_what_fits_refuses_what_cannot_and_retries_when_only_pending_ones_are_in_the_way():
    assert _budget._admission(10.0, 2.0, settled=5.0, pending=3.0) == "admit"  # exactly the budget
    assert _budget._admission(10.0, 2.0, settled=9.0, pending=0.0) == "refuse"
    assert _budget._admission(10.0, 2.0, settled=9.0, pending=5.0) == "refuse"  # whatever the pending become
    assert _budget._admission(10.0, 2.0, settled=5.0, pending=4.0) == "retry"  # fits if a pending one is refused
    # A budget of exactly three plans admits three, whatever rounding the sum of the plans met.
    assert _budget._admission(0.3, 0.1, settled=0.1 + 0.1, pending=0.0) == "admit"


def test_reserve_admits_trials_in_turn_until_the_next_would_pass_then_prunes_it_before_it_trains():
    study = optuna.create_study()
    budget = ComputeBudget(50.0)
    trials = [study.ask() for _ in range(6)]
    for t in trials[:5]:
        assert budget.reserve(t, max_compute=10.0) == 10.0
    assert budget.reserve(trials[0], max_compute=10.0) == 10.0  # again: the same reservation, not a second one
    with pytest.raises(optuna.TrialPruned, match=r"trial 5 was not started: its planned compute 10 would take "
                                                 r"the sweep to 60 of the 50 budget"):
        budget.reserve(trials[5], max_compute=10.0)
    study.tell(trials[5], state=TrialState.PRUNED)
    frozen = study.trials
    assert [_state(t) for t in frozen] == ["admitted"] * 5 + ["refused"]
    assert frozen[0].system_attrs[MAX_COMPUTE_KEY] == 10.0  # the plan is the trial's max_compute for the pruner
    status = budget.status(study)
    assert status["committed"] == 50.0 and status["spent"] == 0.0 and budget.would_pass(study)


def test_a_pruned_trial_gives_back_what_it_did_not_spend():
    study = optuna.create_study()
    budget = ComputeBudget(30.0)
    first, second = study.ask(), study.ask()
    budget.reserve(first, max_compute=20.0)
    budget.reserve(second, max_compute=10.0)
    sh_scaling.report(first, 1.0, compute=4.0)
    study.tell(first, state=TrialState.PRUNED)  # stopped at 4 of its 20
    third = study.ask()
    assert budget.reserve(third, max_compute=16.0) == 16.0  # 4 spent + 10 held + 16 = 30
    with pytest.raises(optuna.TrialPruned):
        budget.reserve(study.ask(), max_compute=1.0)


def test_a_reservation_that_meets_an_undecided_one_backs_off_and_is_admitted_once_that_one_is_refused(
        monkeypatch):
    study = optuna.create_study()
    budget = ComputeBudget(10.0)
    other, mine = study.ask(), study.ask()
    # The other trial has written its reservation and not yet decided: together they would not fit.
    study._storage.set_trial_system_attr(other._trial_id, BUDGET_RESERVATION_KEY,
                                         {"compute": 6.0, "state": "pending", "attempt": 1})
    pauses = []

    def pause(seconds):  # while this trial backs off, the other decides it cannot fit
        pauses.append(seconds)
        assert _state(study._storage.get_trial(mine._trial_id)) == "withdrawn"  # holds nothing meanwhile
        study._storage.set_trial_system_attr(other._trial_id, BUDGET_RESERVATION_KEY,
                                             {"compute": 6.0, "state": "refused", "attempt": 1})

    monkeypatch.setattr(_budget.time, "sleep", pause)
    assert budget.reserve(mine, max_compute=6.0) == 6.0
    assert len(pauses) == 1 and _state(study._storage.get_trial(mine._trial_id)) == "admitted"


def test_a_reservation_that_keeps_meeting_an_undecided_one_is_refused_after_its_tries(monkeypatch):
    study = optuna.create_study()
    other, mine = study.ask(), study.ask()
    study._storage.set_trial_system_attr(other._trial_id, BUDGET_RESERVATION_KEY,
                                         {"compute": 6.0, "state": "pending", "attempt": 1})
    pauses = []
    monkeypatch.setattr(_budget.time, "sleep", pauses.append)
    with pytest.raises(optuna.TrialPruned, match="still deciding"):
        ComputeBudget(10.0).reserve(mine, max_compute=6.0)
    assert len(pauses) == _budget._TRIES - 1 and max(pauses) <= _budget._BACKOFF_S[1]


@pytest.mark.parametrize("reserve, n_trials", [(True, 3), (False, 2)])
def test_after_a_reserved_trial_the_callback_stops_only_when_not_even_the_smallest_plan_fits(reserve, n_trials):
    budget = ComputeBudget(30.0, max_compute=lambda p: p["plan"])
    study = optuna.create_study()
    for plan in (20.0, 10.0, 10.0, 10.0, 10.0):
        study.enqueue_trial({"plan": plan})

    def objective(trial):
        plan = trial.suggest_float("plan", 1.0, 100.0)
        if reserve:
            budget.reserve(trial)
        sh_scaling.report(trial, 1.0, compute=plan / 10)
        if plan == 20.0:
            raise optuna.TrialPruned()  # 2 of its 20 spent
        sh_scaling.report(trial, 0.5, compute=plan)
        return 0.5

    study.optimize(objective, n_trials=5, callbacks=[budget])
    # 2 + 10 spent: a trial of 10 still fits (reserve checks each trial's own plan), one of 20 would not; the
    # callback alone cannot know the next trial's plan and assumes the largest.
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    assert len(started) == n_trials and _spent(study) <= 30.0


# ---------------------------------------------------------------------------------------- many at once
@pytest.mark.parametrize("storage", ["inmemory", "journal", "sqlite"])
def test_eight_threads_at_once_stay_within_the_budget(storage, tmp_path):
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend

        where = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    else:
        where = None if storage == "inmemory" else f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=where)
    budget = ComputeBudget(50.0)  # five trials' planned compute
    study.optimize(_gated_objective(_Gate(8), budget, 10.0), n_trials=100, n_jobs=8, callbacks=[budget])
    trials = study.trials
    assert _spent(study) <= 50.0 * (1 + 1e-9)
    assert len(trials) < 100  # study.optimize stopped
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    refused = [t for t in trials if _state(t) == "refused"]
    assert all(t.state == TrialState.PRUNED and not reported_compute(t) for t in refused)
    assert all(t.state == TrialState.COMPLETE for t in trials if t not in refused)


def test_the_callback_alone_still_works_and_warns_when_trials_run_at_once_without_reserving():
    study = optuna.create_study()
    budget = ComputeBudget(50.0)
    with pytest.warns(UserWarning, match=r"call budget.reserve\(trial\) in the objective before training"):
        study.optimize(_gated_objective(_Gate(8), None, 10.0), n_trials=100, n_jobs=8, callbacks=[budget])
    assert len(study.trials) < 100  # it still stops the study; the eight already running went on


def test_one_trial_at_a_time_without_reserve_does_not_warn():
    study = optuna.create_study()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.optimize(_gated_objective(_Gate(1), None, 10.0), n_trials=10, callbacks=[ComputeBudget(35.0)])
    assert len(study.trials) == 3


@pytest.mark.parametrize("kind", ["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_worker_processes_at_once_stay_within_the_budget_and_all_stop(bench, kind, tmp_path):
    if kind == "postgres" and not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    where = POSTGRES_URL if kind == "postgres" else str(tmp_path)
    row = bench.run_round("reserve", kind, where, parallel=8, seed=0)
    assert row["bad_exits"] == 0 and row["stopped"], row  # every worker exited 0 before its n_trials ran out
    assert row["running"] == 0, row
    assert row["overshoot"] <= 1e-9, row
    assert row["trials"] >= 1, row


# -------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flops", [0, -1.0, float("nan"), float("inf"), "1e21", True, None])
def test_a_budget_that_is_not_a_positive_finite_number_is_refused(flops):
    with pytest.raises(ValueError, match="flops must be a positive finite number"):
        ComputeBudget(flops)


@pytest.mark.parametrize("max_compute", [0, -1.0, float("nan"), float("inf"), "10", True])
def test_a_plan_that_is_not_a_positive_finite_number_is_refused(max_compute):
    with pytest.raises(ValueError, match="max_compute must be a positive"):
        ComputeBudget(10.0, max_compute=max_compute)
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="max_compute must be a positive finite number"):
        ComputeBudget(10.0).reserve(trial, max_compute=max_compute)
    assert _state(study._storage.get_trial(trial._trial_id)) is None  # nothing reserved


def test_a_plan_function_that_raises_or_returns_nonsense_fails_the_trial_with_its_name():
    def planned(params):
        raise KeyError("width")

    study = optuna.create_study()
    budget = ComputeBudget(10.0, max_compute=planned)

    def objective(trial):
        budget.reserve(trial)
        return 0.0

    with pytest.raises(ValueError, match="max_compute raised KeyError"):
        study.optimize(objective, n_trials=1, callbacks=[budget])
    assert study.trials[0].state == TrialState.FAIL
    with pytest.raises(ValueError, match=r"returned -3.0, not a positive finite number"):
        ComputeBudget(10.0, max_compute=lambda p: -3.0).reserve(study.ask())


def test_a_trial_with_no_planned_compute_reserves_the_studys_largest_with_a_warning_or_fails_clearly():
    study = optuna.create_study()
    budget = ComputeBudget(100.0)
    with pytest.raises(ValueError, match=r"trial 0 has no planned compute and no trial of the study has one; "
                                         r"pass reserve\(trial, max_compute=...\)"):
        budget.reserve(study.ask())
    study.tell(0, state=TrialState.FAIL)
    budget.reserve(study.ask(), max_compute=30.0)
    unplanned = study.ask()
    with pytest.warns(UserWarning, match=r"reserves the largest one in the study \(30\)"):
        assert budget.reserve(unplanned) == 30.0
    frozen = study._storage.get_trial(unplanned._trial_id)
    assert MAX_COMPUTE_KEY not in frozen.system_attrs  # a stand-in, not the trial's plan
    assert frozen.system_attrs[BUDGET_RESERVATION_KEY]["fallback"] is True


def test_reserve_needs_the_running_trial():
    with pytest.raises(ValueError, match="needs the running optuna.trial.Trial"):
        ComputeBudget(10.0).reserve(optuna.trial.FixedTrial({"x": 1.0}), max_compute=1.0)


def test_a_refused_trial_outside_optimize_is_left_to_the_caller_to_tell():
    study = optuna.create_study()
    budget = ComputeBudget(5.0)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):  # no study.stop() outside study.optimize: only the trial is pruned
        budget.reserve(trial, max_compute=10.0)
    study.tell(trial, state=TrialState.PRUNED)
    assert study.trials[0].state == TrialState.PRUNED

