"""The compute budget: the ledger of budget-limited halving, and a budget for any Optuna study.

**Ledger of :class:`~sh_scaling.BudgetedHalving`.** The segment records of the candidates' trials *are* the
ledger: each holds the compute it was granted (``charge``), written before the segment starts. A segment
counts once, by its record, whatever happens to it: finished (``done``), failed (its ``train_fn`` raised: the
compute was most likely spent), or in flight (``reserved``). A retry after a killed worker reuses the record,
so it is not counted again; a restart from scratch (a checkpoint that cannot be loaded) rewrites the record
with the larger grant. :func:`ledger` sums them; the driver also keeps a summary in the study
(:data:`sh_scaling.keys.BUDGETED_LEDGER_KEY`) for dashboards.

**A budget for any study.** :class:`ComputeBudget` keeps "stop at 1e21 FLOPs" for the asynchronous pruner,
or any study whose objective reports compute with :func:`sh_scaling.report`: each trial reserves its planned
compute in the study's storage before it trains (:meth:`ComputeBudget.reserve`), a trial that would pass the
budget is pruned before it starts, and the callback stops ``study.optimize`` once no further trial fits.
"""

from __future__ import annotations

import math
import numbers
import random
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sh_scaling.budgeted._records import segments
from sh_scaling.halving import RTOL
from sh_scaling.keys import BUDGET_RESERVATION_KEY, MAX_COMPUTE_KEY
from sh_scaling.pruning import reported_compute

__all__ = ["ComputeBudget", "ledger", "round_share"]


def ledger(trials: Iterable[FrozenTrial], budget: float) -> dict[str, Any]:
    """The budget's state from the segment records of ``trials``.

    Returns ``budget``; ``charged`` (segments done or failed); ``reserved`` (segments granted and not yet
    done); ``total`` (their sum: what counts against the budget); ``left``; ``overshoot`` (compute past their
    grants that train_fn reported and that was clipped: not counted, see :func:`sh_scaling.budgeted.segments`);
    ``segments``, ``retries`` (attempts after a killed worker) and ``restarts`` (segments restarted from
    scratch).
    """
    charged: list[float] = []
    reserved: list[float] = []
    overshoot: list[float] = []
    retries = restarts = 0
    for t in trials:
        for s in segments(t):
            (reserved if s["status"] == "reserved" else charged).append(float(s["charge"]))
            overshoot.append(float(s.get("overshoot") or 0.0))
            retries += int(s.get("attempts", 1)) - 1
            restarts += bool(s.get("from_scratch"))
    # Exact sums (math.fsum): the driver keeps the exact total within the budget, so the ledger shows it so.
    total = math.fsum(charged + reserved)
    return {"budget": float(budget), "charged": math.fsum(charged), "reserved": math.fsum(reserved),
            "total": total, "left": float(budget) - total, "overshoot": math.fsum(overshoot),
            "segments": len(charged) + len(reserved), "retries": retries, "restarts": restarts}


def round_share(shares: list[float], sizes: list[int], r: int, left: float) -> float:
    """Compute each survivor of round ``r`` may get, when ``left`` of the budget remains.

    The schedule's share ``shares[r]`` while what is left covers the schedule's remaining rounds (the
    ordinary case, where the share is exactly the simulator's); otherwise every remaining round shrinks in
    proportion, so that the budget is never overdrawn (a restart from scratch, a failed segment's grant, can
    eat into what later rounds were promised).
    """
    planned = sum(m * s for m, s in zip(sizes[r:], shares[r:]))
    if left >= planned * (1 - RTOL):
        return float(shares[r])
    return float(shares[r]) * max(0.0, left) / planned


#: Reservation states (:data:`~sh_scaling.keys.BUDGET_RESERVATION_KEY`) that hold compute against the budget:
#: ``pending`` (written, not yet decided by its trial) and ``admitted`` (the trial trains). ``withdrawn`` (the
#: trial backed off to retry) and ``refused`` hold nothing beyond what the trial reported.
_PENDING, _ADMITTED, _WITHDRAWN, _REFUSED = "pending", "admitted", "withdrawn", "refused"
_STATES = (_PENDING, _ADMITTED, _WITHDRAWN, _REFUSED)

#: Tries of a reservation that meets only undecided competitors (see :func:`_admission`) before it is refused,
#: and the first and largest back-off between two tries, in seconds (randomised, doubling): two trials that
#: keep meeting each other stop meeting within a few tries, and a reservation gives up within about 1 s.
_TRIES = 8
_BACKOFF_S = (0.01, 0.5)

# Drawn from the OS: worker processes forked from one parent must not share a generator and back off in step.
_rng = random.SystemRandom()


