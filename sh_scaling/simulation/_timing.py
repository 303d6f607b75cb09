"""Simulated wall-clock time of a replay: when each report of a trial arrives, and how long K workers take.

A trial's reports arrive at times counted from the trial's start, given either by one throughput for all trials
(compute per second: a report at compute ``c`` arrives ``c / throughput`` seconds in) or by a function
``duration(curve, compute) -> seconds since the trial started`` (measured seconds per step, or the wall-clock
model of :mod:`sh_scaling.laws`). Both the replay and the clairvoyant bound read times from here, checked once,
before any study starts.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sh_scaling.curves import Curve

__all__ = ["Duration", "check_workers", "list_schedule_makespan", "report_times"]

#: ``duration(curve, compute) -> seconds`` from the trial's start to its report at ``compute``.
Duration = Callable[[Curve, float], float]


def check_workers(n_workers: Any) -> int:
    """``n_workers`` as an int, or a ``ValueError`` naming the value."""
    try:
        k = operator.index(n_workers)
    except TypeError:
        raise ValueError(f"n_workers={n_workers!r}: must be an integer >= 1") from None
    if isinstance(n_workers, bool) or k < 1:
        raise ValueError(f"n_workers={n_workers!r}: must be an integer >= 1")
    return k


def _check_throughput(throughput: Any) -> float:
    try:
        value = float(throughput)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(throughput, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"throughput={throughput!r}: must be a finite number > 0 (compute per second)")
    return value


def _times_of(curve: Curve, duration: Duration) -> np.ndarray:
    """``duration`` at each point of ``curve``, checked: finite, positive, never decreasing."""
    out = np.empty(len(curve))
    for k, c in enumerate(curve.compute):
        where = f"duration(curve {curve.id!r}, compute {float(c):.6g})"
        try:
            raw = duration(curve, float(c))
        except Exception as exc:
            raise ValueError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{where} returned {raw!r}: expected seconds, a number") from None
        if isinstance(raw, bool) or not math.isfinite(value):
            raise ValueError(f"{where} returned {raw!r}: expected a finite number of seconds")
        if value <= 0:
            raise ValueError(f"{where} returned {raw!r}: a report arrives a positive time after its trial starts")
        if k and value < out[k - 1]:
            raise ValueError(f"{where} returned {raw!r}, earlier than {out[k - 1]!r} at compute "
                             f"{float(curve.compute[k - 1]):.6g}: a trial's reports arrive in order of compute")
        out[k] = value
    return out


def report_times(
    curves: Sequence[Curve], duration: Duration | None = None, throughput: float | None = None
) -> list[np.ndarray]:
    """Seconds from each trial's start to each of its reports, one array per curve.

    Args:
        curves: The curves replayed.
        duration: ``duration(curve, compute) -> seconds since the trial started``, called once per point; its
            times must be finite, positive and never decreasing along a curve (else a ``ValueError`` naming the
            curve and the value).
        throughput: Compute per second, the same for every trial, when ``duration`` is not given (default 1:
            times in units of compute). Give one of the two.
    """
    if duration is not None and throughput is not None:
        raise ValueError("give duration or throughput, not both: a duration function sets every trial's times")
    if duration is None:
        rate = _check_throughput(1.0 if throughput is None else throughput)
        return [np.asarray(c.compute, dtype=float) / rate for c in curves]
    if not callable(duration):
        raise ValueError(f"duration={duration!r}: expected a function duration(curve, compute) -> seconds")
    return [_times_of(c, duration) for c in curves]


def list_schedule_makespan(lengths: Sequence[float], n_workers: int) -> float:
    """When ``n_workers`` workers end jobs of ``lengths`` seconds taken in order, each by the first worker free
    (greedy list scheduling; all free at time 0)."""
    free = [0.0] * min(n_workers, max(len(lengths), 1))
    for d in lengths:
        heapq.heappush(free, heapq.heappop(free) + float(d))
    return max(free)
