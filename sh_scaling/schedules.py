"""Learning-rate schedules as data: a function of the fraction of a run's planned compute.

Modern sweeps train every run with a warm-up and then a decay to the run's *own* planned end (cosine), or with
a long constant phase and a short decay (WSD). A forecast that sees only ``(compute, loss)`` cannot tell a
run that is "still hot" from a bad one; a forecast that knows the schedule can (the multi-power law of Luo et
al., ICLR 2025, in :mod:`sh_scaling.surrogates._multipower`). This module describes schedules so that they can
be stated once per trial and stored with it:

* each schedule is a function of ``f``, the fraction of the run's planned compute (or steps) in ``[0, 1]``,
  returning the learning rate, vectorised over numpy arrays (:meth:`Schedule.__call__`);
* each is an immutable value, validated at construction (a ``ValueError`` names the argument), picklable and
  JSON-serialisable in a few dozen bytes (:meth:`Schedule.to_dict` / :func:`schedule_from_dict`), so it can be
  written to an Optuna trial's attributes;
* a user's own function is wrapped by :func:`from_callable`, which samples it into a :class:`Table` and
  rejects a function that fails on ``[0, 1]`` or returns negative or non-finite rates.

Shapes (``peak`` = ``peak_lr``; ``p = (f - warmup) / (1 - warmup)`` is the progress after warm-up):

========================= =====================================================================================
:class:`Constant`         ``peak``
:class:`Cosine`           ``peak * (r + (1 - r) * (1 + cos(pi p)) / 2)``, ``r = final_ratio``
:class:`Linear`           ``peak * (1 - (1 - r) p)``
:class:`WSD`              ``peak`` until ``decay_start``, then an exponential, linear or cosine decay to
                          ``peak * final_ratio`` at ``f = 1`` (Hu et al. 2024, *MiniCPM*; Hägele et al. 2024)
:class:`TwoStage`         ``peak`` until ``switch``, then ``peak * ratio`` (a step schedule)
:class:`Table`            piecewise linear through ``(fractions, lrs)``; a repeated fraction is a jump
========================= =====================================================================================

Every schedule but :class:`Table` has a linear warm-up from 0 to ``peak`` over the first ``warmup`` of the run
(the warm-up of the runs of Luo et al. 2025: 2,160 steps from 0 to 3e-4). At a jump the schedule is
right-continuous: the new rate applies from the jump on.

Example:
    >>> import json
    >>> s = WSD(peak_lr=3e-4, warmup=0.09, decay_start=0.8, decay="exponential", final_ratio=0.1)
    >>> float(s(0.5)), round(float(s(1.0)), 8)
    (0.0003, 3e-05)
    >>> schedule_from_dict(json.loads(json.dumps(s.to_dict()))) == s
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Schedule",
    "Constant",
    "Cosine",
    "Linear",
    "WSD",
    "TwoStage",
    "Table",
    "WSD_DECAYS",
    "schedule_from_dict",
    "from_callable",
    "as_schedule",
    "LearningRateHistory",
    "MultiPowerLawParams",
    "LUO_2025",
    "TISSUE_2024_DECAY",
    "multi_power_law",
]

#: Decay shapes accepted by :class:`WSD`.
WSD_DECAYS = ("exponential", "linear", "cosine")
#: Fractions this far outside [0, 1] are still accepted (and clipped): rounding of ``compute / max_compute``.
_FRACTION_TOLERANCE = 1e-9


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
            high_open: bool = False) -> float:
    """``value`` as a float in the interval, or a ``ValueError`` naming the argument and the value."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if not math.isfinite(v) or below or above:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v


