"""Every study and trial attribute key sh_scaling writes, in one place.

Everything the pruner and the sampler know lives in the study's storage under these keys, so that any worker
process (or optuna-dashboard) sees the same state. Trial keys:

* :data:`COMPUTE_KEY` (system attr): the compute of each reported step, as ``[[step, compute], ...]`` for the
  steps sealed so far, and :data:`COMPUTE_TAIL_KEY` for the latest ones (at most
  :data:`COMPUTE_TAIL_SIZE`). Two keys whatever the number of reports: each report rewrites a short list, and
  ``study.trials_dataframe()`` gets two columns, not one per report. Compute never goes into Optuna's ``step``,
  which is a 32-bit integer in RDB storages. Read it with :func:`sh_scaling.pruning.reported_compute`. A report
  that gives the learning rate in effect stores ``[step, compute, lr]`` instead (read with
  :func:`sh_scaling.pruning.reported_lr`).
* :data:`SCHEDULE_KEY` (system attr): the trial's planned learning-rate schedule,
  :meth:`sh_scaling.schedules.Schedule.to_dict`, written once: by an integration when training begins (the
  Hugging Face callback from its ``TrainingArguments``, the Lightning callback and ``TrialReporter`` from the
  run's PyTorch LR scheduler), else by the pruner (from its ``schedule=``).
* :data:`SCHEDULE_NOTE_KEY` (system attr): why the trial's forecasts do not follow its stated schedule (the
  schedule function failed, reported rates disagree with it, rates were reported without a schedule, an
  integration met a scheduler or ``TrainingArguments`` plan whose schedule it cannot state).
* :data:`MAX_COMPUTE_KEY` (system attr): compute the trial is meant to reach, when given per trial.
* :data:`BUDGET_RESERVATION_KEY` (system attr): the trial's reservation in a
  :class:`~sh_scaling.ComputeBudget`: the compute it holds and whether the reservation is pending, admitted,
  withdrawn (to retry) or refused, written by :meth:`sh_scaling.ComputeBudget.reserve` before training.
* :func:`rung_key` ``(k)`` (system attr): the decision at rung ``k`` and the forecast behind it.
* :data:`FIRST_RUNG_KEY` (system attr): the first rung the trial was decided at.
* :data:`CHECKED_RUNG_KEY` (system attr): the highest rung the pruner has looked at for this trial (decided
  or skipped), so that a call between rungs costs nothing.
* :data:`PRUNED_KEY` (system attr) and :data:`DECISION_KEY` (user attr, shown by optuna-dashboard): why the
  trial was pruned, or the latest promotion.
* :data:`FORECAST_KEY` (user attr): the surrogate's latest forecast of the loss at the trial's planned
  compute; samplers read it to learn from pruned trials.
* :data:`PRIOR_WEIGHT_KEY`, :data:`FROM_PRIOR_KEY`, :data:`PREDICTED_LOSS_KEY`, :data:`PRIOR_ERROR_KEY`
  (system attrs): what :class:`~sh_scaling.sampling.ScalingPriorSampler` decided for the trial.
* :func:`plan_key` ``(column)`` (user attr): a column of the sweep plan the trial was enqueued from.

Study keys:

* :data:`NO_DECISION_WARNING_KEY` (study system attr): why the pruner could not decide some trials (compute
  in another unit than ``max_compute``, compute that does not increase), recorded once.
* :data:`SCHEDULE_WARNING_KEY` (study system attr): the first trial whose reported learning rates disagreed
  with its stated schedule (or whose schedule function failed), recorded once with the warning.

Keys of budget-limited halving (:class:`sh_scaling.BudgetedHalving`), whose study belongs to the driver:

* :data:`BUDGETED_PLAN_KEY` (study system attr): the schedule (budget, reduction factor, strategy, round sizes
  and shares, seed, a fingerprint of the candidates), so that a restart checks it continues the same sweep, and
  the sh_scaling release that started it and the format of its records, so that a process of another release
  is refused.
  Written last when the sweep is set up: a second driver waits for it.
* :func:`budgeted_round_key` ``(r)`` (study system attr): round ``r``: who was alive, its share, and once decided
  the ranking, scores and survivors, and what each ranked candidate's score was made from (``ranked_by``, in the
  order of ``ranked``: ``"forecast"``, ``"observed"``, ``"few:<rule>"``, ``"unseen:<rule>"``, as
  :class:`sh_scaling.simulation.RoundRecord` names them; absent from rounds decided by earlier releases).
* :data:`BUDGETED_LEDGER_KEY` (study system attr): the budget's running total (charged, reserved, retries),
  rewritten by the driver from the segment records, which are the ledger itself.
* :data:`BUDGETED_CANDIDATE_KEY` (trial system attr): the candidate's index, configuration and planned end.
* :func:`budgeted_segment_key` ``(k)`` (trial system attr): segment ``k`` of the candidate's training: the
  compute it was granted (reserved before it starts), the checkpoint it resumed from and the one it left,
  attempts, and what had to be clipped or dropped.
* :data:`BUDGETED_FAILED_KEY` (trial system attr): why the candidate failed (its ``train_fn`` raised, its
  worker died too often).
* :data:`BUDGETED_REMOVED_KEY` (study system attr): the ids of checkpoints removed from the artifact store
  (superseded, or their candidate left the race), by trial id, so that none is removed twice.
* :data:`BUDGETED_LEASE_KEY` (trial system attr, in the companion study ``<study_name>:driver``): a link of
  the lease that says which driver runs the sweep (the sweep's study id, the link's generation, the holder's
  host and process id, its heartbeat count). Sweeps run by workers (:meth:`sh_scaling.BudgetedHalving.work`)
  use the same lease as a short lock, held by the worker that closes a round or takes a dead worker's
  segment back.
* :data:`BUDGETED_ATTEMPT_KEY` (trial system attr, in the companion study ``<study_name>:attempts``): which
  attempt of which segment a trial of that study stands for (the sweep's study id, the candidate's trial id,
  the segment's key, the attempt's number, and ``"heartbeat": True`` for the attempt's heartbeat trial). The
  trial is finished once: COMPLETE by the process that recorded
  the attempt's outcome (its value names the outcome, kept under :data:`BUDGETED_OUTCOME_PREFIX` and a token),
  FAIL by the process that took the attempt back from a lost worker.
* :data:`BUDGETED_WORKER_KEY` (trial system attr of an attempt's heartbeat trial, in ``<study_name>:attempts``):
  the worker training the segment's attempt (its host, process id, the segment and attempt, a heartbeat count),
  ``{"state": "idle"}`` once it put the attempt back for another worker; the trial is finished once it gave the
  segment back (COMPLETE) or the attempt was taken back from it (FAIL).
* :data:`BUDGETED_WORKER_ERRORS_KEY` (study system attr): the last errors of workers that could not work on
  the sweep (a ``train_fn`` they could not import, another release of sh_scaling, an artifact store that lacks
  a checkpoint another worker recorded), with host, process id and time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BUDGET_RESERVATION_KEY",
    "CHECKED_RUNG_KEY",
    "COMPUTE_KEY",
    "COMPUTE_TAIL_KEY",
    "COMPUTE_TAIL_SIZE",
    "DECISION_KEY",
    "FIRST_RUNG_KEY",
    "FORECAST_KEY",
    "FROM_PRIOR_KEY",
    "MAX_COMPUTE_KEY",
    "NO_DECISION_WARNING_KEY",
    "PLAN_PREFIX",
    "PRIOR_ERROR_KEY",
    "PREDICTED_LOSS_KEY",
    "PRIOR_WEIGHT_KEY",
    "PRUNED_KEY",
    "RUNG_PREFIX",
    "SCHEDULE_KEY",
    "SCHEDULE_NOTE_KEY",
    "SCHEDULE_WARNING_KEY",
    "plan_key",
    "rung_key",
    "rung_records",
    "BUDGETED_ATTEMPT_KEY",
    "BUDGETED_CANDIDATE_KEY",
    "BUDGETED_FAILED_KEY",
    "BUDGETED_LEASE_KEY",
    "BUDGETED_REMOVED_KEY",
    "BUDGETED_LEDGER_KEY",
    "BUDGETED_OUTCOME_PREFIX",
    "BUDGETED_PLAN_KEY",
    "BUDGETED_ROUND_PREFIX",
    "BUDGETED_SEGMENT_PREFIX",
    "BUDGETED_WORKER_ERRORS_KEY",
    "BUDGETED_WORKER_KEY",
    "budgeted_round_key",
    "budgeted_segment_key",
]

COMPUTE_KEY = "sh_scaling:compute"
COMPUTE_TAIL_KEY = "sh_scaling:compute_tail"
#: Reports kept in the short list before it is sealed into :data:`COMPUTE_KEY`: each report rewrites at most
#: this many entries, and the long list is rewritten once every this many reports.
COMPUTE_TAIL_SIZE = 64
MAX_COMPUTE_KEY = "sh_scaling:max_compute"
BUDGET_RESERVATION_KEY = "sh_scaling:budget:reservation"
RUNG_PREFIX = "sh_scaling:rung:"
FIRST_RUNG_KEY = "sh_scaling:first_rung"
CHECKED_RUNG_KEY = "sh_scaling:checked_rung"
PRUNED_KEY = "sh_scaling:pruned"
DECISION_KEY = "sh_scaling:decision"
FORECAST_KEY = "sh_scaling:forecast_final_loss"
#: The prior weight ``w`` in force when the trial started.
PRIOR_WEIGHT_KEY = "sh_scaling:prior_weight"
#: ``True`` when the trial was given to the prior (it then proposes the shape parameters that are not fixed,
#: unless it can score no candidate).
FROM_PRIOR_KEY = "sh_scaling:from_prior"
#: The loss the prior predicted for the proposed configuration.
PREDICTED_LOSS_KEY = "sh_scaling:prior_predicted_loss"
#: Why the prior could not be consulted for this trial (it raised, or answered with the wrong number of
#: values); the trial then belongs to the base sampler.
PRIOR_ERROR_KEY = "sh_scaling:prior_error"
PLAN_PREFIX = "sh_scaling:plan:"
NO_DECISION_WARNING_KEY = "sh_scaling:no_decision_warning"
SCHEDULE_KEY = "sh_scaling:schedule"
SCHEDULE_NOTE_KEY = "sh_scaling:schedule_note"
SCHEDULE_WARNING_KEY = "sh_scaling:schedule_warning"


def rung_key(rung: int) -> str:
    return f"{RUNG_PREFIX}{int(rung)}"


def rung_records(system_attrs: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """A trial's rung records (:data:`RUNG_PREFIX`) by rung index, in rung order, which is compute order."""
    found: dict[int, dict[str, Any]] = {}
    for name, value in system_attrs.items():
        if name.startswith(RUNG_PREFIX) and isinstance(value, dict):
            try:
                found[int(name[len(RUNG_PREFIX):])] = value
            except ValueError:  # not a key the pruner writes
                continue
    return dict(sorted(found.items()))


