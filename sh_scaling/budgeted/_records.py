"""What the storage holds about a budgeted sweep, read back: a candidate's segments, its trained compute, its curve.

Everything the driver decides from is read from here, never from memory, so that a restarted driver, or one
on another machine, makes the same decisions as the one that stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from sh_scaling.curves import Curve
from sh_scaling.keys import BUDGETED_CANDIDATE_KEY, BUDGETED_SEGMENT_PREFIX
from sh_scaling.pruning import reported_compute
from sh_scaling.schedules import Schedule

__all__ = ["PlannedCurve", "segments", "trained_compute", "planned_curve", "candidate_index",
           "UpdateFinishedTrialError"]

#: What a storage raises when a finished trial is written to: Optuna's own exception since 4.1 (a RuntimeError),
#: a plain RuntimeError before it.
UpdateFinishedTrialError: type[Exception] = getattr(optuna.exceptions, "UpdateFinishedTrialError", RuntimeError)


@dataclass(frozen=True)
class PlannedCurve(Curve):
    """A candidate's curve as far as it has been trained, and the compute it is planned to reach.

    The simulator's curves are complete recordings, so their last point is their planned end
    (``final_compute``); a candidate in training has observed points only up to where it is now. The decision
    core reads the planned end to place the warm-up window of surrogate fits
    (:func:`sh_scaling.halving.fit_window`), so it must be the plan, not the last point.
    """

    planned: float = math.inf

    @property
    def final_compute(self) -> float:
        return float(self.planned)


def segments(trial: Any) -> list[dict[str, Any]]:
    """The segment records of a candidate's trial (a ``FrozenTrial`` or anything with ``system_attrs``), in
    order. Each is the dict the driver and the worker wrote under
    :func:`sh_scaling.keys.budgeted_segment_key`."""
    attrs = trial.system_attrs
    return [dict(attrs[k]) for k in sorted(k for k in attrs if k.startswith(BUDGETED_SEGMENT_PREFIX))]


def candidate_index(trial: Any) -> int | None:
    """The candidate a trial trains (``None`` for a trial the driver did not create)."""
    record = trial.system_attrs.get(BUDGETED_CANDIDATE_KEY)
    return None if record is None else int(record["index"])


def trained_compute(segs: list[dict[str, Any]]) -> float:
    """Where the candidate's last finished segment left it (0 before any): the ``until`` it was granted."""
    done = [s for s in segs if s["status"] == "done"]
    return float(done[-1]["until"]) if done else 0.0


def planned_curve(trial: Any, planned: float, schedule: Schedule | None = None) -> PlannedCurve:
    """The trial's reported points, in step order, as a curve the decision core can rank.

    Losses that are not finite and positive are left out (they stay in the trial): the core works in
    log-log space. A candidate with no point yet has an empty curve, which the core ranks last. ``schedule``
    (its learning-rate schedule over the fraction of ``planned``) goes into ``meta["schedule"]``, where
    schedule-aware strategies read it, as they do from recorded curves.
    """
    compute_of = reported_compute(trial)
    steps = sorted(s for s in trial.intermediate_values if s in compute_of)
    c = np.array([compute_of[s] for s in steps], dtype=float)
    y = np.array([trial.intermediate_values[s] for s in steps], dtype=float)
    keep = np.isfinite(y) & (y > 0)
    c, y = c[keep], y[keep]
    c.setflags(write=False)
    y.setflags(write=False)
    index = candidate_index(trial)
    meta = {} if schedule is None else {"schedule": schedule}
    return PlannedCurve(str(index if index is not None else trial.number), c, y, meta, planned=float(planned))