def _fractions(fraction: Any, owner: str) -> np.ndarray:
    """``fraction`` as a float array in [0, 1] (values within rounding of the ends are clipped)."""
    try:
        f = np.asarray(fraction, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: fraction must be numeric, got {fraction!r}") from None
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{owner}: fraction must be finite")
    if np.any(f < -_FRACTION_TOLERANCE) or np.any(f > 1 + _FRACTION_TOLERANCE):
        bad = float(f[(f < -_FRACTION_TOLERANCE) | (f > 1 + _FRACTION_TOLERANCE)].ravel()[0])
        raise ValueError(
            f"{owner}: fraction of the run must be in [0, 1], got {bad!r}; a schedule is defined over the "
            "run's planned compute (pass compute / max_compute)"
        )
    return np.clip(f, 0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A learning-rate schedule: learning rate as a function of the fraction of the run, ``f`` in ``[0, 1]``.

    Subclasses are frozen dataclasses; construct them with keywords. Call a schedule on a number or an array
    of fractions to get learning rates of the same shape.
    """

    kind: ClassVar[str] = ""

    def __call__(self, fraction: Any) -> np.ndarray:
        """Learning rate at ``fraction`` (a number or an array in ``[0, 1]``), same shape as the input.

        Raises:
            ValueError: a fraction outside ``[0, 1]`` (beyond rounding) or not finite.
        """
        f = _fractions(fraction, type(self).__name__)
        return self._lr(f)

    def _lr(self, f: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def peak_lr(self) -> float:
        """The largest learning rate of the schedule."""
        raise NotImplementedError

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Fractions in ``(0, 1)`` where the schedule has a kink or a jump (grids for integrals include them)."""
        return ()

    @property
    def jumps(self) -> tuple[float, ...]:
        """Fractions where the learning rate jumps (a subset of :attr:`breakpoints`)."""
        return ()

    def relative(self, fraction: Any) -> np.ndarray:
        """Learning rate divided by :attr:`peak_lr`, in ``[0, 1]``."""
        return self(fraction) / self.peak_lr

    def nodes(self, n_cells: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """The schedule as a piecewise-linear table: ``(fractions, lrs)`` from ``f = 0`` to ``f = 1``.

        The nodes are ``n_cells`` equal cells of the run, plus ``n_cells`` cells of equal change of the learning
        rate (so a warm-up or a short decay gets as many nodes as the rest of the run), plus every breakpoint;
        at a jump the fraction appears twice, with the rate just before and just after it. Exact for
        piecewise-linear schedules; for curved ones (cosine, exponential) the linear interpolation between
        nodes is off by at most ``max|lr''| / (8 n_cells**2)``.
        """
        n = int(n_cells)
        if n < 1:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
        fine = np.union1d(np.linspace(0.0, 1.0, 16 * n + 1), np.asarray(self.breakpoints, dtype=float))
        change = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(self._lr(fine))))])
        f = np.union1d(np.linspace(0.0, 1.0, n + 1), np.asarray(self.breakpoints, dtype=float))
        if change[-1] > 0:
            # Equal steps of cumulative change, mapped back to fractions (jumps add no interior nodes). With equal
            # cells only, the law just after a warm-up depended on where the last warm-up cell ended, which
            # differs between runs of different lengths, and a joint fit of the runs of Luo et al. exploited that
            # with a huge anneal gain (forecasts up to 27 % too low).
            levels = np.linspace(0.0, change[-1], n + 1)[1:-1]
            f = np.union1d(f, np.interp(levels, change, fine))
        lr = self._lr(f)
        jumps = np.asarray(self.jumps, dtype=float)
        if jumps.size:
            # The rate just before a jump, inserted before the jump's own node (right-continuous schedules).
            before = self._lr(np.nextafter(jumps, -np.inf))
            at = np.searchsorted(f, jumps)
            f = np.insert(f, at, jumps)
            lr = np.insert(lr, at, before)
        return f, lr

    def area(self, fraction: Any, n_cells: int = 4096) -> np.ndarray:
        """Integral of the learning rate from 0 to ``fraction`` (learning rate x fraction of the run).

        Multiply by the run's length in steps for the sum of the learning rates (the "area" ``S1`` of Tissue
        et al. 2024 and Luo et al. 2025). Computed on :meth:`nodes` (trapezoid rule, exact between nodes).
        """
        f = _fractions(fraction, type(self).__name__)
        nf, nl = self.nodes(n_cells)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(nf) * (nl[1:] + nl[:-1]))])
        i = np.clip(np.searchsorted(nf, f, side="right") - 1, 0, nf.size - 2)
        width = nf[i + 1] - nf[i]
        t = np.divide(f - nf[i], width, out=np.zeros_like(f), where=width > 0)
        lr_f = nl[i] + t * (nl[i + 1] - nl[i])
        return cum[i] + 0.5 * (f - nf[i]) * (nl[i] + lr_f)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"kind": ..., <the constructor's arguments>}``."""
        out: dict[str, Any] = {"kind": self.kind}
        for fld in fields(self):
            value = getattr(self, fld.name)
            out[fld.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, kw_only=True)
class _WarmupSchedule(Schedule):
    """A schedule with a peak learning rate and a linear warm-up from 0 over the first ``warmup`` of the run."""

    peak_lr: float = 1.0
    warmup: float = 0.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "peak_lr", _number(f"{name}: peak_lr", self.peak_lr, 0.0, math.inf,
                                                    low_open=True, high_open=True))
        object.__setattr__(self, "warmup", _number(f"{name}: warmup", self.warmup, 0.0, 1.0, high_open=True))

    def _lr(self, f: np.ndarray) -> np.ndarray:
        w = self.warmup
        if w == 0.0:
            return self.peak_lr * self._after_warmup(f)
        during = f < w
        ramp = np.divide(f, w, out=np.zeros_like(f), where=during)
        after = self._after_warmup(np.maximum(f, w))
        return self.peak_lr * np.where(during, ramp, after)

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        """Learning rate relative to the peak for ``f >= warmup``."""
        raise NotImplementedError

    def _progress(self, f: np.ndarray) -> np.ndarray:
        return (f - self.warmup) / (1.0 - self.warmup)

    @property
    def breakpoints(self) -> tuple[float, ...]:
        return (self.warmup,) if self.warmup > 0 else ()


@dataclass(frozen=True, kw_only=True)
class Constant(_WarmupSchedule):
    """Constant learning rate after an optional linear warm-up.

    Args:
        peak_lr: The learning rate (default 1.0: forecasts depend on the shape of a schedule and on the ratio
            of the peaks of runs fitted together, never on the unit).
        warmup: Fraction of the run spent in linear warm-up from 0, in ``[0, 1)`` (default 0).
    """

    kind: ClassVar[str] = "constant"

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        return np.ones_like(f)


