"""The learning-rate schedule a trial's forecasts follow: the one stated for it, or the rates it reported.

A trial's schedule is stated once (``SurrogateHalvingPruner(schedule=...)``, stored as a system attribute) and
may be checked against the learning rates reported with each loss (``sh_scaling.report(..., lr=)``). A schedule
is a shape over the fraction of the run: reported rates in another unit than the stated schedule's (a constant
factor, such as a stated ``Cosine()`` with ``peak_lr=1`` and real rates of ``3e-4``) follow the same shape and are
no disagreement; rates whose shape differs are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sh_scaling.halving import RTOL
from sh_scaling.keys import SCHEDULE_KEY
from sh_scaling.pruning._compute import lr_curve
from sh_scaling.schedules import Schedule, Table, as_schedule, schedule_from_dict

__all__ = [
    "LR_MISMATCH_FACTOR",
    "lr_disagreement",
    "lr_unit",
    "reported_schedule",
    "schedule_dict",
    "stated_schedule",
    "trial_schedule",
]

#: Reported learning rates further than this factor from the stated schedule's (either way) mean the schedule
#: is not the one the run follows (a wrong peak, a different shape); smaller gaps are rounding and schedulers
#: that step in whole epochs.
LR_MISMATCH_FACTOR = 2.0
#: Rates below this fraction of the schedule's peak are not compared (the first steps of a warm-up, the last of
#: a decay to zero), where a ratio means nothing.
_LR_COMPARE_FLOOR = 0.05
#: A schedule built from reported rates keeps at most this many of them (evenly spaced, the latest always): the
#: multi-power law discretises the schedule into 128 cells anyway (MultiPowerLawSurrogate's ``n_cells``).
_MAX_LR_NODES = 129
#: Reported rates that follow the stated shape this closely (largest ratio, after the unit is divided out) on a
#: stretched or squeezed time axis fit the schedule with another ``max_compute``: the mismatch is then named
#: as one of ``max_compute`` (the reported compute counts other parameters, or another unit), not of the schedule.
_STRETCH_FIT = 1.25
#: Stretches of the time axis tried for that diagnosis: ``max_compute`` off by a factor of 1/4 to 4.
_STRETCHES = np.geomspace(0.25, 4.0, 57)


def stated_schedule(attrs: Mapping[str, Any]) -> Schedule | None:
    """The schedule stated for a trial (:data:`~sh_scaling.keys.SCHEDULE_KEY`), or ``None`` if there is none or it
    cannot be read (written by another version or by hand: the reported rates, or no schedule, then)."""
    data = attrs.get(SCHEDULE_KEY)
    if not data:
        return None
    try:
        return schedule_from_dict(data)
    except ValueError:
        return None


def trial_schedule(attrs: Mapping[str, Any], target: float, upto: float) -> tuple[Schedule | None, str | None, bool]:
    """The schedule a trial's forecast at compute ``upto`` follows, why it is not the stated one, and whether
    that is because the reported rates disagree with it.

    The stated schedule (:data:`~sh_scaling.keys.SCHEDULE_KEY`) unless learning rates were reported up to
    ``upto``: rates without a stated schedule are the schedule so far, held at the latest rate; rates that
    disagree with the stated schedule by more than :data:`LR_MISMATCH_FACTOR` replace it so far, the stated
    shape scaled to the latest rate giving the future. Pure: reads the attributes, writes nothing.
    """
    stated = stated_schedule(attrs)
    c, lr = lr_curve(attrs)
    keep = c <= upto * (1 + RTOL)
    c, lr = c[keep], lr[keep]
    if lr.size == 0:
        return stated, None, False
    f = c / target
    if stated is None:
        table = reported_schedule(f, lr, None)
        if table is None:
            return None, "reported learning rates are all 0; forecasts ignore them", False
        return table, "learning rates reported without a schedule: used as given, the future held at the latest", False
    disagreement = lr_disagreement(stated, f, lr)
    if disagreement is None:
        return stated, None, False
    table = reported_schedule(f, lr, stated)
    why = f"reported learning rates disagree with the stated {stated.kind} schedule ({disagreement})"
    if table is None:
        return stated, f"{why}; they are all 0, so the stated schedule is kept", True
    return table, f"{why}; the reported rates are trusted", True


def lr_unit(expected: np.ndarray, lr: np.ndarray, floor: float) -> float:
    """The constant factor between reported rates ``lr`` and the stated schedule's rates ``expected`` at the same
    points: the median ratio where both are above ``floor`` (1 where nothing can be compared). A schedule is a
    shape; ``Cosine()`` states rates relative to a peak of 1, a training loop reports them in its own unit."""
    both = (expected >= floor) & (lr > 0)
    if not both.any():
        return 1.0
    unit = float(np.exp(np.median(np.log(lr[both] / expected[both]))))
    return unit if np.isfinite(unit) and unit > 0 else 1.0


def _worst_ratio(expected: np.ndarray, lr: np.ndarray, floor: float) -> tuple[float, int]:
    high = np.maximum(expected, lr)
    low = np.minimum(expected, lr)
    compared = high >= floor
    if not compared.any():
        return 1.0, 0
    ratio = np.where(compared, high / np.maximum(low, 1e-300), 1.0)
    worst = int(np.argmax(ratio))
    return float(ratio[worst]), worst


def lr_disagreement(schedule: Schedule, fraction: np.ndarray, lr: np.ndarray) -> str | None:
    """Where reported rates ``lr`` at ``fraction`` of the run differ in shape from ``schedule`` by more than
    :data:`LR_MISMATCH_FACTOR` (the worst point, in words), or ``None``.

    The rates are compared in the schedule's unit: a constant factor between the two (:func:`lr_unit`) is a unit,
    not a disagreement. When the rates do follow the stated shape on a stretched time axis, the message says
    that ``max_compute`` (the run's planned compute, which sets the fraction of the run) looks wrong instead.
    """
    fraction = np.asarray(fraction, dtype=float)
    lr = np.asarray(lr, dtype=float)
    expected = np.asarray(schedule(np.clip(fraction, 0.0, 1.0)), dtype=float)
    floor = _LR_COMPARE_FLOOR * schedule.peak_lr
    unit = lr_unit(expected, lr, floor)
    ratio, worst = _worst_ratio(expected, lr / unit, floor)
    if ratio <= LR_MISMATCH_FACTOR:
        return None
    # Does a stretched time axis explain it (the rates follow the shape, but not at these fractions)?
    best, stretch = math.inf, 1.0
    for a in _STRETCHES:
        shifted = np.asarray(schedule(np.clip(fraction * a, 0.0, 1.0)), dtype=float)
        r, _ = _worst_ratio(shifted, lr / lr_unit(shifted, lr, floor), floor)
        if r < best:
            best, stretch = r, float(a)
    unit_text = "" if abs(math.log(unit)) < 1e-9 else f" (its shape times {unit:.3g}, the reported rates' unit)"
    where = (
        f"lr {lr[worst]:.3g} reported at {fraction[worst]:.3g} of the run where the schedule gives "
        f"{expected[worst] * unit:.3g}{unit_text}, more than a factor of {LR_MISMATCH_FACTOR:g} apart"
    )
    if best <= _STRETCH_FIT and abs(math.log(stretch)) > math.log(1.1):
        return (
            f"{where}; the rates follow the stated shape if the run's planned compute were {1 / stretch:.3g} x "
            "its max_compute: is max_compute in the unit compute is reported in, counting the same parameters?"
        )
    return where


def reported_schedule(fraction: np.ndarray, lr: np.ndarray, stated: Schedule | None) -> Table | None:
    """A :class:`~sh_scaling.schedules.Table` through the reported rates (held before the first one); past the
    latest, the stated schedule scaled to meet it, or the latest rate held. ``None`` if every rate is 0."""
    f = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    ok = f > 0
    f, lr = f[ok], np.asarray(lr, dtype=float)[ok]
    if f.size == 0 or not np.any(lr > 0):
        return None
    if f.size > _MAX_LR_NODES:
        pick = np.unique(np.append(np.linspace(0, f.size - 1, _MAX_LR_NODES - 1).astype(int), f.size - 1))
        f, lr = f[pick], lr[pick]
    xs = [0.0, *f.tolist()]
    ys = [float(lr[0]), *lr.tolist()]
    last_f, last_lr = float(f[-1]), float(lr[-1])
    if last_f < 1.0:
        base = float(stated(last_f)) if stated is not None else 0.0
        if stated is not None and base > 0:
            grid = np.linspace(last_f, 1.0, 33)[1:]
            xs += grid.tolist()
            ys += (np.asarray(stated(grid), dtype=float) * (last_lr / base)).tolist()
        else:
            xs.append(1.0)
            ys.append(last_lr)
    try:
        return Table(fractions=tuple(xs), lrs=tuple(ys))
    except ValueError:
        return None


def schedule_dict(value: Any) -> dict[str, Any] | None:
    """What a ``schedule(params)`` function returned (a schedule, its ``to_dict()``, a function of the fraction
    of the run, or ``None``: no schedule), validated and as stored."""
    return None if value is None else as_schedule(value).to_dict()

