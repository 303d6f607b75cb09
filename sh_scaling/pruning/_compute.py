"""How the compute of each report is stored in a trial, and how a trial's learning curve is read back.

The compute of each step goes to two system attributes (:data:`sh_scaling.keys.COMPUTE_KEY` for the steps sealed
so far, :data:`sh_scaling.keys.COMPUTE_TAIL_KEY` for at most :data:`~sh_scaling.keys.COMPUTE_TAIL_SIZE` recent
ones), each a list of ``[step, compute]`` pairs sorted by step. A report rewrites the short list only, and the
long one once every ``COMPUTE_TAIL_SIZE`` reports, so the cost of a report does not grow with the number of
reports, and ``study.trials_dataframe()`` gets two columns however many reports there are. A report that gives
the learning rate in effect stores ``[step, compute, lr]``: the rate travels with the compute it belongs to, at
no extra write.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sh_scaling.keys import COMPUTE_KEY, COMPUTE_TAIL_KEY, COMPUTE_TAIL_SIZE

__all__ = [
    "HOW_TO_REPORT", "reported_compute", "reported_lr", "last_reported", "n_stored", "observed_curve", "loss_at",
    "stored_pairs", "lr_curve", "is_number",
]

HOW_TO_REPORT = (
    "report compute with each loss: replace `trial.report(loss, step)` by "
    "`sh_scaling.report(trial, loss, compute=flops_so_far, step=step)`, or pass "
    "`compute_fn=lambda params, step: ...` to the pruner"
)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool: what a setting that asks for a number accepts."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _stored_entries(system_attrs: Mapping[str, Any]) -> list[list[float]]:
    """Every stored entry (``[step, compute]`` or ``[step, compute, lr]``), sorted by step, each step once."""
    sealed = system_attrs.get(COMPUTE_KEY) or []
    tail = system_attrs.get(COMPUTE_TAIL_KEY) or []
    entries = list(sealed) + list(tail)
    if not entries:
        return []
    # Sealing writes the long list before it empties the short one: a reader in between sees an entry twice.
    seen: dict[int, list[float]] = {}
    for e in entries:
        seen.setdefault(int(e[0]), e)
    return [seen[s] for s in sorted(seen)]


def stored_pairs(system_attrs: Mapping[str, Any]) -> list[list[float]]:
    """Every stored ``[step, compute]`` pair, sorted by step (a step stored twice keeps its first compute)."""
    return [[int(e[0]), float(e[1])] for e in _stored_entries(system_attrs)]


def _stored_compute(system_attrs: Mapping[str, Any]) -> dict[int, float]:
    """``{step: compute}`` of every stored entry."""
    return {int(e[0]): float(e[1]) for e in _stored_entries(system_attrs)}


def lr_curve(system_attrs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(compute, lr)`` of the reports that gave a learning rate, sorted by step (empty arrays if none)."""
    rows = [(float(e[1]), float(e[2])) for e in _stored_entries(system_attrs) if len(e) > 2 and e[2] is not None]
    if not rows:
        return np.empty(0), np.empty(0)
    c, lr = zip(*rows)
    return np.asarray(c, dtype=float), np.asarray(lr, dtype=float)


def reported_lr(trial: Any) -> dict[int, float]:
    """The learning rate reported with each step of a trial (``{step: lr}``; steps reported without one are
    absent)."""
    return {int(e[0]): float(e[2]) for e in _stored_entries(trial.system_attrs) if len(e) > 2 and e[2] is not None}


def reported_compute(trial: Any) -> dict[int, float]:
    """The compute reported with each step of a trial (``{step: compute}``), from its system attributes.

    Works with an ``optuna.trial.FrozenTrial`` (e.g. from ``study.trials``) or anything with
    ``system_attrs``. Steps reported with plain ``trial.report`` (no compute) are absent.
    """
    return _stored_compute(trial.system_attrs)


def n_stored(system_attrs: Mapping[str, Any]) -> int:
    """How many pairs are stored (without reading them; a pair seen twice while sealing counts twice)."""
    return len(system_attrs.get(COMPUTE_KEY) or []) + len(system_attrs.get(COMPUTE_TAIL_KEY) or [])