@dataclass(frozen=True, kw_only=True)
class Cosine(_WarmupSchedule):
    """Half-cosine decay from the peak to ``final_ratio * peak`` at the run's planned end, after warm-up.

    The schedule of Hoffmann et al. (2022), who found the cosine should end at the run's own end (their
    Section 3, 10x decay); the runs of Luo et al. (2025) use ``final_ratio=0.1``.

    Args:
        peak_lr: Learning rate at the end of warm-up (default 1.0).
        warmup: Fraction of the run in linear warm-up, in ``[0, 1)`` (default 0).
        final_ratio: Learning rate at ``f = 1`` relative to the peak, in ``[0, 1]`` (default 0.1).
    """

    kind: ClassVar[str] = "cosine"
    final_ratio: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "final_ratio", _number("Cosine: final_ratio", self.final_ratio, 0.0, 1.0))

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        r = self.final_ratio
        return r + (1.0 - r) * 0.5 * (1.0 + np.cos(np.pi * self._progress(f)))


@dataclass(frozen=True, kw_only=True)
class Linear(_WarmupSchedule):
    """Linear decay from the peak to ``final_ratio * peak`` at the run's planned end, after warm-up.

    Args:
        peak_lr: Learning rate at the end of warm-up (default 1.0).
        warmup: Fraction of the run in linear warm-up, in ``[0, 1)`` (default 0).
        final_ratio: Learning rate at ``f = 1`` relative to the peak, in ``[0, 1]`` (default 0).
    """

    kind: ClassVar[str] = "linear"
    final_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "final_ratio", _number("Linear: final_ratio", self.final_ratio, 0.0, 1.0))

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - self.final_ratio) * self._progress(f)


@dataclass(frozen=True, kw_only=True)
class WSD(_WarmupSchedule):
    """Warm-up, stable (constant at the peak) until ``decay_start``, then decay to ``final_ratio * peak``.

    Hu et al. (2024, *MiniCPM*) and Hägele et al. (2024, *Scaling Laws and Compute-Optimal Training Beyond
    Fixed Training Durations*). With ``q = (f - decay_start) / (1 - decay_start)`` the decay is
    ``final_ratio**q`` (``"exponential"``, as in the WSD runs of Luo et al. 2025), ``1 - (1 - final_ratio) q``
    (``"linear"``) or a half cosine (``"cosine"``), times the peak.

    Args:
        peak_lr: The stable learning rate (default 1.0).
        warmup: Fraction of the run in linear warm-up, in ``[0, 1)`` (default 0).
        decay_start: Fraction of the run where the decay starts, in ``[warmup, 1]`` (default 0.8; Hägele et al.
            found 10-20 % of the run enough for the decay).
        decay: ``"exponential"`` (default), ``"linear"`` or ``"cosine"``.
        final_ratio: Learning rate at ``f = 1`` relative to the peak, in ``[0, 1]``, and ``> 0`` for the
            exponential decay (default 0.1).
    """

    kind: ClassVar[str] = "wsd"
    decay_start: float = 0.8
    decay: str = "exponential"
    final_ratio: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decay not in WSD_DECAYS:
            raise ValueError(f"WSD: decay must be one of {list(WSD_DECAYS)}, got {self.decay!r}")
        start = _number("WSD: decay_start", self.decay_start, 0.0, 1.0)
        if start < self.warmup:
            raise ValueError(f"WSD: decay_start ({start!r}) must not be before the end of warm-up ({self.warmup!r})")
        object.__setattr__(self, "decay_start", start)
        ratio = _number("WSD: final_ratio", self.final_ratio, 0.0, 1.0)
        if self.decay == "exponential" and ratio == 0.0:
            raise ValueError("WSD: final_ratio must be > 0 for an exponential decay (it never reaches 0)")
        object.__setattr__(self, "final_ratio", ratio)

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        d, r = self.decay_start, self.final_ratio
        if d >= 1.0:
            return np.ones_like(f)
        q = np.clip((f - d) / (1.0 - d), 0.0, 1.0)
        if self.decay == "exponential":
            shape = r**q
        elif self.decay == "linear":
            shape = 1.0 - (1.0 - r) * q
        else:
            shape = r + (1.0 - r) * 0.5 * (1.0 + np.cos(np.pi * q))
        return np.where(f < d, 1.0, shape)

    @property
    def breakpoints(self) -> tuple[float, ...]:
        extra = (self.decay_start,) if 0.0 < self.decay_start < 1.0 and self.decay_start != self.warmup else ()
        return super().breakpoints + extra


