"""The learning-rate schedule a PyTorch LR scheduler will follow, as an :mod:`sh_scaling.schedules` schedule.

A training loop knows its schedule before the first step: the scheduler's settings state it. Read off those
settings (never by stepping the scheduler, so the user's optimizer and scheduler are left exactly as they
were), the schedule can be stored with the trial before its first report, and the pruner forecasts each run
to its own end instead of guessing the rest of the schedule from the rates reported so far.

Nothing here imports torch at module level; the scheduler classes are looked up when a scheduler is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from sh_scaling.schedules import Constant, Cosine, Linear, Schedule, Table

__all__ = ["schedule_from_scheduler"]

#: Most steps at which the rate is evaluated; a longer run is sampled at this many evenly spaced steps (a
#: Python ``lr_lambda`` costs about a microsecond a call: 0.15 s with the thinning, once per trial).
_MAX_SAMPLES = 100_001
#: Most nodes of a derived :class:`~sh_scaling.schedules.Table`: about 16 KB of JSON in the trial's attributes.
_MAX_NODES = 513
#: Relative errors allowed between the table and the scheduler's rate at any sampled step, tried finest first
#: until the table fits in :data:`_MAX_NODES` nodes (a cosine over any number of steps fits at 1e-5).
_NODE_RTOLS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
#: Rates agree with a closed form when within this relative error (float rounding of the same formula).
_CLOSED_FORM_RTOL = 1e-9


class _NoSchedule(Exception):
    """Why the scheduler's rates cannot be stated; the message becomes the reason recorded with the trial."""


_Rates = Callable[[Any, float, np.ndarray], np.ndarray]


