"""The least compute, and the least wall-clock time, a pruner with no regret can spend in a replayed sweep."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.simulation._replay import arrival_order
from sh_scaling.simulation._timing import Duration, check_workers, list_schedule_makespan, report_times

__all__ = ["clairvoyant_bound"]


@dataclass(frozen=True)
class _Study:
    """What the bound needs of each curve (index as in ``curves``)."""

    best: np.ndarray  # lowest loss
    upto: np.ndarray  # compute where it is reached
    upto_time: np.ndarray  # seconds from the trial's start to that report
    look: np.ndarray  # compute of the first possible decision
    look_time: np.ndarray  # seconds from the start to the report where that decision can be made (0: none)
    times: list[np.ndarray]
    computes: list[np.ndarray]


def _study(cs: list[Curve], times: list[np.ndarray], min_points: int, min_fraction: float) -> _Study:
    best = np.array([float(np.min(c.loss)) for c in cs])
    at = [int(np.argmin(c.loss)) for c in cs]
    look = np.array([
        min(float(c.final_compute), max(float(c.compute[min(min_points, len(c)) - 1]) if min_points else 0.0,
                                        min_fraction * float(c.meta.get("max_compute", c.final_compute))))
        for c in cs
    ])
    # A decision is made at a report: the first with at least the look's compute (none needed for a look of 0).
    look_time = np.array([
        float(t[min(int(np.searchsorted(c.compute, x)), len(c) - 1)]) if x > 0 else 0.0
        for c, t, x in zip(cs, times, look)
    ])
    return _Study(best, np.array([float(c.compute[k]) for c, k in zip(cs, at)]),
                  np.array([float(t[k]) for t, k in zip(times, at)]), look, look_time, times,
                  [np.asarray(c.compute, dtype=float) for c in cs])


def _least_load(lengths: np.ndarray, n_done: int, n_workers: int) -> float:
    """A lower bound on the time ``n_workers`` workers need to end ``n_done`` of jobs of ``lengths``: their
    total over the workers, and the longest of them."""
    if n_done <= 0:
        return 0.0
    done = np.sort(lengths)[:n_done]
    return max(float(done.sum()) / n_workers, float(done[-1]))


def _one_order(s: _Study, order: np.ndarray, n_workers: int) -> tuple[float, float]:
    """(least compute, least makespan) of a zero-regret pruner for one arrival order (see clairvoyant_bound)."""
    best = s.best[order]
    cost = np.empty(len(order))
    busy = np.empty(len(order))
    record = math.inf
    for p, i in enumerate(order):
        if best[p] >= record:  # beaten by an earlier arrival: stopped at its first look
            cost[p], busy[p] = s.look[i], s.look_time[i]
            continue
        record = best[p]
        later = np.flatnonzero(best[p + 1:] <= best[p])
        if n_workers == 1 or not later.size:  # nothing that beats it can start while it runs
            cost[p], busy[p] = s.upto[i], s.upto_time[i]
            continue
        # The first later arrival as good as it can start only after those between them have started, and all
        # but n_workers - 2 of those have ended, on the other n_workers - 1 workers.
        q = p + 1 + int(later[0])
        between = np.array([s.look_time[j] for j in order[p + 1:q]])
        wait = _least_load(between, len(between) - (n_workers - 2), n_workers - 1)
        # Stopped at its first report at or after that time, and not before its first look.
        k = min(int(np.searchsorted(s.times[i], wait)), len(s.times[i]) - 1)
        k = max(k, min(int(np.searchsorted(s.computes[i], s.look[i])), len(s.times[i]) - 1))
        stop = max(float(s.computes[i][k]), float(s.look[i]))
        if stop >= s.upto[i]:
            cost[p], busy[p] = s.upto[i], s.upto_time[i]
        else:
            cost[p], busy[p] = stop, float(s.times[i][k])
    # The sweep lasts at least its total busy time over the workers, and until any trial, started after all
    # earlier ones had started (all but n_workers - 1 of them ended), has run its least time.
    makespan = float(busy.sum()) / n_workers
    for p in range(len(order)):
        makespan = max(makespan, _least_load(busy[:p], p - (n_workers - 1), n_workers) + busy[p])
    return float(cost.sum()), makespan


def clairvoyant_bound(
    curves: CurveSet | Sequence[Curve],
    *,
    seeds: Sequence[int] | int = (0,),
    order: str = "random",
    min_points: int = 0,
    min_fraction: float = 0.0,
    min_improvement: float = 0.0,
    n_workers: int = 1,
    duration: Duration | None = None,
    throughput: float | None = None,
) -> pd.DataFrame:
    """The least compute and wall-clock time a pruner with no regret can spend when trials arrive as in a replay.

    The bound's pruner knows the whole curve of every trial that has started, at no cost, but not the trials
    still to come (it sees the study in the order :func:`replay_study` uses for the same seed, on
    ``n_workers`` workers). It may stop a trial only at one of its reports and not before its first look (see
    ``min_points``).

    **One worker.** To be sure of zero best-loss regret, whatever comes later, it must train every trial that
    beats all earlier ones (a *record*), up to the compute where that trial reaches its lowest loss; everything
    else it stops at its first look. A pruner that spends less in some study has stopped a record before its
    lowest loss with no better trial started: had every trial still to come been worse, the study would have
    lost its best loss, and the pruner, knowing only the trials started, could not have told the difference.

    **Several workers.** A record may now be stopped early, but only once a trial at least as good has
    started on another worker (by the same argument), and that trial is the first later arrival ``j`` as good
    as record ``i`` or one after it, so it starts no earlier than ``j``. Before ``j`` starts, every trial
    between ``i`` and ``j`` in arrival order has started on the other ``n_workers - 1`` workers, and all but
    ``n_workers - 2`` of them have ended (one of those workers takes ``j``), each having run at least to its
    first look. So ``j`` starts at least ``W`` seconds after ``i``, ``W`` being the larger of those trials'
    least total time over ``n_workers - 1`` workers and the longest of them, and ``i`` costs at least the
    compute of its first report at or after ``W`` (and of its first look), or its lowest loss's compute if
    that comes first. Non-records cost their first look; the last record (the study's best) its lowest loss's
    compute. The sum is a lower bound on the compute of any zero-regret pruner that knows only the trials
    started so far, with ``n_workers`` workers and reports at those times. With one worker no better trial
    can start while a record runs, and it is the one-worker bound. With several it is lower: a record can be
    stopped at its first look when the next one starts beside it. (The look's time is a report's time, so with
    ``min_points=0`` and ``min_fraction=0`` looks take no time, every record but the best costs only up to its
    first report, and the bound is little more than ``hindsight_frac``; ``min_points=1`` is the bound of any
    pruner in a replay, where each trial reports once before its first decision.)

    **Wall-clock.** Each trial keeps a worker busy for at least the time of the report it is stopped at in the
    bound above (a record its lowest loss's report or its stop, any other its first look). The sweep lasts at
    least the total of those times over the workers, and at least, for each trial, the least time before it
    can start (all earlier arrivals started, all but ``n_workers - 1`` of them ended, counted as above) plus
    its own. ``makespan_frac`` is that lower bound over the makespan of training every curve to its end on the
    same workers in the same order (greedy list scheduling, as :func:`replay_study`'s ``makespan_frac``). It is
    a valid bound, not an attainable one: the pruner that meets the compute bound need not meet this one.

    Args:
        curves, seeds, order: As for :func:`replay_study`.
        min_points, min_fraction: A trial it stops still costs the compute up to its first possible decision:
            its ``min_points``-th point, and at least ``min_fraction`` of its planned compute
            (``meta["max_compute"]``, else its final compute). The default pruner decides no trial before
            3 points and 5 % of its ``max_compute`` (``min_points=3, min_fraction=0.05``); 0 and 0 (the
            default) is the bound of any pruner.
        min_improvement: The clairvoyant form of the pruner's improvement rule, with one worker only: a trial
            is trained only if its lowest loss beats the best trained so far by more than this fraction, so the
            regret is at most that fraction (given per seed in ``regret``). 0 (default): the zero-regret bound
            above.
        n_workers, duration, throughput: The simulated workers and report times, as for :func:`replay_study`.

    Returns:
        One row per seed: ``seed``, ``n_workers``, ``compute_frac`` (the bound, a fraction of training every
        curve to its end), ``expected_frac`` (one worker: the bound's mean over all arrival orders, since the
        trial ranked ``k``-th by lowest loss is a record with probability ``1 / k``; NaN with several workers
        or with ``min_improvement`` > 0, where a trial's fate depends on more than its rank),
        ``hindsight_frac`` (training the best trial alone, and the others to their first possible decision:
        the oracle that knows the whole study in advance), ``regret`` (of the bound's pruner: 0 unless
        ``min_improvement``), ``makespan`` (the wall-clock lower bound, simulated seconds),
        ``exhaustive_makespan`` and ``makespan_frac`` (their ratio).
    """
    cs = list(curves)
    if len(cs) < 1:
        raise ValueError("clairvoyant_bound: no curves")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not (isinstance(min_points, int) and min_points >= 0):
        raise ValueError(f"min_points={min_points!r}: must be an integer >= 0")
    if not (0.0 <= min_fraction <= 1.0):
        raise ValueError(f"min_fraction={min_fraction!r}: must be in [0, 1]")
    if not (0.0 <= min_improvement < 1.0):
        raise ValueError(f"min_improvement={min_improvement!r}: must be in [0, 1)")
    workers = check_workers(n_workers)
    if min_improvement and workers > 1:
        raise ValueError(f"min_improvement={min_improvement!r} is the one-worker bound's rule; n_workers={workers}")
    times = report_times(cs, duration, throughput)
    s = _study(cs, times, min_points, min_fraction)
    total = float(sum(c.final_compute for c in cs))
    rank = np.argsort(np.argsort(s.best, kind="stable"), kind="stable") + 1
    # Over all orders: the trial ranked k-th is a record with probability 1 / k, stopped otherwise.
    expected = (float(np.sum(s.upto / rank + s.look * (1 - 1 / rank))) / total
                if min_improvement == 0 and workers == 1 else math.nan)
    winner = int(np.argmin(s.best))
    hindsight = float(s.upto[winner] + s.look.sum() - s.look[winner]) / total
    rows = []
    for seed in seed_list:
        arrivals = arrival_order(cs, seed, order)
        if min_improvement:
            record, spent = math.inf, 0.0
            busy = []
            for i in arrivals:
                trained = s.best[i] < record * (1 - min_improvement)
                record = s.best[i] if trained else record
                spent += s.upto[i] if trained else s.look[i]
                busy.append(s.upto_time[i] if trained else s.look_time[i])
            makespan, regret = float(sum(busy)), (record - s.best[winner]) / s.best[winner]
        else:
            (spent, makespan), regret = _one_order(s, arrivals, workers), 0.0
        exhaustive = list_schedule_makespan([times[i][-1] for i in arrivals], workers)
        rows.append({"seed": seed, "n_workers": workers, "compute_frac": spent / total, "expected_frac": expected,
                     "hindsight_frac": hindsight, "regret": regret, "makespan": makespan,
                     "exhaustive_makespan": exhaustive, "makespan_frac": makespan / exhaustive})
    return pd.DataFrame(rows)