@dataclass(frozen=True, kw_only=True)
class TwoStage(_WarmupSchedule):
    """Two constant stages: the peak until ``switch``, then ``ratio * peak`` (a step schedule).

    The ``wsdcon`` runs of Luo et al. (2025) switch from 3e-4 to 3e-5, 9e-5 or 1.8e-4 halfway through.

    Args:
        peak_lr: Learning rate of the first stage (default 1.0).
        warmup: Fraction of the run in linear warm-up, in ``[0, 1)`` (default 0).
        switch: Fraction of the run where the second stage starts, in ``[warmup, 1]`` (default 0.5).
        ratio: Learning rate of the second stage relative to the first, in ``[0, 1]`` (default 0.1).
    """

    kind: ClassVar[str] = "two_stage"
    switch: float = 0.5
    ratio: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        switch = _number("TwoStage: switch", self.switch, 0.0, 1.0)
        if switch < self.warmup:
            raise ValueError(f"TwoStage: switch ({switch!r}) must not be before the end of warm-up ({self.warmup!r})")
        object.__setattr__(self, "switch", switch)
        object.__setattr__(self, "ratio", _number("TwoStage: ratio", self.ratio, 0.0, 1.0))

    def _after_warmup(self, f: np.ndarray) -> np.ndarray:
        return np.where(f < self.switch, 1.0, self.ratio)

    @property
    def breakpoints(self) -> tuple[float, ...]:
        inner = 0.0 < self.switch < 1.0 and self.switch != self.warmup
        return super().breakpoints + ((self.switch,) if inner else ())

    @property
    def jumps(self) -> tuple[float, ...]:
        return (self.switch,) if 0.0 < self.switch < 1.0 and self.ratio != 1.0 else ()


@dataclass(frozen=True, kw_only=True)
class Table(Schedule):
    """Piecewise-linear schedule through ``(fractions[i], lrs[i])``.

    ``fractions`` start at 0, end at 1 and never decrease; a fraction given twice is a jump (the second rate
    applies from there on). Warm-up, if any, is part of the table.

    Args:
        fractions: At least two fractions of the run, from 0 to 1, non-decreasing, at most two equal in a row.
        lrs: The learning rate at each fraction: finite, >= 0, not all 0.
    """

    kind: ClassVar[str] = "table"
    fractions: tuple[float, ...] = field(default=())
    lrs: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        f = _float_tuple("Table: fractions", self.fractions)
        lr = _float_tuple("Table: lrs", self.lrs)
        if len(f) != len(lr):
            raise ValueError(f"Table: fractions has {len(f)} values but lrs has {len(lr)}")
        if len(f) < 2:
            raise ValueError(f"Table: fractions needs at least two values (0 and 1), got {len(f)}")
        fa = np.asarray(f)
        if fa[0] != 0.0 or fa[-1] != 1.0:
            raise ValueError(f"Table: fractions must start at 0 and end at 1, got {fa[0]!r} .. {fa[-1]!r}")
        step = np.diff(fa)
        if np.any(step < 0):
            raise ValueError("Table: fractions must be non-decreasing")
        if np.any((step[1:] == 0) & (step[:-1] == 0)):
            raise ValueError("Table: a fraction may appear at most twice (a jump)")
        la = np.asarray(lr)
        if np.any(la < 0):
            first = int(np.argmax(la < 0))
            raise ValueError(f"Table: lrs must be >= 0, got {float(la[first])!r} at fraction {float(fa[first])!r}")
        if not np.any(la > 0):
            raise ValueError("Table: lrs are all 0; a schedule needs a positive learning rate somewhere")
        object.__setattr__(self, "fractions", f)
        object.__setattr__(self, "lrs", lr)

    @property
    def peak_lr(self) -> float:
        return max(self.lrs)

    def _lr(self, f: np.ndarray) -> np.ndarray:
        x = np.asarray(self.fractions)
        y = np.asarray(self.lrs)
        i = np.clip(np.searchsorted(x, f, side="right") - 1, 0, x.size - 2)
        width = x[i + 1] - x[i]
        t = np.divide(f - x[i], width, out=np.ones_like(f), where=width > 0)
        return y[i] + t * (y[i + 1] - y[i])

    @property
    def breakpoints(self) -> tuple[float, ...]:
        return tuple(sorted({v for v in self.fractions if 0.0 < v < 1.0}))

    @property
    def jumps(self) -> tuple[float, ...]:
        x = self.fractions
        return tuple(x[i] for i in range(len(x) - 1) if x[i] == x[i + 1] and self.lrs[i] != self.lrs[i + 1])


def _float_tuple(name: str, values: Any) -> tuple[float, ...]:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got a NaN or infinite value")
    return tuple(float(v) for v in arr)