def schedule_from_scheduler(scheduler: Any, total_steps: int) -> tuple[Schedule | None, str | None]:
    """The schedule ``scheduler`` will follow over a run of ``total_steps`` scheduler steps, as a schedule of
    the fraction of the run, or ``None`` and why not.

    The rate of the optimizer's first parameter group (the one the integrations report) after ``k`` calls of
    ``scheduler.step()`` is the schedule at ``f = k / total_steps``. It is computed from the scheduler's
    settings with torch's closed forms, for ``k = 0 .. total_steps``:

    * ``LambdaLR``: ``base_lr * lr_lambda(k)``; ``MultiplicativeLR``: ``base_lr`` times the product of
      ``lr_lambda(j)`` for ``j = 1 .. k``. The lambdas are called with each step, as the scheduler would, so
      they must be pure functions of the step;
    * ``CosineAnnealingLR`` (``T_max``, ``eta_min``), ``LinearLR``, ``ConstantLR``, ``StepLR``,
      ``MultiStepLR``, ``ExponentialLR``, ``PolynomialLR``;
    * ``SequentialLR`` of those (a warm-up, then a decay): each from step 0 at its milestone.

    Where the rates are exactly a :class:`~sh_scaling.schedules.Constant`, :class:`~sh_scaling.schedules.Cosine`
    or :class:`~sh_scaling.schedules.Linear` (``CosineAnnealingLR`` with ``T_max = total_steps``, a
    ``LinearLR`` decay over the run, an ``lr_lambda`` with a warm-up from 0 then a cosine), that schedule is
    returned; otherwise a :class:`~sh_scaling.schedules.Table` through the rates, with the fewest nodes that
    keep every step within a relative ``1e-7`` of the scheduler's rate, or the finest of ``1e-6``, ``1e-5``,
    ... that fits in 513 nodes (about 16 KB of JSON): every step of a run of up to 512 steps is exact, and a
    cosine over any number of steps stays within ``1e-5`` (evaluated at 100,001 evenly spaced steps at most).

    Neither the scheduler nor its optimizer is changed. Anything else (``ReduceLROnPlateau``, whose rate follows
    the metric; ``OneCycleLR``, ``CyclicLR``, ``CosineAnnealingWarmRestarts``, ``ChainedScheduler``, a subclass
    of the classes above, whose ``get_lr`` may differ), a lambda that raises or returns a negative, NaN or
    infinite rate, or rates that are all 0 give ``None`` and the reason: never an exception, so a scheduler the
    derivation cannot read does not stop training.

    Args:
        scheduler: A ``torch.optim.lr_scheduler`` scheduler, as built (it may have been stepped already: the
            schedule is the whole run's, from step 0).
        total_steps: Planned number of ``scheduler.step()`` calls in the run (a positive integer).

    Raises:
        ValueError: ``total_steps`` is not a positive integer.

    Example::

        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000, eta_min=3e-5)
        schedule_from_scheduler(sched, 1000)   # (Cosine(peak_lr=0.0003, warmup=0.0, final_ratio=0.1), None)
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer (the planned scheduler steps), got {total_steps!r}")
    n = int(total_steps)
    steps = np.unique(np.round(np.linspace(0, n, min(n + 1, _MAX_SAMPLES))).astype(np.int64))
    name = type(scheduler).__name__
    try:
        lrs = _rates(scheduler, steps)
        _check_rates(lrs, steps)
    except _NoSchedule as exc:
        return None, f"{name}: {exc}; forecasts follow the reported learning rates"
    except Exception as exc:  # noqa: BLE001 - reading a scheduler must never fail the user's training
        return None, (
            f"{name}: its learning rates could not be read ({type(exc).__name__}: {exc}); forecasts follow the "
            "reported learning rates"
        )
    fractions = steps / n
    return _closed_form(fractions, lrs) or _table(fractions, lrs), None


def _rates(scheduler: Any, steps: np.ndarray) -> np.ndarray:
    """The rate of the first parameter group after each of ``steps`` (sorted, from 0) scheduler steps."""
    try:
        from torch.optim import lr_scheduler as lrs
    except ImportError:
        raise _NoSchedule("not a torch scheduler (torch is not installed)") from None
    kind = type(scheduler)
    if kind is lrs.SequentialLR:
        return _sequential_rates(scheduler, steps)
    rules = _closed_forms()
    if kind not in rules:
        raise _NoSchedule(_unsupported(kind, rules))
    base = float(scheduler.base_lrs[0])
    with np.errstate(all="ignore"):  # a degenerate setting gives NaN or inf, which _check_rates names
        return np.broadcast_to(np.asarray(rules[kind](scheduler, base, steps), float), steps.shape)


@functools.cache
def _closed_forms() -> dict[type, _Rates]:
    """``rate(scheduler, base_lr, steps)`` for each scheduler class derived: torch's ``_get_closed_form_lr``
    (and ``get_lr`` for the lambda schedulers, which have none), vectorised over the steps."""
    from torch.optim import lr_scheduler as lrs

    return {
        lrs.LambdaLR: _lambda_rates,
        lrs.MultiplicativeLR: _multiplicative_rates,
        lrs.CosineAnnealingLR: lambda s, base, k: (
            s.eta_min + (base - s.eta_min) * (1 + np.cos(np.pi * k / s.T_max)) / 2
        ),
        lrs.LinearLR: lambda s, base, k: base * (
            s.start_factor + (s.end_factor - s.start_factor) * np.minimum(s.total_iters, k) / s.total_iters
        ),
        lrs.ConstantLR: lambda s, base, k: base * np.where(k >= s.total_iters, 1.0, s.factor),
        lrs.StepLR: lambda s, base, k: base * float(s.gamma) ** (k // s.step_size),
        lrs.MultiStepLR: lambda s, base, k: base * float(s.gamma) ** np.searchsorted(
            sorted(s.milestones.elements()), k, side="right"
        ),
        lrs.ExponentialLR: lambda s, base, k: base * float(s.gamma) ** k,
        lrs.PolynomialLR: lambda s, base, k: base * (1.0 - np.minimum(s.total_iters, k) / s.total_iters) ** s.power,
    }


def _unsupported(kind: type, rules: dict[type, _Rates]) -> str:
    names = sorted(k.__name__ for k in rules) + ["SequentialLR"]
    parent = next((k.__name__ for k in kind.__mro__[1:] if k in rules), None)
    if kind.__name__ == "ReduceLROnPlateau":
        why = "its rate follows the monitored metric, which is not known in advance"
    elif parent is not None:
        why = f"a subclass of {parent}, whose rates may differ from its parent's"
    else:
        why = "no closed form derived for it"
    return f"{why} (derived: {', '.join(names)})"


def _lambda_rates(scheduler: Any, base: float, steps: np.ndarray) -> np.ndarray:
    return base * _call_each(scheduler.lr_lambdas[0], steps)


def _multiplicative_rates(scheduler: Any, base: float, steps: np.ndarray) -> np.ndarray:
    # Each rate is the previous one times lr_lambda(step): every step must be evaluated.
    if steps[-1] + 1 != steps.size:
        raise _NoSchedule(f"its rate multiplies every step's lr_lambda, and {int(steps[-1])} steps are too many to "
                          f"evaluate (at most {_MAX_SAMPLES - 1})")
    factors = _call_each(scheduler.lr_lambdas[0], steps[1:])
    return base * np.concatenate([[1.0], np.cumprod(factors)])


def _call_each(fn: Callable[[int], Any], steps: np.ndarray) -> np.ndarray:
    """``fn(step)`` for every step, as the scheduler calls it: with a Python int, one call each."""
    out = np.empty(steps.shape)
    for i, step in enumerate(steps.tolist()):
        try:
            out[i] = float(fn(step))
        except Exception as exc:  # noqa: BLE001 - a failing lambda is a reason, not a failed training run
            raise _NoSchedule(f"its lr_lambda raised {type(exc).__name__} ({exc}) at step {step}") from None
    return out


def _sequential_rates(scheduler: Any, steps: np.ndarray) -> np.ndarray:
    """``SequentialLR``: from its milestone ``m`` on, scheduler ``i`` restarts at step 0 (torch sets its rate
    with the closed form at step 0, from the base rate) and runs on with ``step - m``."""
    from torch.optim.lr_scheduler import MultiplicativeLR

    milestones = np.asarray(scheduler._milestones, dtype=np.int64)
    index = np.searchsorted(milestones, steps, side="right")
    start = np.concatenate([[0], milestones])[index]
    out = np.empty(steps.shape)
    for i, sub in enumerate(scheduler._schedulers):
        at = index == i
        if not np.any(at):
            continue
        if i > 0 and type(sub) is MultiplicativeLR:
            # Without a closed form it restarts from the rate the previous scheduler left, not the base rate.
            raise _NoSchedule("a MultiplicativeLR after the first milestone continues from the previous rate")
        out[at] = _rates(sub, steps[at] - start[at])
    return out


def _check_rates(lrs: np.ndarray, steps: np.ndarray) -> None:
    """Rates :class:`~sh_scaling.schedules.Table` accepts: finite, ``>= 0``, not all 0 (else the reason)."""
    bad = ~np.isfinite(lrs) | (lrs < 0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise _NoSchedule(f"its learning rate at step {int(steps[i])} is {float(lrs[i])!r} (not a finite number >= 0)")
    if not np.any(lrs > 0):
        raise _NoSchedule("its learning rate is 0 at every step")


def _closed_form(fractions: np.ndarray, lrs: np.ndarray) -> Schedule | None:
    """A :class:`Constant`, :class:`Cosine` or :class:`Linear` that gives every one of the rates, else ``None``.

    Their warm-up starts at 0 and ends at the peak; a run that starts at its peak has none.
    """
    peak = float(lrs.max())
    at_peak = lrs >= peak * (1 - _CLOSED_FORM_RTOL)
    if lrs[0] == 0.0:
        warmup = float(fractions[int(np.argmax(at_peak))])
    elif at_peak[0]:
        warmup = 0.0
    else:
        return None
    final = float(lrs[-1]) / peak
    candidates: tuple[Callable[[], Schedule], ...] = (
        lambda: Constant(peak_lr=peak, warmup=warmup),
        lambda: Cosine(peak_lr=peak, warmup=warmup, final_ratio=final),
        lambda: Linear(peak_lr=peak, warmup=warmup, final_ratio=final),
    )
    for build in candidates:
        try:
            schedule = build()
        except ValueError:  # a warm-up as long as the run, a final rate above the peak: not this shape
            continue
        if np.allclose(schedule(fractions), lrs, rtol=_CLOSED_FORM_RTOL, atol=_CLOSED_FORM_RTOL * peak):
            return schedule
    return None


def _table(fractions: np.ndarray, lrs: np.ndarray) -> Table:
    """A table through as few of the rates as keep all of them within the finest tolerance that fits."""
    keep = np.arange(fractions.size)
    for rtol in _NODE_RTOLS:
        keep = _nodes_within(fractions, lrs, rtol)
        if keep.size <= _MAX_NODES:
            break
    else:
        keep = np.unique(np.round(np.linspace(0, fractions.size - 1, _MAX_NODES)).astype(np.int64))
    return Table(fractions=tuple(fractions[keep].tolist()), lrs=tuple(lrs[keep].tolist()))


def _nodes_within(x: np.ndarray, y: np.ndarray, rtol: float) -> np.ndarray:
    """Indices of the points kept by Ramer-Douglas-Peucker thinning: the line between kept neighbours passes
    within ``rtol * |y|`` (plus a floor of ``rtol * 1e-6 * max(y)``, so rates near 0 need no infinite
    precision) of every point dropped between them."""
    tolerance = rtol * (np.abs(y) + 1e-6 * float(np.max(np.abs(y))))
    keep = np.zeros(x.size, dtype=bool)
    keep[[0, -1]] = True
    pending = [(0, x.size - 1)]
    while pending:
        i, j = pending.pop()
        if j - i < 2:
            continue
        inner = slice(i + 1, j)
        line = y[i] + (x[inner] - x[i]) * ((y[j] - y[i]) / (x[j] - x[i]))
        excess = np.abs(line - y[inner]) / tolerance[inner]
        worst = int(np.argmax(excess))
        if excess[worst] > 1.0:
            m = i + 1 + worst
            keep[m] = True
            pending += [(i, m), (m, j)]
    return np.flatnonzero(keep)

