"""What the study's finished trials tell about forecasts.

A trial that has finished at its planned compute is the truth its forecasts can be checked against: each rung
record holds the forecast of the loss at the trial's ``max_compute`` made at that rung, and the trial's curve
holds the loss it reached there. From them:

* the forecasts' errors by stage of the run, in units of their own std (``calibrate=True``) and as log ratios
  (the stage error model, :func:`sh_scaling.halving.stage_margin`);
* how far a trial can drop from a stage of its run to its end (``calibrate=True``: forecasts beyond that are
  implausible).

Everything here is read once per finished trial (the pruner caches it) and is pure given the trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from sh_scaling.halving import MIN_CALIBRATION_RESIDUALS
from sh_scaling.keys import rung_records
from sh_scaling.pruning._compute import loss_at, observed_curve
from sh_scaling.pruning._competitors import Finished, RungSummary
from sh_scaling.surrogates import MIN_POINTS

__all__ = [
    "CALIBRATION_STAGE_FACTOR",
    "FinishedOutcomes",
    "IMPLAUSIBLE_DROP_FACTOR",
    "MIN_DROP_TRIALS",
    "REACHED",
    "Outcome",
    "SettledMisses",
    "drop_bound",
    "forecast_kind",
    "forecast_residuals",
    "outcome_at",
    "reached",
    "read_finished",
    "proven_misses",
    "stage_errors",
]

#: With ``calibrate=True`` a decision at a fraction ``s`` of its target is calibrated by forecasts made between
#: ``s / 2`` and ``2 s`` (when there are enough): on the routing, schedule and synthetic sets
#: (``benchmarks/bench_forecast_coverage.py``) the errors of forecasts made before 10 % of a run are several
#: times those made past half of it, in units of their own std.
CALIBRATION_STAGE_FACTOR = 2.0
#: With ``calibrate=True`` a forecast is implausible when it has the trial drop more, from its loss at a stage of
#: its run to the end, than this factor times (in log loss) the largest drop any finished trial of the study made
#: from the same stage; it is then held at that bound (recorded as ``implausible``). The largest of a handful of
#: finished trials understates the largest possible; 1.5 leaves room for that and still catches the failure
#: this is for, a power law fitted to the first points of a run forecasting 25-33 % below the outcome.
IMPLAUSIBLE_DROP_FACTOR = 1.5
#: Finished trials (that reached their ``max_compute``) needed before forecasts are checked against them.
MIN_DROP_TRIALS = 5
#: A run whose last report lies within this fraction of its planned compute has reached it, its last loss being
#: its outcome: the last evaluation of a run often falls a few steps before its planned end (the 27 runs of Luo
#: et al. end at 99.6-99.9 % of their schedules).
REACHED = 0.98


def reached(compute: np.ndarray, planned: float) -> bool:
    """Whether a run whose reports end at ``compute[-1]`` reached its ``planned`` compute (within :data:`REACHED`)."""
    return compute.size > 0 and math.isfinite(planned) and float(compute[-1]) >= REACHED * planned


def outcome_at(compute: np.ndarray, loss: np.ndarray, target: float) -> float:
    """The loss a run reached at ``target`` (its last loss when it ended within :data:`REACHED` of it)."""
    return loss_at(compute, loss, min(float(target), float(compute[-1])))


@dataclass(frozen=True)
class Outcome:
    """What a finished trial tells about forecasts.

    ``errors``: ``((outcome - forecast) / std, stage)`` of the model forecasts recorded for it; ``log_errors``:
    ``(log(outcome / forecast), stage, kind)`` of the same forecasts and of those without a std, ``kind`` being
    ``"multipower"`` for schedule-aware forecasts and ``"own"`` for the others; ``drops`` (if it reached its
    ``max_compute``): its curve as log loss above its end against log fraction of its run.
    """

    errors: list[tuple[float, float]]
    log_errors: list[tuple[float, float, str]]
    drops: tuple[np.ndarray, np.ndarray] | None


def read_finished(
    t: optuna.trial.FrozenTrial,
    compute_fn: Callable[[dict[str, Any], int], float] | None,
    planned: float,
) -> tuple[Finished, Outcome]:
    """Read a finished trial once: its rung records, last point and outcome (:class:`Finished`) and what it
    tells about forecasts (:class:`Outcome`). ``planned``: its ``max_compute`` (NaN where it cannot be read)."""
    sa = t.system_attrs
    summary = RungSummary.read(sa)
    if not t.intermediate_values:
        return Finished(summary, None, None), Outcome([], [], None)
    c, l, _ = observed_curve(t.intermediate_values, sa, t.params, compute_fn)
    ok = np.isfinite(l) & (l > 0)
    c, l = c[ok], l[ok]
    final = (float(c[-1]), float(l[-1])) if c.size else None
    done = reached(c, planned)
    outcome = outcome_at(c, l, planned) if done else None
    if outcome is not None and not math.isfinite(outcome):
        outcome = None
    errors: list[tuple[float, float]] = []
    log_errors: list[tuple[float, float, str]] = []
    for rec in summary.records.values():
        forecast, target = rec.get("forecast"), rec.get("target")
        if rec.get("fallback") or forecast is None or target is None or not float(forecast) > 0:
            continue
        if not reached(c, float(target)):
            continue  # finished before the forecast's target: no outcome there
        value = outcome_at(c, l, float(target))
        if not (math.isfinite(value) and value > 0):
            continue
        stage = float(rec["compute"]) / float(target)
        log_errors.append((math.log(value / float(forecast)), stage, forecast_kind(rec)))
        std = rec.get("std")
        if std:
            errors.append(((value - float(forecast)) / float(std), stage))
    drops = None
    if c.size >= MIN_POINTS and done:
        # The drop from a point is read off the running minimum (what the trial had reached): curves are noisy.
        drops = (np.log(c / planned), np.log(np.minimum.accumulate(l) / l[-1]))
    return Finished(summary, final, outcome), Outcome(errors, log_errors, drops)


def forecast_kind(record: dict[str, Any]) -> str:
    """The kind of forecast a rung record holds: ``"multipower"`` (schedule-aware) or ``"own"`` (the others)."""
    return "multipower" if record.get("surrogate") == "multipower" else "own"


def drop_bound(outcomes: Iterable[Outcome], stage: float) -> tuple[float, int] | None:
    """The largest plausible log drop from a trial's loss at ``stage`` (a fraction of its ``max_compute``) to
    its end: :data:`IMPLAUSIBLE_DROP_FACTOR` times the largest the finished trials' ``outcomes`` made from the
    same stage, with how many finished trials that is; ``None`` with fewer than :data:`MIN_DROP_TRIALS`."""
    x = math.log(stage)
    curves = (o.drops for o in outcomes if o.drops is not None)
    drops = [float(np.interp(x, lf, ld)) for lf, ld in curves if lf[0] <= x <= lf[-1]]
    if len(drops) < MIN_DROP_TRIALS:
        return None
    return IMPLAUSIBLE_DROP_FACTOR * max(max(drops), 0.0), len(drops)


def forecast_residuals(outcomes: Iterable[Outcome], stage: float | None = None) -> np.ndarray:
    """Standardised errors ``(outcome - forecast) / std`` of the model forecasts recorded for finished trials,
    the outcome being the loss each reached at the forecast's target compute.

    With ``stage`` (the fraction of its target a trial has spent at the decision), those of forecasts made at a
    similar stage (within a factor of :data:`CALIBRATION_STAGE_FACTOR`) when there are enough of them: early
    forecasts miss by more than late ones, and pooling would blur the two.
    """
    pairs = np.array([e for o in outcomes for e in o.errors], dtype=float).reshape(-1, 2)
    if stage is not None and stage > 0:
        near = np.abs(np.log(np.maximum(pairs[:, 1], 1e-12) / stage)) <= math.log(CALIBRATION_STAGE_FACTOR)
        if near.sum() >= MIN_CALIBRATION_RESIDUALS:
            return pairs[near, 0]
    return pairs[:, 0]


def stage_errors(outcomes: Iterable[Outcome], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The log errors ``log(outcome / forecast)`` of finished trials' forecasts of one ``kind``, with the stage
    (fraction of the run) each was made at: the study's own evidence for the stage error model."""
    arr = _stage_rows(outcomes, kind)
    return arr[:, 0], arr[:, 1]