_KINDS: dict[str, type[Schedule]] = {
    cls.kind: cls for cls in (Constant, Cosine, Linear, WSD, TwoStage, Table)
}


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """The schedule described by ``data`` (the output of :meth:`Schedule.to_dict`, e.g. read back from JSON).

    Raises:
        ValueError: not a mapping, an unknown ``kind`` or argument (the message lists the valid ones), or an
            invalid value (the schedule's own check).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a schedule description must be a mapping with a 'kind', got {type(data).__name__}")
    kind = data.get("kind")
    # A kind that is not a string (a list, a dict: written by another tool or by hand) is unknown, not a
    # TypeError from the lookup.
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; valid kinds are {sorted(_KINDS)}")
    cls = _KINDS[kind]
    valid = {f.name for f in fields(cls)}
    args = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(str(k) for k in set(args) - valid)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown argument(s) {unknown}; valid arguments are {sorted(valid)}")
    try:
        return cls(**args)
    except TypeError as exc:
        # Arguments of the wrong type (a list where a number is expected) are an invalid description too.
        raise ValueError(f"{cls.__name__}: invalid arguments {args!r} ({exc})") from None


def from_callable(fn: Callable[[Any], Any], *, n_points: int = 129) -> Table:
    """Wrap a user's schedule function as a validated :class:`Table`.

    ``fn`` must take the fraction of the run in ``[0, 1]`` (a number, or a numpy array if it is vectorised)
    and return the learning rate. It is sampled at ``n_points`` equally spaced fractions from 0 to 1; a jump
    inside a cell becomes a linear ramp across that cell (pass a :class:`Table` with a repeated fraction for an
    exact jump). Stored as a table, the schedule stays JSON-serialisable and picklable, which a function is not.

    Args:
        fn: ``lr = fn(fraction)``.
        n_points: Number of samples (>= 2; default 129, i.e. cells of 1/128 of the run: about 2 KB of JSON).

    Raises:
        ValueError: ``fn`` is not callable, raises on a fraction in ``[0, 1]``, returns something that is not
            one number per fraction, or a negative, NaN or infinite rate, or 0 everywhere. The message names the
            first offending fraction.
    """
    if not callable(fn):
        raise ValueError(f"from_callable: expected a function of the fraction of the run, got {type(fn).__name__}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"from_callable: n_points must be an integer >= 2, got {n_points!r}")
    grid = np.linspace(0.0, 1.0, int(n_points))
    lrs = _sample(fn, grid)
    bad = ~np.isfinite(lrs)
    if np.any(bad):
        raise ValueError(f"from_callable: the schedule returned {float(lrs[bad][0])!r} at fraction "
                         f"{grid[bad][0]:g}; learning rates must be finite")
    if np.any(lrs < 0):
        raise ValueError(f"from_callable: the schedule returned a negative learning rate {float(lrs[lrs < 0][0])!r} at "
                         f"fraction {grid[lrs < 0][0]:g}")
    if not np.any(lrs > 0):
        raise ValueError("from_callable: the schedule is 0 everywhere on [0, 1]; is it a function of the step "
                         "rather than of the fraction of the run?")
    return Table(fractions=tuple(grid.tolist()), lrs=tuple(lrs.tolist()))


def _sample(fn: Callable[[Any], Any], grid: np.ndarray) -> np.ndarray:
    """``fn`` on every fraction of ``grid``: one vectorised call if ``fn`` takes arrays, else one call each."""
    try:
        out = np.asarray(fn(grid.copy()), dtype=float)
        if out.shape == grid.shape:
            return out
    except Exception:  # noqa: BLE001 - a scalar-only function; it is called point by point below
        pass
    values = np.empty_like(grid)
    for i, f in enumerate(grid):
        try:
            v = fn(float(f))
            values[i] = float(np.asarray(v, dtype=float).reshape(()))
        except Exception as exc:  # noqa: BLE001 - any failure names the fraction and the cause
            raise ValueError(
                f"from_callable: the schedule failed at fraction {f:g} ({type(exc).__name__}: {exc}); a schedule "
                "must be a function of the fraction of the run in [0, 1] returning one learning rate"
            ) from None
    return values


def as_schedule(spec: Any) -> Schedule:
    """A :class:`Schedule` from a schedule, a :meth:`~Schedule.to_dict` mapping, a function, or ``None``.

    ``None`` means "no schedule known": :class:`Constant` with no warm-up, under which schedule-aware
    forecasts reduce to a power law in compute.
    """
    if spec is None:
        return Constant()
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, Mapping):
        return schedule_from_dict(spec)
    if callable(spec):
        return from_callable(spec)
    raise ValueError(f"expected a Schedule, a dict from Schedule.to_dict(), a function or None, got {spec!r}")


# --- What a schedule does to the loss -----------------------------------------------------------------------


@dataclass(frozen=True)
class MultiPowerLawParams:
    """Constants of the multi-power law ``L = L0 + A (S1 + S_W)**(-alpha) - LD`` (Luo et al., ICLR 2025).

    ``LD = B * sum_k (eta_{k-1} - eta_k) * (1 - (C * eta_k**(-gamma) * S_k + 1)**(-beta))``; the units are those
    of the learning rate and of the time axis the law is evaluated in (the paper: absolute learning rates and
    steps).
    """

    L0: float
    A: float
    alpha: float
    B: float
    C: float
    beta: float
    gamma: float
    source: str = ""

    def as_dict(self) -> dict[str, float]:
        """The seven constants by name (without ``source``)."""
        return {k: getattr(self, k) for k in ("L0", "A", "alpha", "B", "C", "beta", "gamma")}


#: The multi-power law fitted by Luo et al. (2025) to their GPT-style runs of 25M, 100M and 400M parameters
#: (Huber loss on log-loss; learning rates absolute, peak 3e-4; time in steps; the warm-up from 0 counts as a
#: learning-rate *increase* in the loss-drop sum). Table of the README of GitHub ``thu-yao-01-luo/MultiPowerLaw``
#: at commit 8da9f1902602f3391b971a811e3cc51604541769 (also in ``shared/data/multipowerlaw/SUMMARY.md``); the
#: README reports R^2 0.9988 / 0.9983 / 0.9978 and mean relative errors 0.110 / 0.142 / 0.168 % over the runs.
LUO_2025: dict[str, MultiPowerLawParams] = {
    "25M": MultiPowerLawParams(3.040, 0.525, 0.508, 363.788, 2.066, 0.583, 0.641, "Luo et al. 2025, 25M"),
    "100M": MultiPowerLawParams(2.651, 0.601, 0.453, 437.946, 2.132, 0.598, 0.655, "Luo et al. 2025, 100M"),
    "400M": MultiPowerLawParams(2.375, 0.654, 0.429, 523.425, 2.025, 0.594, 0.635, "Luo et al. 2025, 400M"),
}

#: Momentum decay factor of the annealing area of Tissue et al. (2024, arXiv:2408.11029, Section 3: lambda =
#: 0.999 per step); the equivalent lag of :meth:`LearningRateHistory.momentum_law` is ``-1/ln(0.999)`` steps.
TISSUE_2024_DECAY = 0.999

#: Learning rates below this (relative to ``lr_scale``) count as 0 in ``eta**(-gamma)``: keeps logs finite.
_TINY_LR = 1e-30


class LearningRateHistory:
    """A run's schedule seen from a set of query points: what schedule-aware loss laws read.

    For query fractions ``f_i`` of the run (``> 0``; beyond 1 the final learning rate is held) it holds

    * ``area[i]``: the learning-rate area ``S(f_i) = run_length * integral_0^f_i eta(u) du / lr_scale``, i.e.
      ``S1 + S_W`` of Luo et al. (2025) (the sum of the learning rates, warm-up included, in units of
      ``lr_scale`` x the time unit);
    * the learning-rate *changes* ``drop[j] = eta_{j-1} - eta_j`` of the schedule discretised into ``n_cells``
      cells (:meth:`Schedule.nodes`), each placed at the middle of its cell (a jump at the jump), with the rate
      after the change ``lr_after[j]``. A warm-up from 0 enters as negative drops, as in the authors' fits (their
      loss-drop sum runs over the warm-up); a run that starts at its peak has no change at the start, as in
      their code, so that a constant rate without warm-up makes the law a pure power law in compute;
    * for every pair (query ``i``, change ``j`` at or before it): ``pair_query``, ``pair_change``, the area
      ``pair_since`` and the time ``pair_elapsed`` (``run_length`` units) from the change to the query.

    Built once per run and set of query points; :meth:`multi_power_law` and :meth:`momentum_law` then cost one
    pass over the pairs. On the runs of Luo et al. the law differs from the authors' step-by-step sums by at
    most 0.02 % of the loss on smooth schedules with 512 cells (0.03 % with 128), and by up to 0.14 % at the
    first evaluations after a jump, where the step sum counts one more step of the new rate;
    ``tests/test_multipower.py`` compares the two.

    Args:
        schedule: The run's schedule.
        fraction: Query points, fractions of the run's planned compute (``> 0``).
        run_length: Length of the whole run in the time unit of the law (steps, for the paper's constants).
        lr_scale: Learning rates are divided by this (default 1: absolute rates).
        n_cells: Cells of the discretisation (default 512).
    """

    #: The terms of :meth:`multi_power_law`'s last evaluation of values alone, keyed by the constants they depend
    #: on (``A, alpha, C, beta, gamma``): its Jacobian at the same constants reuses them (bitwise the same).
    _terms: tuple[Any, ...] | None = None

    def __init__(self, schedule: Schedule, fraction: Any, *, run_length: float = 1.0, lr_scale: float = 1.0,
                 n_cells: int = 512) -> None:
        f = np.asarray(fraction, dtype=float).ravel()
        if not (np.all(np.isfinite(f)) and np.all(f > 0)):
            raise ValueError("LearningRateHistory: query fractions must be finite and > 0")
        run_length = _number("run_length", run_length, 0.0, math.inf, low_open=True, high_open=True)
        lr_scale = _number("lr_scale", lr_scale, 0.0, math.inf, low_open=True, high_open=True)
        nf, nl = schedule.nodes(n_cells)
        nl = nl / lr_scale
        cum = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(nf) * (nl[1:] + nl[:-1]))])
        # Changes between consecutive nodes, each at the middle of its cell (a jump's two nodes coincide).
        drop = np.concatenate([[0.0], nl[:-1] - nl[1:]])
        at = np.concatenate([[0.0], 0.5 * (nf[1:] + nf[:-1])])
        keep = drop != 0.0
        self.drop = drop[keep]
        self.lr_after = nl[keep]
        self.at = at[keep]
        self.fraction = f
        self.run_length = run_length
        self.area = run_length * _area(nf, nl, cum, f)
        area_at = run_length * _area(nf, nl, cum, self.at)
        query, change = np.nonzero(self.at[None, :] <= f[:, None])
        self.pair_query = query
        self.pair_change = change
        self.pair_since = np.maximum(self.area[query] - area_at[change], 0.0)
        self.pair_elapsed = run_length * (f[query] - self.at[change])
        with np.errstate(divide="ignore"):
            self._log_since = np.log(self.pair_since)
        self._log_lr = np.log(np.maximum(self.lr_after, _TINY_LR))

    @staticmethod
    def stack(histories: Sequence[LearningRateHistory]) -> LearningRateHistory:
        """Several runs' histories as one whose queries are every run's points in order: a law evaluated on it
        gives each run's values, concatenated, in one pass (see :class:`_StackedHistory`)."""
        if not histories:
            raise ValueError("LearningRateHistory.stack: no histories")
        return _StackedHistory(histories)

    def _sum_over_changes(self, per_pair: np.ndarray) -> np.ndarray:
        """``sum_j drop_j * per_pair[i, j]`` for every query ``i``."""
        return np.bincount(self.pair_query, weights=per_pair * self.drop[self.pair_change],
                           minlength=self.fraction.size)

    def multi_power_law(self, L0: float, A: float, alpha: float, B: float, C: float, beta: float, gamma: float,
                        *, jacobian: bool = False) -> Any:
        """``L0 + A * area**(-alpha) - B * sum_j drop_j * G(C * lr_after_j**(-gamma) * since_ij)``.

        ``G(x) = 1 - (1 + x)**(-beta)`` (Luo et al. 2025, the loss-drop term). With ``jacobian=True`` also returns
        the derivatives with respect to ``(L0, A, alpha, B, C, beta, gamma)``, shape ``(n_queries, 7)``.
        ``x`` is computed from logs and capped at ``e**700``, so nothing overflows for any constants.
        """
        key = (A, alpha, C, beta, gamma)
        terms = self._terms  # read once: another thread may replace it
        if terms is None or terms[0] != key:
            power, d_power = self._power(A, alpha)
            log_x = np.minimum(math.log(C) - gamma * self._pair_log_lr + self._log_since, 700.0)
            x = np.exp(log_x)
            log1p_x = np.log1p(x)
            remain = np.exp(-beta * log1p_x)  # (1 + x)**(-beta)
            drop_sum = self._sum_over_changes(1.0 - remain)
            terms = (key, power, d_power, x, log1p_x, remain, drop_sum)
            if not jacobian:
                # A least-squares fit asks for the Jacobian at the point whose values it has just accepted: the
                # terms shared by both (every pair's x and (1 + x)**(-beta)) are kept for that call.
                self._terms = terms
        _, power, d_power, x, log1p_x, remain, drop_sum = terms
        loss = L0 + power - B * drop_sum
        if not jacobian:
            return loss
        x_dg = beta * remain * (x / (1.0 + x))  # x * dG/dx
        jac = np.empty((loss.size, 7))
        jac[:, 0] = 1.0
        jac[:, 1:3] = d_power
        jac[:, 3] = -drop_sum
        jac[:, 4] = -B * self._sum_over_changes(x_dg) / C
        jac[:, 5] = -B * self._sum_over_changes(remain * log1p_x)
        jac[:, 6] = B * self._sum_over_changes(x_dg * self._pair_log_lr)
        return loss, jac

    def momentum_law(self, L0: float, A: float, alpha: float, B: float, tau: float, *, jacobian: bool = False) -> Any:
        """``L0 + A * area**(-alpha) - B * sum_j drop_j * (1 - exp(-elapsed_ij / tau))``.

        The annealing law of Tissue et al. (2024, arXiv:2408.11029), ``L0 + A S1**(-alpha) - C S2``, with its
        momentum area ``S2 = sum_k drop_k (1 - lambda**(t - k + 1)) / (1 - lambda)`` written as a lag of
        ``tau = -1 / ln(lambda)`` time units (``B = C / (1 - lambda)``): the loss drop of a learning-rate decrease
        builds up over time rather than over learning-rate area. With ``jacobian=True`` also the derivatives
        with respect to ``(L0, A, alpha, B, tau)``.
        """
        power, d_power = self._power(A, alpha)
        decay = np.exp(-self.pair_elapsed / tau)
        drop_sum = self._sum_over_changes(1.0 - decay)
        loss = L0 + power - B * drop_sum
        if not jacobian:
            return loss
        jac = np.empty((loss.size, 5))
        jac[:, 0] = 1.0
        jac[:, 1:3] = d_power
        jac[:, 3] = -drop_sum
        jac[:, 4] = B * self._sum_over_changes(decay * self.pair_elapsed) / tau**2
        return loss, jac

    @functools.cached_property
    def _pair_log_lr(self) -> np.ndarray:
        """``log lr_after`` of each pair's change, gathered once: every evaluation of the law reads it."""
        return self._log_lr[self.pair_change]

    @functools.cached_property
    def _log_area(self) -> np.ndarray:
        return np.log(self.area)

    def _power(self, A: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        log_area = self._log_area
        base = np.exp(-alpha * log_area)
        return A * base, np.column_stack([base, -A * base * log_area])


class _StackedHistory(LearningRateHistory):
    """Several runs' histories as one, whose queries are all runs' points in order: the law evaluated on it is
    each run's values, concatenated; its sums over learning-rate changes are one sparse matrix product.

    An evaluation of the law then costs one pass of numpy calls instead of one per run, and each sum a product
    with the pairs' drops gathered once instead of a gather and an ``np.bincount`` per call (11 us against 98 us
    on 20,000 pairs). The family fits of the pruner's decisions in a study of 500 trials
    (``benchmarks/bench_pruner_latency.py``: 20 runs of about 10 points each, 17,000 pairs, some 50 evaluations
    of the law with their Jacobians) took 20-27 ms (median, 2-core shared machine) instead of 46-73. The values are
    bitwise those of the runs' own histories: every element is computed by the same operations, and the product
    adds each query's pairs in the same order as ``np.bincount``, starting from 0.
    """

    def __init__(self, histories: Sequence[LearningRateHistory]) -> None:  # built from the runs' histories
        queries = np.cumsum([0] + [h.fraction.size for h in histories[:-1]])
        changes = np.cumsum([0] + [h.drop.size for h in histories[:-1]])

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(h, name) for h in histories])

        self.drop, self.lr_after, self.at, self._log_lr = (joined(n) for n in ("drop", "lr_after", "at", "_log_lr"))
        self.fraction, self.area = joined("fraction"), joined("area")
        self.pair_since, self.pair_elapsed, self._log_since = (
            joined(n) for n in ("pair_since", "pair_elapsed", "_log_since"))
        # Pair indices shifted to the run's place in the whole.
        self.pair_query = np.concatenate([h.pair_query + q for h, q in zip(histories, queries)])
        self.pair_change = np.concatenate([h.pair_change + j for h, j in zip(histories, changes)])
        self.run_length = histories[0].run_length if len(histories) == 1 else math.nan  # the laws do not read it
        from scipy.sparse import csr_matrix  # imported when first needed: SciPy's sparse module is slow to import

        # Row i holds query i's pairs (contiguous: a history lists them query by query), weighted by their drops.
        n_pairs = self.pair_query.size
        bounds = np.searchsorted(self.pair_query, np.arange(self.fraction.size + 1))
        self._by_query = csr_matrix((self.drop[self.pair_change], np.arange(n_pairs), bounds),
                                    shape=(self.fraction.size, n_pairs))

    def _sum_over_changes(self, per_pair: np.ndarray) -> np.ndarray:
        return np.asarray(self._by_query @ per_pair)



