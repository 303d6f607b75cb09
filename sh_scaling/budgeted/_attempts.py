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
operation: two processes of one attempt that both wrote an outcome cannot disagree on which one stands.
"""

from __future__ import annotations

import secrets
from typing import Any

import optuna
from optuna.trial import TrialState

from sh_scaling.budgeted._records import UpdateFinishedTrialError
from sh_scaling.keys import BUDGETED_ATTEMPT_KEY, BUDGETED_OUTCOME_PREFIX, DECISION_KEY

__all__ = ["attempts_study_name", "create_attempt", "record_outcome", "recorded_outcome", "take_back"]


def attempts_study_name(study_name: str) -> str:
    return f"{study_name}:attempts"


def create_attempt(storage: Any, attempts_study_id: int, sweep_study_id: int, trial_id: int, key: str,
                   attempt: int) -> int:
    """A new WAITING trial for attempt ``attempt`` of segment ``key`` of the candidate trial ``trial_id``; its id."""
    template = optuna.trial.create_trial(
        state=TrialState.WAITING,
        system_attrs={BUDGETED_ATTEMPT_KEY: {"study_id": int(sweep_study_id), "trial_id": int(trial_id),
                                             "key": key, "attempt": int(attempt)}},
        user_attrs={DECISION_KEY: "an attempt of a budgeted segment: COMPLETE once its outcome is recorded, FAIL "
                                  "when it was taken back from its lost worker"})
    return int(storage.create_new_trial(int(attempts_study_id), template_trial=template))


def recorded_outcome(trial: Any) -> dict[str, Any] | None:
    """The outcome a finished attempt's trial holds (``None`` unless it is COMPLETE with an outcome)."""
    if trial.state != TrialState.COMPLETE or not trial.values:
        return None
    outcome = trial.system_attrs.get(f"{BUDGETED_OUTCOME_PREFIX}{int(trial.values[0])}")
    return None if outcome is None else dict(outcome)


def record_outcome(storage: Any, attempt_trial: int, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """Record an attempt's outcome (``{"result": ...}`` or ``{"failed": reason, "traceback": ...}``) by
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


def take_back(storage: Any, attempt_trial: int) -> dict[str, Any] | None:
    """Take an attempt back from its lost worker: finish its trial FAIL, so that the worker's outcome is refused
    from now on. Returns ``None`` when taken back; the recorded outcome when the worker had recorded it first
    (the trial was COMPLETE). An attempt already taken back is taken back (``None``)."""
    try:
        storage.set_trial_state_values(attempt_trial, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return recorded_outcome(storage.get_trial(attempt_trial))
    return None
