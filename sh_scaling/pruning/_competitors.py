"""Who a trial competes with at a rung, scored by what is known now.

A decision at rung ``k`` sets the deciding trial against every other trial that has passed the rung's compute.
Each competitor enters at the point where it was read at the rung (its compute and loss there: the comparison
point), and with the freshest estimate of where it ends:

* a trial that has finished at its planned compute: its outcome, the loss it reached there (no uncertainty);
* any other trial (running, pruned, or finished early): its latest model forecast, made at its highest rung;
* a trial with no model forecast after the rung: the forecast it had at the rung.

A record written at a rung is history: a forecast made when a competitor passed the rung (at 6 % of its run,
say) can be several percent off, and a decision made later that trusted it would rank the deciding trial
against a loss the competitor never reached.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from sh_scaling.halving import RTOL
from sh_scaling.keys import FIRST_RUNG_KEY, rung_records

__all__ = ["RungSummary", "Finished", "FinishedCompetitors", "competitors_at", "freshest"]


@dataclass(frozen=True)
class RungSummary:
    """A trial's rung records by rung index, its first rung, and their points in order of compute."""

    records: dict[int, dict[str, Any]]
    first_rung: int | None
    compute: list[float]
    loss: list[float]

    @classmethod
    def read(cls, system_attrs: Mapping[str, Any]) -> RungSummary:
        records = rung_records(system_attrs)
        points = sorted((float(v["compute"]), float(v["loss"])) for v in records.values())
        return cls(records, system_attrs.get(FIRST_RUNG_KEY), [p[0] for p in points], [p[1] for p in points])

    def latest_forecast(self) -> tuple[int, dict[str, Any]] | None:
        """The record of the highest rung with a model forecast (not a fallback), with its rung index."""
        for j in sorted(self.records, reverse=True):
            rec = self.records[j]
            if rec.get("forecast") is not None and not rec.get("fallback"):
                return j, rec
        return None