def last_reported(system_attrs: Mapping[str, Any]) -> tuple[int, float] | None:
    """The stored pair with the largest step, without reading the whole list when the short one has it."""
    tail = system_attrs.get(COMPUTE_TAIL_KEY) or []
    if tail:
        return int(tail[-1][0]), float(tail[-1][1])
    sealed = system_attrs.get(COMPUTE_KEY) or []
    if sealed:
        return int(sealed[-1][0]), float(sealed[-1][1])
    return None


def updated_lists(
    system_attrs: Mapping[str, Any], step: int, compute: float, lr: float | None = None
) -> dict[str, list[list[float]]]:
    """The attribute values to write after adding ``(step, compute)``, or ``(step, compute, lr)`` when a
    learning rate is given (only the keys that change)."""
    # New lists, never the stored ones changed in place; the long list is only copied when it changes, so
    # that a report costs the same after 10 reports or 5,000.
    sealed = system_attrs.get(COMPUTE_KEY) or []
    tail = system_attrs.get(COMPUTE_TAIL_KEY) or []
    latest = last_reported(system_attrs)
    last = latest[0] if latest is not None else -1
    entry = [int(step), float(compute)] if lr is None else [int(step), float(compute), float(lr)]
    if step > last:
        tail = [*tail, entry]
        if len(tail) >= COMPUTE_TAIL_SIZE:
            return {COMPUTE_KEY: [*sealed, *tail], COMPUTE_TAIL_KEY: []}
        if COMPUTE_KEY not in system_attrs:
            # Both keys from the first report on, so that a trial has the same two attributes (and
            # study.trials_dataframe() the same two columns) whether it made 10 reports or 500.
            return {COMPUTE_KEY: [], COMPUTE_TAIL_KEY: tail}
        return {COMPUTE_TAIL_KEY: tail}
    # A step below the latest one (steps may arrive out of order): rebuild both lists, sorted.
    pairs = sorted([*sealed, *tail, entry], key=lambda p: p[0])
    return {COMPUTE_KEY: pairs, COMPUTE_TAIL_KEY: []}


def observed_curve(
    intermediate_values: Mapping[int, float],
    system_attrs: Mapping[str, Any],
    params: Mapping[str, Any],
    compute_fn: Callable[[dict[str, Any], int], float] | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The trial's reported points as ``(compute, loss)`` sorted by step, and what had to be left out.

    A step's compute is the stored one, else ``compute_fn(params, step)``. Steps with no compute, a non-finite
    or non-positive compute, or a compute that does not increase with the step are left out of the curve
    (they stay in Optuna's intermediate values: nothing is lost) and named in the returned notes. Losses are
    returned as reported, non-finite ones included, so that the caller can prune on them.
    """
    stored = _stored_compute(system_attrs)
    compute: list[float] = []
    loss: list[float] = []
    notes: list[str] = []
    last = 0.0
    for s in sorted(intermediate_values):
        c: Any = stored.get(int(s))
        if c is None and compute_fn is not None:
            try:
                c = float(compute_fn(dict(params), int(s)))
            except Exception as exc:  # noqa: BLE001 - a broken compute_fn is reported, never crashes the study
                notes.append(f"step {s}: compute_fn raised {type(exc).__name__}: {exc}")
                continue
        if c is None:
            notes.append(f"step {s}: no compute")
            continue
        c = float(c)
        if not (math.isfinite(c) and c > 0):
            notes.append(f"step {s}: invalid compute {c!r}")
            continue
        if c <= last:
            notes.append(f"step {s}: compute {c:.6g} does not increase (previous {last:.6g})")
            continue
        last = c
        compute.append(c)
        loss.append(float(intermediate_values[s]))
    return np.asarray(compute, dtype=float), np.asarray(loss, dtype=float), notes


def loss_at(compute: np.ndarray, loss: np.ndarray, at: float) -> float:
    """Loss read off a curve at ``at``, interpolated between the reports around it.

    Interpolation is linear in log-log space (learning curves are close to straight lines there) when the
    losses are positive, linear in loss against log-compute otherwise. ``at`` must lie within the curve.
    """
    x = np.log(compute)
    if np.all(loss > 0):
        return float(np.exp(np.interp(math.log(at), x, np.log(loss))))
    return float(np.interp(math.log(at), x, loss))


def clean_float(x: float) -> float | None:
    """A float for JSON storage (``None`` for NaN/inf, which RDB storages cannot round-trip reliably)."""
    x = float(x)
    return x if math.isfinite(x) else None