def plan_key(column: str) -> str:
    return f"{PLAN_PREFIX}{column}"


# Budget-limited halving (sh_scaling.budgeted). Rounds and segments get one key each, so that every write
# replaces one small value and no writer has to read, change and rewrite a shared list.
BUDGETED_PLAN_KEY = "sh_scaling:budgeted:plan"
BUDGETED_ROUND_PREFIX = "sh_scaling:budgeted:round:"
BUDGETED_LEDGER_KEY = "sh_scaling:budgeted:ledger"
BUDGETED_CANDIDATE_KEY = "sh_scaling:budgeted:candidate"
BUDGETED_SEGMENT_PREFIX = "sh_scaling:budgeted:segment:"
BUDGETED_FAILED_KEY = "sh_scaling:budgeted:failed"
BUDGETED_LEASE_KEY = "sh_scaling:budgeted:lease"
BUDGETED_REMOVED_KEY = "sh_scaling:budgeted:removed"
BUDGETED_WORKER_KEY = "sh_scaling:budgeted:worker"
BUDGETED_ATTEMPT_KEY = "sh_scaling:budgeted:attempt"
BUDGETED_OUTCOME_PREFIX = "sh_scaling:budgeted:outcome:"
BUDGETED_WORKER_ERRORS_KEY = "sh_scaling:budgeted:worker_errors"


def budgeted_round_key(r: int) -> str:
    return f"{BUDGETED_ROUND_PREFIX}{int(r)}"


def budgeted_segment_key(k: int) -> str:
    # Zero-padded so that the keys sort in segment order wherever they are listed (dashboard, dataframes).
    return f"{BUDGETED_SEGMENT_PREFIX}{int(k):03d}"
