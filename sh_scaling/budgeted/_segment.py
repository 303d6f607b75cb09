"""One segment of a candidate's training: resume from its checkpoint, train to the granted compute, record.

A segment runs in the driver's process (``n_workers=1``) or in a worker process; either way it owns the
candidate's trial while it runs (the trial is moved from WAITING to RUNNING, which only one process can do)
and gives it back (RUNNING to WAITING) when it is done. The compute it may spend was reserved in the trial's
segment record by the driver before the segment was handed out; the segment writes what happened into the
same record, and never touches the budget.

Order of the writes, so that a process killed at any point leaves a state the driver can resume from:
checkpoint upload, then the reports (with fixed step numbers, so that a retry re-reporting the same points
changes nothing), then the segment record (``status: done``), then the trial goes back to WAITING.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact, upload_artifact
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from sh_scaling.halving import RTOL
from sh_scaling.keys import BUDGETED_CANDIDATE_KEY, BUDGETED_FAILED_KEY, DECISION_KEY
from sh_scaling.pruning import report, reported_compute

__all__ = ["CheckpointError", "SegmentTask", "run_segment", "fail_trial"]

#: How much of a train_fn traceback is kept with a failure (its last lines name the cause).
_TRACEBACK_CHARS = 2000


class CheckpointError(Exception):
    """Raise it from ``train_fn`` when the checkpoint it was handed cannot be loaded.

    The segment is then restarted from scratch (``from_checkpoint=None``), the extra compute that costs is
    reserved from the budget like any other, and the segment record says why. Any other exception fails the
    candidate.
    """


@dataclass(frozen=True)
class SegmentTask:
    """A segment handed to a process: which trial, which segment record, which attempt."""

    trial_id: int
    key: str
    attempt: int


class _Abandoned(Exception):
    """The driver that handed out this segment is gone: write nothing more."""


def run_segment(
    study: optuna.Study,
    artifact_store: Any,
    train_fn: Callable[..., Any],
    task: SegmentTask,
    abandoned: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Run one reserved segment and record it. Returns the outcome for the driver:
    ``{"status": "done" | "failed" | "checkpoint" | "stale", "reason": str}``."""
    storage: BaseStorage = study._storage
    tid = task.trial_id
    try:
        if not storage.set_trial_state_values(tid, TrialState.RUNNING):
            return {"status": "stale", "reason": "the trial is already running in another process"}
    except optuna.exceptions.UpdateFinishedTrialError:
        return {"status": "stale", "reason": "the trial is already finished"}
    frozen = storage.get_trial(tid)
    seg = dict(frozen.system_attrs[task.key])
    if seg["status"] != "reserved" or seg.get("attempts", 1) != task.attempt:
        storage.set_trial_state_values(tid, TrialState.WAITING)
        return {"status": "stale", "reason": f"segment {task.key} is {seg['status']}, attempt {seg.get('attempts')}"}
    candidate = frozen.system_attrs[BUDGETED_CANDIDATE_KEY]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sh_scaling-segment-") as tmp:
        resume_path = None
        if seg["resume"] is not None:
            resume_path = os.path.join(tmp, "checkpoint")
            try:
                download_artifact(artifact_store=artifact_store, file_path=resume_path, artifact_id=seg["resume"])
            except Exception as exc:  # noqa: BLE001 - any store error means the same: no checkpoint to resume
                storage.set_trial_state_values(tid, TrialState.WAITING)
                return {"status": "checkpoint", "reason": f"download failed: {type(exc).__name__}: {exc}"}
        try:
            out = train_fn(candidate["config"], resume_path, float(seg["until"]))
            points, checkpoint = _unpack(out)
        except CheckpointError as exc:
            storage.set_trial_state_values(tid, TrialState.WAITING)
            return {"status": "checkpoint", "reason": f"train_fn could not load it: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a failing candidate must not stop the round
            reason = f"train_fn raised {type(exc).__name__}: {exc}"
            tb = traceback.format_exc()[-_TRACEBACK_CHARS:]
            if abandoned():
                raise _Abandoned from exc
            fail_trial(storage, tid, reason, segment=(task.key, seg), traceback=tb)
            return {"status": "failed", "reason": reason}
        if abandoned():
            raise _Abandoned
        record = _record_points(study, frozen, seg, points, float(candidate["planned"]))
        record.update(_upload(storage, artifact_store, frozen, checkpoint, tmp))
    record.update(status="done", worker=os.getpid(), seconds=round(time.perf_counter() - t0, 3),
                  notes=list(seg.get("notes", [])) + record.pop("new_notes"))
    storage.set_trial_system_attr(tid, task.key, {**seg, **record})
    storage.set_trial_state_values(tid, TrialState.WAITING)
    return {"status": "done", "reason": ""}


def fail_trial(
    storage: BaseStorage,
    tid: int,
    reason: str,
    *,
    segment: tuple[str, dict[str, Any]] | None = None,
    traceback: str | None = None,
) -> None:
    """Fail a candidate with its reason: in its segment record, its failure key, its decision text."""
    if segment is not None:
        key, seg = segment
        storage.set_trial_system_attr(tid, key, {**seg, "status": "failed", "reason": reason})
    storage.set_trial_system_attr(tid, BUDGETED_FAILED_KEY, {"reason": reason, "traceback": traceback})
    storage.set_trial_user_attr(tid, DECISION_KEY, f"failed: {reason}")
    storage.set_trial_state_values(tid, TrialState.FAIL)


def _unpack(out: Any) -> tuple[list[tuple[float, float]], Any]:
    """``(points, checkpoint)`` from what train_fn returned, with points as float pairs."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"train_fn must return (points, checkpoint), got {type(out).__name__}")
    raw, checkpoint = out
    points = []
    for p in raw if raw is not None else []:
        try:
            c, loss = p
            points.append((float(c), float(loss)))
        except (TypeError, ValueError):
            raise TypeError(f"train_fn returned a point {p!r}; points are (compute, loss) pairs") from None
    return points, checkpoint


def _record_points(
    study: optuna.Study, frozen: optuna.trial.FrozenTrial, seg: dict[str, Any], points: list, planned: float
) -> dict[str, Any]:
    """Report the segment's points (clipped to what it was granted) and say what was left out."""
    until = float(seg["until"])
    notes: list[str] = []
    already = reported_compute(frozen)
    last = max(already.values()) if already else 0.0
    bad = [p for p in points if not (math.isfinite(p[0]) and p[0] > 0)]
    pts = sorted((p for p in points if math.isfinite(p[0]) and p[0] > 0), key=lambda p: p[0])
    if bad:
        notes.append(f"{len(bad)} point(s) with a compute that is not a positive number dropped")
    seen = [p for p in pts if p[0] <= last * (1 + RTOL)]
    if seen:
        # A restart from scratch re-evaluates what the curve already has; the first report of a compute stands.
        notes.append(f"{len(seen)} point(s) at or below the compute already on the curve ({last:.6g}) dropped")
    beyond = [p for p in pts if p[0] > until * (1 + RTOL)]
    overshoot = max(p[0] for p in beyond) - until if beyond else 0.0
    if beyond:
        notes.append(f"{len(beyond)} point(s) past the granted {until:.6g} clipped (up to {until + overshoot:.6g}); "
                     "the budget counts the granted compute")
    keep: list[tuple[float, float]] = []
    for p in pts:
        if last * (1 + RTOL) < p[0] <= until * (1 + RTOL) and not (keep and p[0] <= keep[-1][0]):
            keep.append(p)
    n_dup = sum(1 for p in pts if last * (1 + RTOL) < p[0] <= until * (1 + RTOL)) - len(keep)
    if n_dup:
        notes.append(f"{n_dup} point(s) repeating a compute of this segment dropped (the first stands)")
    n_nonfinite = sum(1 for p in keep if not math.isfinite(p[1]))
    if n_nonfinite:
        notes.append(f"{n_nonfinite} non-finite loss(es) reported; rankings leave them out")
    trial = optuna.trial.Trial(study, frozen._trial_id)
    step = int(seg["first_step"])
    n_reported = 0
    for i, (c, loss) in enumerate(keep):
        if step + i in trial._cached_frozen_trial.intermediate_values:
            continue  # reported by an earlier attempt of this segment that was killed: it stands
        try:
            report(trial, loss, compute=c, step=step + i, max_compute=planned)
            n_reported += 1
        except ValueError as exc:
            notes.append(f"point ({c:.6g}, {loss!r}) not reported: {exc}")
    last_point = keep[-1][0] if keep else None
    return {
        "n_points": len(keep),
        "n_reported": n_reported,
        "last_compute": last_point,
        # Fewer points than asked: the segment ends without an evaluation at the compute it was granted.
        "short": last_point is None or last_point < until * (1 - RTOL),
        "overshoot": overshoot,
        "new_notes": notes,
    }


def _upload(storage: BaseStorage, artifact_store: Any, frozen: Any, checkpoint: Any, tmp: str) -> dict[str, Any]:
    """Upload the checkpoint train_fn returned (a file path, bytes, or None for a trainer that keeps none)."""
    if checkpoint is None:
        return {"checkpoint": None, "checkpoint_lost": False}
    try:
        if isinstance(checkpoint, (bytes, bytearray, memoryview)):
            path = os.path.join(tmp, "new-checkpoint")
            Path(path).write_bytes(bytes(checkpoint))
        else:
            path = os.fspath(checkpoint)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is not a file")
        artifact_id = upload_artifact(artifact_store=artifact_store, file_path=path, study_or_trial=frozen,
                                      storage=storage)
    except Exception as exc:  # noqa: BLE001 - the points stand; the next segment restarts from scratch
        return {"checkpoint": None, "checkpoint_lost": True,
                "checkpoint_error": f"upload failed: {type(exc).__name__}: {exc}"}
    return {"checkpoint": artifact_id, "checkpoint_lost": False}