def _admission(flops: float, amount: float, settled: float, pending: float) -> str:
    """What a reservation of ``amount`` gets, when the other trials hold ``settled`` (finished trials'
    compute, admitted reservations) and ``pending`` (reservations not yet decided).

    ``"admit"`` when it fits with every pending reservation counted; ``"refuse"`` when it does not fit beside
    what is settled alone, whatever the pending ones become; else ``"retry"``: it fits only if some pending
    reservations are refused, so it backs off and tries again.
    """
    if _fits(settled + pending + amount, flops):
        return "admit"
    if not _fits(settled + amount, flops):
        return "refuse"
    return "retry"


def _fits(total: float, flops: float) -> bool:
    # A budget of exactly k plans admits k trials, whatever rounding the sum of their plans met.
    return total <= flops * (1 + RTOL)


def _positive(value: Any) -> float | None:
    """``value`` as a positive finite float when it is such a number (not a string, not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _reservation(trial: FrozenTrial) -> dict[str, Any] | None:
    """The trial's reservation record, or ``None`` when it has none (or one this version cannot read)."""
    record = trial.system_attrs.get(BUDGET_RESERVATION_KEY)
    if isinstance(record, dict) and record.get("state") in _STATES and _positive(record.get("compute")):
        return record
    return None


class ComputeBudget:
    """Keep an Optuna study's training compute within a budget: reserve each trial's compute before it trains,
    and stop ``study.optimize`` when no further trial fits.

    Two parts, used together::

        budget = sh_scaling.ComputeBudget(1e21, max_compute=lambda p: planned_flops(p))

        def objective(trial):
            width = trial.suggest_int("width", 64, 1024)
            budget.reserve(trial)          # before training; raises optuna.TrialPruned if it would not fit
            ...                            # train, sh_scaling.report(...), trial.should_prune()

        study.optimize(objective, n_jobs=8, callbacks=[budget])

    :meth:`reserve` writes the trial's planned compute to the study's storage and checks it against what
    every other trial holds; a trial that would pass the budget is pruned before it trains and its worker's
    ``study.optimize`` stops. The callback stops ``study.optimize`` after a trial when not even one more trial
    could fit (one of the smallest plan known after a trial that reserved, since :meth:`reserve` checks each
    trial's own plan; of the largest after one that did not), so a worker need not start a trial only to see
    it refused. Everything lives in the storage, so every thread (``n_jobs``) and every process sharing the
    study (in-memory, SQLite, a journal file, PostgreSQL) keeps the same budget; each process builds its own
    ``ComputeBudget`` with the same numbers.

    **What counts.** Finished trials (complete, pruned or failed) count the largest compute they reported
    (:func:`sh_scaling.report`; training past the last report is not seen). A running trial with a
    reservation counts the larger of its reservation and what it has reported. A running trial without one
    (:meth:`reserve` not called) counts the larger of what it reported and its planned compute (the trial's
    ``max_compute`` from :func:`sh_scaling.report`, else this budget's ``max_compute``).

    **The promise.** With every trial reserved at its planned compute, the sweep's compute passes the budget
    by at most what trials train past their plans (less than one evaluation for a trial that stops at its
    first evaluation at or beyond its ``max_compute``), however many trials run at once and in whatever order
    their workers interleave. Pruned trials give back what they did not spend, so
    later trials can use it. Without :meth:`reserve`, trials already running when the callback stops a worker
    are not stopped by it, and with several trials at once the total can pass the budget by what they spend
    (the callback warns once when it sees this).

    **How the reservation stays correct with many writers.** Optuna's storages offer no compare-and-set on
    attributes, so the ledger is built from what every storage does guarantee: a write that has returned is
    seen by every later read, in any process. A trial writes its reservation as *pending*, then reads every
    trial, and is admitted only if it fits with every other pending reservation counted, then marks itself
    *admitted*. Of any two trials admitted, the one that read last saw the other's reservation, so the last
    admitted trial saw them all and the admitted total fits. Two trials that would each fit only if the other
    were refused both back off (*withdrawn*) and try again after a random pause (up to 8 tries, about 1 s at
    most); meanwhile they count against nobody. A trial whose worker died while holding a reservation keeps
    holding it until its trial is finished (with RDB storages, by Optuna's heartbeat), which errs on the side
    of the budget.

    Args:
        flops: The budget, in the unit compute is reported in (a positive finite number).
        max_compute: Planned compute of a trial, for :meth:`reserve` and for trials that did not give one to
            :func:`sh_scaling.report`: a positive number, or a function of the trial's params (as the pruner's
            ``max_compute``). Default ``None``: each trial gives its own (``reserve(trial, max_compute=...)``).
    """

    def __init__(self, flops: float, *, max_compute: float | Callable[[dict[str, Any]], float] | None = None
                 ) -> None:
        if _positive(flops) is None:
            raise ValueError(f"ComputeBudget: flops must be a positive finite number, got {flops!r}")
        if max_compute is not None and not callable(max_compute) and _positive(max_compute) is None:
            raise ValueError(f"ComputeBudget: max_compute must be a positive number or a function of the "
                             f"params, got {max_compute!r}")
        self.flops = float(flops)
        self.max_compute = max_compute
        self._warned_unreserved = False
        self._warned_fallback = False

    # ------------------------------------------------------------------------------------------ reading
    def _planned(self, trial: FrozenTrial) -> float | None:
        value = trial.system_attrs.get(MAX_COMPUTE_KEY)
        if value is None and self.max_compute is not None:
            try:
                value = self.max_compute(dict(trial.params)) if callable(self.max_compute) else self.max_compute
            except Exception:  # noqa: BLE001 - a plan that cannot be computed is unknown, not an error
                value = None
        return _positive(value) if value is not None else None

    def _holds(self, trial: FrozenTrial) -> tuple[float, bool]:
        """What ``trial`` counts against the budget, and whether that is a pending reservation."""
        reported = max(reported_compute(trial).values(), default=0.0)
        if trial.state.is_finished():
            return reported, False
        if trial.state != TrialState.RUNNING:
            return 0.0, False
        record = _reservation(trial)
        if record is None:
            return max(reported, self._planned(trial) or 0.0), False
        if record["state"] in (_PENDING, _ADMITTED):
            return max(reported, float(record["compute"])), record["state"] == _PENDING
        return reported, False

    def status(self, study: optuna.Study) -> dict[str, float]:
        """The budget as the rule above counts it, read from the storage.

        ``spent`` (finished trials), ``committed`` (running trials, reserved or not), ``next`` (the planned
        compute of one more trial: ``max_compute`` when it is a number, else the largest planned compute among
        the study's trials, 0 when none is known), ``smallest`` (the same with the smallest planned compute)
        and ``flops``.
        """
        spent: list[float] = []
        committed: list[float] = []
        plans = []
        for t in study.get_trials(deepcopy=False):
            planned = self._planned(t)
            if planned is not None:
                plans.append(planned)
            held, _ = self._holds(t)
            (spent if t.state.is_finished() else committed).append(held)
        if self.max_compute is not None and not callable(self.max_compute):
            plans = [float(self.max_compute)]
        return {"spent": math.fsum(spent), "committed": math.fsum(committed), "next": max(plans, default=0.0),
                "smallest": min(plans, default=0.0), "flops": self.flops}

    def would_pass(self, study: optuna.Study) -> bool:
        """Whether one more trial of ``next`` compute would pass the budget: the callback's rule after a trial
        that reserved nothing (after one that reserved, one more of the ``smallest`` plan)."""
        s = self.status(study)
        return not _fits(s["spent"] + s["committed"] + s["next"], self.flops)

    # ------------------------------------------------------------------------------------------ reserving
    def reserve(self, trial: optuna.trial.Trial, *, max_compute: float | None = None) -> float:
        """Reserve the trial's planned compute before it trains; prune it if that would pass the budget.

        Call it in the objective once the params that decide the trial's size are suggested, before any
        training. It returns the compute reserved; calling it again for the same trial returns the same.

        The planned compute is, in order: ``max_compute`` given here (also stored as the trial's
        ``max_compute`` unless it has one, which :func:`sh_scaling.report` and the pruner then use), the trial's own
        ``max_compute`` already stored, this budget's ``max_compute``. With none of them, the largest planned
        compute among the study's trials is reserved, with a warning (once): the budget then holds only if
        the trial is no larger than that.

        Raises:
            optuna.TrialPruned: the trial would pass the budget. Nothing was trained; its reservation is
                marked refused (:data:`~sh_scaling.keys.BUDGET_RESERVATION_KEY`, with the numbers) and, inside
                ``study.optimize``, the study is told to stop, so this worker starts no further trial.
            ValueError: ``max_compute`` (here or the budget's function of the params) is not a positive
                finite number, or no planned compute is known for the trial nor for any trial of the study.
                Inside ``study.optimize`` the trial then fails with this message.
        """
        if not isinstance(trial, optuna.trial.Trial):
            raise ValueError(f"ComputeBudget.reserve needs the running optuna.trial.Trial that the objective was "
                             f"given, got {type(trial).__name__}")
        study, storage, tid = trial.study, trial.storage, trial._trial_id
        own = storage.get_trial(tid)
        record = _reservation(own)
        if record is not None and record["state"] == _ADMITTED:
            return float(record["compute"])
        amount, fallback = self._plan_for_reserve(trial, own, max_compute)
        if not fallback and own.system_attrs.get(MAX_COMPUTE_KEY) is None:
            storage.set_trial_system_attr(tid, MAX_COMPUTE_KEY, amount)
        pause = _BACKOFF_S[0]
        for attempt in range(1, _TRIES + 1):
            storage.set_trial_system_attr(tid, BUDGET_RESERVATION_KEY,
                                          {"compute": amount, "state": _PENDING, "attempt": attempt})
            settled, pending = self._others(study, tid)
            verdict = _admission(self.flops, amount, settled, pending)
            if verdict == "admit":
                storage.set_trial_system_attr(tid, BUDGET_RESERVATION_KEY,
                                              {"compute": amount, "state": _ADMITTED, "attempt": attempt,
                                               "fallback": fallback})
                return amount
            if verdict == "refuse" or attempt == _TRIES:
                break
            storage.set_trial_system_attr(tid, BUDGET_RESERVATION_KEY,
                                          {"compute": amount, "state": _WITHDRAWN, "attempt": attempt})
            time.sleep(_rng.uniform(0.0, pause))
            pause = min(2 * pause, _BACKOFF_S[1])
        why = (f"ComputeBudget: trial {trial.number} was not started: its planned compute {amount:.4g} would "
               f"take the sweep to {settled + pending + amount:.4g} of the {self.flops:.4g} budget "
               f"({settled:.4g} spent or held by admitted trials")
        if pending:
            why += f", {pending:.4g} held by trials still deciding"
            why += f", after {attempt} tries" if attempt > 1 else ""
        why += ")"
        storage.set_trial_system_attr(tid, BUDGET_RESERVATION_KEY,
                                      {"compute": amount, "state": _REFUSED, "attempt": attempt, "why": why})
        try:
            study.stop()
        except RuntimeError:  # outside study.optimize (ask and tell): the caller tells the trial and stops
            pass
        raise optuna.TrialPruned(why)

    def _plan_for_reserve(self, trial: optuna.trial.Trial, own: FrozenTrial,
                          max_compute: float | None) -> tuple[float, bool]:
        """The compute to reserve, and whether it is the study's largest plan standing in for an unknown one."""
        if max_compute is not None:
            value = _positive(max_compute)
            if value is None:
                raise ValueError(f"ComputeBudget.reserve: max_compute must be a positive finite number, got "
                                 f"{max_compute!r}")
            return value, False
        stored = _positive(own.system_attrs.get(MAX_COMPUTE_KEY))
        if stored is not None:
            return stored, False
        if self.max_compute is not None:
            try:
                value = self.max_compute(dict(own.params)) if callable(self.max_compute) else self.max_compute
            except Exception as exc:  # noqa: BLE001 - named, so the user sees which function failed
                raise ValueError(f"ComputeBudget.reserve: max_compute raised {type(exc).__name__}: {exc} for "
                                 f"params {dict(own.params)!r}") from exc
            planned = _positive(value)
            if planned is None:
                raise ValueError(f"ComputeBudget.reserve: max_compute({dict(own.params)!r}) returned {value!r}, "
                                 "not a positive finite number")
            return planned, False
        plans = [p for t in trial.study.get_trials(deepcopy=False) if (p := self._planned(t)) is not None]
        if not plans:
            raise ValueError(f"ComputeBudget.reserve: trial {trial.number} has no planned compute and no trial of "
                             "the study has one; pass reserve(trial, max_compute=...) or "
                             "ComputeBudget(flops, max_compute=...)")
        if not self._warned_fallback:
            self._warned_fallback = True
            warnings.warn(f"ComputeBudget.reserve: trial {trial.number} has no planned compute; it reserves the "
                          f"largest one in the study ({max(plans):.4g}), and the budget holds only if it trains "
                          "no more. Pass reserve(trial, max_compute=...) or ComputeBudget(flops, max_compute=...)",
                          stacklevel=3)
        return max(plans), True

    def _others(self, study: optuna.Study, tid: int) -> tuple[float, float]:
        """``(settled, pending)``: what the study's other trials hold, read now from the storage."""
        settled: list[float] = []
        pending: list[float] = []
        for t in study.get_trials(deepcopy=False):
            if t._trial_id != tid:
                held, is_pending = self._holds(t)
                (pending if is_pending else settled).append(held)
        return math.fsum(settled), math.fsum(pending)

    # ------------------------------------------------------------------------------------------ callback
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self._warned_unreserved and _reservation(trial) is None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if any(_reservation(t) is None for t in running):
                self._warned_unreserved = True
                warnings.warn("ComputeBudget: trials ran at once without reserving their compute, so the sweep "
                              "can pass the budget by what they spend; call budget.reserve(trial) in the "
                              "objective before training", stacklevel=2)
        s = self.status(study)
        # A trial that reserved: every later trial's own plan is checked by reserve(), so stop only when not even
        # the smallest plan could fit. Otherwise the next trial is not checked: assume it is the largest.
        nxt = s["smallest"] if _reservation(trial) is not None else s["next"]
        if not _fits(s["spent"] + s["committed"] + nxt, self.flops):
            study.stop()