@dataclass(frozen=True)
class Finished:
    """What a finished trial's decisions need of it, read once (a finished trial no longer changes).

    ``final``: its last reported point with a finite positive loss, ``(compute, loss)``. ``outcome``: the loss
    it reached at its planned compute, if it got there (``None`` otherwise: pruned, stopped early, or a planned
    compute that cannot be read).
    """

    summary: RungSummary
    final: tuple[float, float] | None
    outcome: float | None
    _competing: dict[int, dict[str, Any] | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def competitor_at(self, k: int) -> dict[str, Any] | None:
        """Its record as a competitor at rung ``k`` (:func:`freshest` of :func:`_rung_record`), ``None`` if it has
        none with a forecast; scored once per rung (a finished trial no longer changes), a new dict each call."""
        if k not in self._competing:
            self._competing[k] = _scored(_rung_record(self.summary, k), k, self.summary, self.outcome)
        found = self._competing[k]
        return None if found is None else dict(found)


def _rung_record(summary: RungSummary, k: int) -> dict[str, Any] | None:
    """A trial's record at rung ``k``, else its first record if that is at a higher rung (it started beyond
    ``r_k``), else ``None``."""
    rec = summary.records.get(k)
    if rec is None:
        j = summary.first_rung
        rec = summary.records.get(j) if j is not None and j > k else None
    return rec


def _scored(rec: dict[str, Any] | None, k: int, summary: RungSummary, outcome: float | None) -> dict[str, Any] | None:
    """``rec`` as a competitor at rung ``k`` (:func:`freshest`), ``None`` when there is no record or it has no
    forecast."""
    return freshest(rec, k, summary, outcome) if rec is not None and rec.get("forecast") is not None else None


def freshest(rec: dict[str, Any], k: int, summary: RungSummary, outcome: float | None) -> dict[str, Any]:
    """A competitor's record at rung ``k`` with its forecast replaced by the freshest estimate of its end.

    Pure. The comparison point (``compute``, ``loss``) and ``target`` stay those of the rung; ``forecast`` and
    ``std`` become the outcome (std 0) when ``outcome`` is known, else the latest model forecast made at a rung
    above ``k``; ``fresh`` says which (absent: the rung's own forecast stands). A forecast (not an outcome) also
    carries ``forecast_stage`` (the fraction of the run it was made at) and ``forecast_kind``.
    """
    if outcome is not None and np.isfinite(outcome):
        return {**rec, "forecast": float(outcome), "std": 0.0, "fresh": "outcome"}
    latest = summary.latest_forecast()
    source = rec
    out = dict(rec)
    if latest is not None and latest[0] > k:
        j, source = latest
        out.update(forecast=source["forecast"], std=source.get("std") or 0.0, fresh=f"rung {j}")
    # Where and how the forecast used was made, for the stage error model.
    out["forecast_stage"] = float(source["compute"]) / float(source["target"])
    out["forecast_kind"] = "multipower" if source.get("surrogate") == "multipower" else "own"
    floor = source.get("floor")
    if floor is not None and float(floor) > float(out["forecast"]):
        # A schedule-aware forecast below the floor its trial's own curve allows (margin={"floor": True}): the
        # competitor is read at the floor.
        out.update(forecast=float(floor), floored=float(source["forecast"]))
    return out


def _pending(summary: RungSummary, k: int, r: float) -> dict[str, Any] | None:
    """A running trial below rung ``k`` that is planned past it: its highest record below ``k``, as a pending
    competitor (``None`` when it has no record below ``k``, that record has no forecast, or its target stops
    short of the rung's compute ``r``)."""
    below = [j for j in summary.records if j < k]
    if not below:
        return None
    j = max(below)
    rec = summary.records[j]
    if rec.get("forecast") is None or float(rec.get("target") or 0.0) < r * (1 + RTOL):
        return None
    return {**rec, "pending": j}


def competitors_at(
    study: optuna.study.Study,
    trial: optuna.trial.FrozenTrial,
    k: int,
    r: float,
    finished: Callable[[optuna.trial.FrozenTrial], Finished],
    *,
    observed: bool = False,
    trials: list[optuna.trial.FrozenTrial] | None = None,
    pending: bool = False,
    cache: FinishedCompetitors | None = None,
) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """The other trials' records that compete at rung ``k``, and every recorded point as an anchor.

    Competitors: every trial that has passed this rung's compute. Those with a record here were read at exactly
    ``r_k``. Those that started beyond ``r_k`` (a larger model's first evaluations already cost more) have no
    value there; they take part with their first record, which is later in compute and better informed. Each is
    scored by the freshest estimate of its end (:func:`freshest`).
    Anchors: every other trial's recorded ``(compute, loss)`` at rungs up to ``r`` (compute ``<= r``), owned by
    its index among the competitors (1-based: 0 is the trial being decided) or -1. Records beyond ``r`` are
    left out, as fixed-budget halving sees only what was observed up to the round it decides: set against
    realised losses of trials that went further, a forecast made at ``r`` (pessimistic early, on real curves)
    would lose to hindsight. Measured on the 223 routing curves (8 seeds of
    :func:`sh_scaling.simulation.replay_study`): with records at every rung as anchors the default pruner
    pruned the best run at its first rung in every seed (regret 0.58 %).

    ``finished`` gives a finished trial's :class:`Finished` (the pruner caches it: a finished trial no longer
    changes). With ``observed``, also what the study has observed, for the improvement rule: every other
    trial's recorded ``(compute, loss)`` at all its rungs, beyond ``r`` too, and each finished trial's last
    point; else ``None``. ``trials``: the study's trials, when the caller has read them already. ``cache``: the
    finished trials' part of the answer kept from earlier calls for the same study (:class:`FinishedCompetitors`;
    the same answer, read for the newly finished trials only).
    """
    limit = r * (1 + RTOL)
    tid = trial._trial_id
    trials = study.get_trials(deepcopy=False) if trials is None else trials

    def part(other: optuna.trial.FrozenTrial) -> _Part:
        return _part(other, k, r, limit, finished, observed=observed, pending=pending)

    if cache is not None:
        return cache.competitors(tid, trials, (k, limit, observed), part)
    others: list[dict[str, Any]] = []
    c: list[float] = []
    l: list[float] = []
    owner: list[int] = []
    seen_c: list[float] = []
    seen_l: list[float] = []
    for other in trials:
        if other._trial_id == tid:
            continue
        rec, below_c, below_l, other_c, other_l = part(other)
        index = -1
        if rec is not None:
            others.append(rec)
            index = len(others)
        c.extend(below_c)
        l.extend(below_l)
        owner.extend([index] * len(below_c))
        seen_c.extend(other_c)
        seen_l.extend(other_l)
    seen = (np.asarray(seen_c, float), np.asarray(seen_l, float)) if observed else None
    return others, (np.asarray(c, float), np.asarray(l, float), np.asarray(owner, int)), seen


#: What one other trial brings to a rung's competition: its record as a competitor (or ``None``), its recorded
#: points up to the rung's compute (anchors) and, with ``observed``, every point it has observed.
_Part = tuple[dict[str, Any] | None, list[float], list[float], list[float], list[float]]


def _part(
    other: optuna.trial.FrozenTrial,
    k: int,
    r: float,
    limit: float,
    finished: Callable[[optuna.trial.FrozenTrial], Finished],
    *,
    observed: bool,
    pending: bool,
) -> _Part:
    """``other``'s part in the competition at rung ``k`` (see :func:`competitors_at`)."""
    info = finished(other) if other.state.is_finished() else None
    if info is not None:
        summary = info.summary
        rec = info.competitor_at(k)
    else:
        summary = RungSummary.read(other.system_attrs)
        rec = _rung_record(summary, k)
        if rec is None and pending and other.state == TrialState.RUNNING:
            rec = _pending(summary, k, r)
        rec = _scored(rec, k, summary, None)
    n = bisect.bisect_right(summary.compute, limit)
    seen_c: list[float] = []
    seen_l: list[float] = []
    if observed:
        seen_c.extend(summary.compute)
        seen_l.extend(summary.loss)
        if info is not None and info.final is not None:
            seen_c.append(info.final[0])
            seen_l.append(info.final[1])
    return rec, summary.compute[:n], summary.loss[:n], seen_c, seen_l


class _Block:
    """The finished trials' parts at one rung (one ``(k, limit, observed)``), in trial order, joined."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.records: list[dict[str, Any] | None] = []
        # Per trial: competitors, anchors and observed points before it (the last entry: all of them).
        self.n_records = [0]
        self.n_anchors = [0]
        self.n_seen = [0]
        self._lists: tuple[list[float], list[float], list[int], list[float], list[float]] = ([], [], [], [], [])
        self._arrays: tuple[np.ndarray, ...] | None = None

    def add(self, trial_id: int, part: _Part) -> None:
        rec, below_c, below_l, seen_c, seen_l = part
        c, l, owner, all_c, all_l = self._lists
        self.ids.append(trial_id)
        self.records.append(rec)
        self.n_records.append(self.n_records[-1] + (rec is not None))
        c.extend(below_c)
        l.extend(below_l)
        owner.extend([self.n_records[-1] if rec is not None else -1] * len(below_c))
        all_c.extend(seen_c)
        all_l.extend(seen_l)
        self.n_anchors.append(len(c))
        self.n_seen.append(len(all_c))
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Anchors' compute, loss and owner (1-based among this block's competitors, -1: none) and the observed
        points' compute and loss, as arrays (read-only: shared between calls)."""
        if self._arrays is None:
            c, l, owner, all_c, all_l = self._lists
            arrays = (np.asarray(c, float), np.asarray(l, float), np.asarray(owner, int), np.asarray(all_c, float),
                      np.asarray(all_l, float))
            for a in arrays:
                a.setflags(write=False)
            self._arrays = arrays
        return self._arrays


class FinishedCompetitors:
    """What :func:`competitors_at` reads of a study's finished trials, per rung, kept between decisions.

    A finished trial's part in a rung's competition no longer changes (:class:`Finished`): each is read once
    per rung, and the parts of all of them are joined in trial order once, then extended as more trials finish
    (read again in whole when a trial finishes before one that finished earlier, as with several workers).
    A decision then reads only the running trials and places their parts among the finished ones, in the order
    :func:`competitors_at` gives without a cache: the same records, anchors and owners.
    """

    def __init__(self) -> None:
        self._blocks: dict[tuple[int, float, bool], _Block] = {}
        self._lock = threading.Lock()

    def competitors(
        self,
        tid: int,
        trials: list[optuna.trial.FrozenTrial],
        key: tuple[int, float, bool],
        part: Callable[[optuna.trial.FrozenTrial], _Part],
    ) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """:func:`competitors_at`'s answer for the trial ``tid`` among ``trials``, ``key`` the rung's ``(k,
        limit, observed)`` and ``part`` a trial's part in it."""
        done: list[optuna.trial.FrozenTrial] = []
        running: list[tuple[int, optuna.trial.FrozenTrial]] = []  # (finished trials before it, the trial)
        for other in trials:
            if other._trial_id == tid:
                continue
            if other.state.is_finished():
                done.append(other)
            else:
                running.append((len(done), other))
        block = self._block(key, done, part)
        c, l, owner, all_c, all_l = block.arrays()
        observed = key[2]
        if not running:
            others = [dict(rec) for rec in block.records if rec is not None]
            return others, (c, l, owner), ((all_c, all_l) if observed else None)
        # Running trials placed among the finished ones: the finished competitors after each are renumbered.
        others = []
        pieces: list[list[np.ndarray]] = [[], [], [], [], []]
        start = 0
        entries: list[tuple[int, optuna.trial.FrozenTrial | None]] = [*running, (len(done), None)]
        for stop, entry in entries:
            shift = len(others) - block.n_records[start]
            others.extend(dict(rec) for rec in block.records[start:stop] if rec is not None)
            a, b = block.n_anchors[start], block.n_anchors[stop]
            pieces[0].append(c[a:b])
            pieces[1].append(l[a:b])
            pieces[2].append(np.where(owner[a:b] > 0, owner[a:b] + shift, -1))
            pieces[3].append(all_c[block.n_seen[start]:block.n_seen[stop]])
            pieces[4].append(all_l[block.n_seen[start]:block.n_seen[stop]])
            if entry is not None:
                rec, below_c, below_l, seen_c, seen_l = part(entry)
                index = -1
                if rec is not None:
                    others.append(rec)
                    index = len(others)
                pieces[0].append(np.asarray(below_c, float))
                pieces[1].append(np.asarray(below_l, float))
                pieces[2].append(np.full(len(below_c), index, dtype=int))
                pieces[3].append(np.asarray(seen_c, float))
                pieces[4].append(np.asarray(seen_l, float))
            start = stop
        joined = [np.concatenate(p) for p in pieces]
        return others, (joined[0], joined[1], joined[2]), ((joined[3], joined[4]) if observed else None)

    def _block(
        self, key: tuple[int, float, bool], done: list[optuna.trial.FrozenTrial],
        part: Callable[[optuna.trial.FrozenTrial], _Part],
    ) -> _Block:
        with self._lock:
            block = self._blocks.get(key)
            n = 0 if block is None else len(block.ids)
            if block is None or n > len(done) or any(t._trial_id != i for t, i in zip(done[:n], block.ids)):
                block, n = _Block(), 0
            for other in done[n:]:
                block.add(other._trial_id, part(other))
            self._blocks[key] = block
            return block
