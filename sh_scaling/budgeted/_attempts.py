"""One finishable trial per attempt of a segment: the outcome of an attempt is recorded once, or refused.

A worker that was taken for dead while it lives (its heartbeats did not reach the storage for the grace) has
its segment taken back and retried by another; when it wakes up it must not record what its ``train_fn``
returned. A check before a write cannot guarantee that (the write may land long after the check), and
Optuna's storages have no conditional write of an attribute. What they have is a state change that only one
process can win: a finished trial refuses every write, and it cannot be finished twice (RDB storages lock its
row; a journal orders the operations; the in-memory storage holds a lock).

So every attempt of a segment has its own trial in the companion study ``<study_name>:attempts``, created
WAITING by the process that grants the attempt (the segment's reservation, or the next attempt recorded when a
lost worker's attempt is taken back), its id in the segment's record (``attempt_trial``). The attempt's
outcome (the segment's result, or its ``train_fn``'s failure) counts only once that trial is finished:

* the worker writes its outcome into the attempt's trial under a token of its own
  (:data:`~sh_scaling.keys.BUDGETED_OUTCOME_PREFIX`), then finishes the trial COMPLETE with the token as its
  value (:func:`record_outcome`): two writes;
* the process that takes the attempt back from a lost worker finishes the trial FAIL first, before it writes
  anything else (:func:`take_back`): from then on the lost worker's outcome is refused by the storage
  (``UpdateFinishedTrialError``), and it writes nothing more into the segment;
* whichever comes second finds the trial finished. A worker that finds it FAIL was taken back: its outcome
  does not count. One that finds it COMPLETE (another process of the same attempt recorded first) goes on with
  the recorded outcome, not its own. A take-back that finds it COMPLETE finishes the segment from the recorded
  outcome: the attempt was not lost, only its worker after it.

The recorded outcome is the one named by the finished trial's value, written with the state change in one
operation: two processes of one attempt that both wrote an outcome cannot disagree on which one stands. A
worker told to stop (SIGTERM) whose ``train_fn`` stopped records ``{"interrupted": reason}`` the same way
before it notes the interruption in the segment's record and puts the segment back with a fresh attempt trial
(:func:`new_attempt`): a worker taken back first writes nothing.

Each attempt has a second trial beside it, its heartbeat (``beat_trial`` in the segment's record), into which
the worker that holds the segment writes its heartbeat (:data:`~sh_scaling.keys.BUDGETED_WORKER_KEY`). The
take-back finishes it too (FAIL), so a heartbeat of a worker taken back is refused by the storage, as its
outcome is, and never lands where the segment's next worker's heartbeat is read: the next attempt has a
heartbeat trial of its own. The worker finishes it (COMPLETE) when it gives the segment back. It is apart
from the outcome's trial because the worker goes on beating after its outcome is recorded, while it reports the
points.
"""

from __future__ import annotations

import secrets
from typing import Any

import optuna
from optuna.trial import TrialState

from sh_scaling.budgeted._records import UpdateFinishedTrialError
from sh_scaling.keys import BUDGETED_ATTEMPT_KEY, BUDGETED_OUTCOME_PREFIX, DECISION_KEY

__all__ = ["attempts_study_name", "create_attempt", "new_attempt", "record_outcome", "recorded_outcome", "take_back",
           "take_back_heartbeat"]


def attempts_study_name(study_name: str) -> str:
    return f"{study_name}:attempts"


def create_attempt(storage: Any, attempts_study_id: int, sweep_study_id: int, trial_id: int, key: str,
                   attempt: int, *, heartbeat: bool = False) -> int:
    """A new WAITING trial for attempt ``attempt`` of segment ``key`` of the candidate trial ``trial_id`` (its
    outcome's, or with ``heartbeat`` its worker's heartbeat's); its id."""
    what = ("the heartbeat of a budgeted segment's attempt: COMPLETE once its worker gave the segment back, FAIL "
            "when it was taken back from its lost worker" if heartbeat else
            "an attempt of a budgeted segment: COMPLETE once its outcome is recorded, FAIL when it was taken back "
            "from its lost worker")
    record = {"study_id": int(sweep_study_id), "trial_id": int(trial_id), "key": key, "attempt": int(attempt)}
    template = optuna.trial.create_trial(
        state=TrialState.WAITING,
        system_attrs={BUDGETED_ATTEMPT_KEY: {**record, "heartbeat": True} if heartbeat else record},
        user_attrs={DECISION_KEY: what})
    return int(storage.create_new_trial(int(attempts_study_id), template_trial=template))


def new_attempt(storage: Any, attempts_study_id: int, sweep_study_id: int, trial_id: int, key: str,
                attempt: int) -> dict[str, int]:
    """The trials of a new attempt, as the segment's record names them: ``attempt_trial`` (its outcome) and
    ``beat_trial`` (its worker's heartbeat)."""
    args = (storage, attempts_study_id, sweep_study_id, trial_id, key, attempt)
    return {"attempt_trial": create_attempt(*args), "beat_trial": create_attempt(*args, heartbeat=True)}


def recorded_outcome(trial: Any) -> dict[str, Any] | None:
    """The outcome a finished attempt's trial holds (``None`` unless it is COMPLETE with an outcome)."""
    if trial.state != TrialState.COMPLETE or not trial.values:
        return None
    outcome = trial.system_attrs.get(f"{BUDGETED_OUTCOME_PREFIX}{int(trial.values[0])}")
    return None if outcome is None else dict(outcome)


def record_outcome(storage: Any, attempt_trial: int, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """Record an attempt's outcome (``{"result": ...}``, ``{"failed": reason, "traceback": ...}`` or
    ``{"interrupted": reason}``) by
    finishing its trial. Returns the outcome that stands: this one, or the one another process of the same
    attempt recorded first; ``None`` when the attempt was taken back (its trial FAILed): nothing may be written
    for it."""
    token = secrets.randbits(52)  # exact as a float: the trial's value names it
    try:
        storage.set_trial_system_attr(attempt_trial, f"{BUDGETED_OUTCOME_PREFIX}{token}", outcome)
        storage.set_trial_state_values(attempt_trial, TrialState.COMPLETE, values=[float(token)])
    except UpdateFinishedTrialError:
        return recorded_outcome(storage.get_trial(attempt_trial))
    return outcome


def take_back(storage: Any, attempt_trial: int, beat_trial: int | None = None) -> dict[str, Any] | None:
    """Take an attempt back from its lost worker: finish its trial FAIL, so that the worker's outcome is refused
    from now on, then its heartbeat's trial (``beat_trial``), so that its heartbeats are refused too. Returns
    ``None`` when taken back; the recorded outcome when the worker had recorded it first (the trial was
    COMPLETE). An attempt already taken back is taken back (``None``)."""
    try:
        storage.set_trial_state_values(attempt_trial, TrialState.FAIL)
        recorded = None
    except UpdateFinishedTrialError:
        recorded = recorded_outcome(storage.get_trial(attempt_trial))
    if beat_trial is not None:
        take_back_heartbeat(storage, int(beat_trial))
    return recorded


def take_back_heartbeat(storage: Any, beat_trial: int) -> None:
    """Finish an attempt's heartbeat trial (FAIL), so that no heartbeat of its worker lands any more."""
    try:
        storage.set_trial_state_values(beat_trial, TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass  # its worker gave the segment back, or it was taken back already