def _area(nf: np.ndarray, nl: np.ndarray, cum: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Integral of the piecewise-linear ``(nf, nl)`` from 0 to ``f``; the last rate is held beyond ``nf[-1]``."""
    inside = np.minimum(f, nf[-1])
    i = np.clip(np.searchsorted(nf, inside, side="right") - 1, 0, nf.size - 2)
    width = nf[i + 1] - nf[i]
    t = np.divide(inside - nf[i], width, out=np.zeros_like(inside), where=width > 0)
    lr_f = nl[i] + t * (nl[i + 1] - nl[i])
    return cum[i] + 0.5 * (inside - nf[i]) * (nl[i] + lr_f) + np.maximum(f - nf[-1], 0.0) * nl[-1]


def multi_power_law(fraction: Any, schedule: Schedule, params: MultiPowerLawParams | Mapping[str, float], *,
                    run_length: float = 1.0, lr_scale: float = 1.0, n_cells: int = 512) -> np.ndarray:
    """Loss predicted by the multi-power law of Luo et al. (ICLR 2025) along a run.

    ``L(t) = L0 + A (S1(t) + S_W)**(-alpha) - LD(t)``, ``S1 + S_W`` the sum of the learning rates so far and
    ``LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k**(-gamma) S_k(t))``, ``G(x) = 1 - (C x + 1)**(-beta)``,
    ``S_k(t)`` the sum of the learning rates from step ``k`` to ``t`` (see :class:`LearningRateHistory` for the
    discretisation).

    Args:
        fraction: Fractions of the run's planned compute (> 0).
        schedule: The run's schedule.
        params: The seven constants (:class:`MultiPowerLawParams` or a mapping, e.g. ``LUO_2025["100M"]``).
        run_length: Length of the run in the time unit of ``params`` (steps for :data:`LUO_2025`).
        lr_scale: Learning rates are divided by this before use (1 for :data:`LUO_2025`).
        n_cells: Cells of the schedule's discretisation.

    Example:
        >>> s = Cosine(peak_lr=3e-4, warmup=2160 / 24000, final_ratio=0.1)
        >>> round(float(multi_power_law(1.0, s, LUO_2025["25M"], run_length=24000)), 2)
        3.31
    """
    p = params.as_dict() if isinstance(params, MultiPowerLawParams) else dict(params)
    history = LearningRateHistory(schedule, fraction, run_length=run_length, lr_scale=lr_scale, n_cells=n_cells)
    out = history.multi_power_law(p["L0"], p["A"], p["alpha"], p["B"], p["C"], p["beta"], p["gamma"])
    return out.reshape(np.shape(fraction))
