"""The compute budget: the ledger of budget-limited halving, and a budget for any Optuna study.

**Ledger of :class:`~sh_scaling.BudgetedHalving`.** The segment records of the candidates' trials *are* the
ledger: each holds the compute it was granted (``charge``), written before the segment starts. A segment
counts once, by its record, whatever happens to it: finished (``done``), failed (its ``train_fn`` raised: the
compute was most likely spent), or in flight (``reserved``). A retry after a killed worker reuses the record,
so it is not counted again; a restart from scratch (a checkpoint that cannot be loaded) rewrites the record
with the larger grant. :func:`ledger` sums them; the driver also keeps a summary in the study
(:data:`sh_scaling.keys.BUDGETED_LEDGER_KEY`) for dashboards.

**A budget for any study.** :class:`ComputeBudget` is a study callback that stops ``study.optimize`` before
the compute of finished and running trials, plus one more trial, would pass a budget: "stop at 1e21 FLOPs"
for the asynchronous pruner, or any study whose objective reports compute with :func:`sh_scaling.report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sh_scaling.budgeted._records import segments
from sh_scaling.halving import RTOL
from sh_scaling.keys import MAX_COMPUTE_KEY
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


class ComputeBudget:
    """Study callback: stop ``study.optimize`` before the sweep's compute would pass ``flops``.

    After each trial, the callback adds up, from the study's storage (so it works the same in every worker
    process of a distributed study):

    * **spent**: for every finished trial (complete, pruned or failed), the largest compute it reported
      (:func:`sh_scaling.report`); training past the last report is not seen;
    * **committed**: for every running trial, the larger of what it has reported so far and its planned
      compute (its ``max_compute``, from :func:`sh_scaling.report` or this callback's ``max_compute``), since
      an unpruned trial trains to its end; a running trial with no known plan counts what it reported;
    * **next**: the planned compute of one more trial: ``max_compute`` when it is a number, else the largest
      planned compute among the study's trials (0 when none is known);

    and calls ``study.stop()`` when ``spent + committed + next > flops``. With trials run one at a time and
    every trial's planned compute known, the sweep therefore never passes the budget: a new trial starts
    only if it fits even if nothing prunes it. Pruned trials then leave budget unspent; that is the price of
    the promise. With several trials in parallel (``n_jobs`` or processes), trials already started when one
    process stops are not stopped by it, so the total can pass the budget by what they spend.

    Args:
        flops: The budget, in the unit compute is reported in (> 0).
        max_compute: Planned compute of a trial when :func:`sh_scaling.report` was not given one: a number, or
            a function of the trial's params (as the pruner's ``max_compute``).

    Example::

        study.optimize(objective, n_trials=1000, callbacks=[sh_scaling.ComputeBudget(1e21)])
    """

    def __init__(self, flops: float, *, max_compute: float | Callable[[dict[str, Any]], float] | None = None
                 ) -> None:
        if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not (math.isfinite(flops) and flops > 0):
            raise ValueError(f"ComputeBudget: flops must be a positive finite number, got {flops!r}")
        if max_compute is not None and not callable(max_compute):
            if isinstance(max_compute, bool) or not isinstance(max_compute, (int, float)) or not (
                    math.isfinite(max_compute) and max_compute > 0):
                raise ValueError(f"ComputeBudget: max_compute must be a positive number or a function of the "
                                 f"params, got {max_compute!r}")
        self.flops = float(flops)
        self.max_compute = max_compute

    def _planned(self, trial: FrozenTrial) -> float | None:
        value = trial.system_attrs.get(MAX_COMPUTE_KEY)
        if value is None and self.max_compute is not None:
            try:
                value = self.max_compute(dict(trial.params)) if callable(self.max_compute) else self.max_compute
            except Exception:  # noqa: BLE001 - a plan that cannot be computed is unknown, not an error
                value = None
        try:
            value = float(value) if value is not None else None
        except (TypeError, ValueError):
            return None
        return value if value is not None and math.isfinite(value) and value > 0 else None

    def status(self, study: optuna.Study) -> dict[str, float]:
        """``spent``, ``committed``, ``next`` and ``flops`` as the rule above counts them."""
        spent = committed = 0.0
        plans = []
        for t in study.get_trials(deepcopy=False):
            reported = max(reported_compute(t).values(), default=0.0)
            planned = self._planned(t)
            if planned is not None:
                plans.append(planned)
            if t.state.is_finished():
                spent += reported
            elif t.state == TrialState.RUNNING:
                committed += max(reported, planned or 0.0)
        if self.max_compute is not None and not callable(self.max_compute):
            nxt = float(self.max_compute)
        else:
            nxt = max(plans, default=0.0)
        return {"spent": spent, "committed": committed, "next": nxt, "flops": self.flops}

    def would_pass(self, study: optuna.Study) -> bool:
        s = self.status(study)
        return s["spent"] + s["committed"] + s["next"] > self.flops

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.would_pass(study):
            study.stop()