def _stage_rows(outcomes: Iterable[Outcome], kind: str) -> np.ndarray:
    """:func:`stage_errors` as rows ``(log error, stage)``."""
    rows = [(e, s) for o in outcomes for e, s, k in o.log_errors if k == kind]
    return np.array(rows, dtype=float).reshape(-1, 2)


class FinishedOutcomes:
    """The outcomes of a study's completed trials, in trial order, and what decisions derive from them.

    A value: :meth:`extended` returns another when more trials have completed, reading only the new ones
    (the pruner keeps the latest per study; a completed trial's outcome no longer changes). Each kind's
    :meth:`stage_errors` is read once per set of outcomes, carried over from the set before and extended by
    the new trials'; :meth:`derived` keeps other values computed from them (the stage error model's centre
    tables), for as long as the outcomes are the same.
    """

    def __init__(self, ids: tuple[int, ...] = (), outcomes: tuple[Outcome, ...] = (),
                 rows: dict[str, np.ndarray] | None = None) -> None:
        self.ids = ids
        self.outcomes = outcomes
        self._rows: dict[str, np.ndarray] = dict(rows or {})
        self._derived: dict[Any, Any] = {}

    def extended(self, trials: list[optuna.trial.FrozenTrial],
                 read: Callable[[optuna.trial.FrozenTrial], Outcome]) -> FinishedOutcomes:
        """The outcomes of ``trials`` (the study's completed trials, in trial order): ``self`` when they are the
        same trials, else a new value that reads (``read``) only the trials not in ``self`` when those come
        after the ones it holds, and all of them otherwise."""
        ids = tuple(t._trial_id for t in trials)
        if ids == self.ids:
            return self
        n = len(self.ids)
        if ids[:n] != self.ids:
            return FinishedOutcomes(ids, tuple(read(t) for t in trials))
        new = tuple(read(t) for t in trials[n:])
        rows = {kind: np.concatenate([arr, _stage_rows(new, kind)]) for kind, arr in self._rows.items()}
        return FinishedOutcomes(ids, self.outcomes + new, rows)

    def stage_errors(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """:func:`stage_errors` of the outcomes (the same values)."""
        arr = self._rows.get(kind)
        if arr is None:
            arr = self._rows[kind] = _stage_rows(self.outcomes, kind)
        return arr[:, 0], arr[:, 1]

    def derived(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept under ``key`` for these outcomes (it must depend on nothing else that changes)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]


def proven_misses(summaries: Iterable[RungSummary], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """What unfinished trials already prove about forecasts of one ``kind``: for each forecast recorded at a rung,
    when a later rung of the same trial has already observed a loss below it, ``log(observed / forecast)`` (an
    upper bound on the forecast's log error, since a run's loss at its end is at most about what it has
    reached), with the stage the forecast was made at. Only misses of a pessimistic forecast are proven this
    way; nothing is said about the others."""
    rows: list[tuple[float, float]] = []
    for summary in summaries:
        recs = sorted(summary.records.values(), key=lambda rec: float(rec["compute"]))
        later_min = math.inf
        for rec in reversed(recs):
            forecast, target = rec.get("forecast"), rec.get("target")
            if (forecast_kind(rec) == kind and not rec.get("fallback") and forecast is not None and target
                    and float(forecast) > 0 and later_min < float(forecast)):
                rows.append((math.log(later_min / float(forecast)), float(rec["compute"]) / float(target)))
            loss = rec.get("loss")
            if loss is not None and math.isfinite(float(loss)) and float(loss) > 0:
                later_min = min(later_min, float(loss))
    arr = np.array(rows, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


class SettledMisses:
    """The :func:`proven_misses` of trials that no longer change (pruned, failed), gathered as they are added.

    The misses are kept per trial; :meth:`misses` joins them once per set of trials (their order is not
    kept: what the stage error model reads of them, the largest near a stage and how many, does not depend on it).
    """

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self._parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._joined: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, trial_id: int, misses: tuple[np.ndarray, np.ndarray]) -> None:
        """Add a trial's misses (once: a trial already added is left as it is)."""
        if trial_id in self.ids:
            return
        self._parts[trial_id] = misses
        self.ids.add(trial_id)
        self._joined = None

    def misses(self, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All the trials' misses, ``(log_errors, stages)``, without those of the trial ``exclude``."""
        if exclude in self.ids:
            parts = [p for tid, p in self._parts.items() if tid != exclude]
            return _joined(parts)
        joined = self._joined
        if joined is None:
            joined = self._joined = _joined(list(self._parts.values()))
        return joined


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.empty(0), np.empty(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
