"""One segment of a candidate's training: resume from its checkpoint, train to the granted compute, record.

A segment runs in the driver's process (``n_workers=1``) or in a worker process; either way it owns the
candidate's trial while it runs (the trial is moved from WAITING to RUNNING, which only one process can do)
and gives it back (RUNNING to WAITING) when it is done. The compute it may spend was reserved in the trial's
segment record by the driver before the segment was handed out; the segment writes what happened into the
same record, and never touches the budget.

Order of the writes, so that a process killed at any point leaves a state the driver can resume from:
checkpoint upload; then the outcome is recorded in the attempt's own trial, which is finished with it (two
writes; the storage refuses them once the attempt was taken back from this process, see
:mod:`sh_scaling.budgeted._attempts`); then one write of the segment record holding its outcome (``result``:
every point with its step, compute and loss, and the checkpoint's id); then the points are reported from that record
(:func:`sh_scaling.pruning.report_points`: computes first, then the losses that are missing, so a retry
writes exactly the points a killed attempt did not and pairs each loss with its own compute); then the
record is marked ``done`` (the points leave it: the trial holds them) and the trial goes back to WAITING. A
retry of a segment whose record has a result trains nothing.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact, get_all_artifact_meta, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from sh_scaling.budgeted._attempts import attempts_study_name, new_attempt, record_outcome
from sh_scaling.budgeted._preempt import Preemption, TrainingStopped
from sh_scaling.budgeted._records import UpdateFinishedTrialError, segments
from sh_scaling.halving import RTOL
from sh_scaling.keys import BUDGETED_CANDIDATE_KEY, BUDGETED_FAILED_KEY, DECISION_KEY
from sh_scaling.pruning import report_points, reported_compute

__all__ = ["CheckpointError", "SegmentTask", "run_segment", "fail_trial", "finish_attempt", "interrupted",
           "progress_mark",
           "uploaded_ids"]

#: How much of a train_fn traceback is kept with a failure (its last lines name the cause).
_TRACEBACK_CHARS = 2000

#: The ids :func:`optuna.artifacts.upload_artifact` gives (``str(uuid.uuid4())``): a file name, never a path.
_ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    preemption: Preemption | None = None,
    on_claim: Callable[[dict[str, Any]], None] | None = None,
    on_release: Callable[..., bool | None] | None = None,
) -> dict[str, Any]:
    """Run one reserved segment and record it. Returns the outcome for the driver:
    ``{"status": "done" | "failed" | "checkpoint" | "missing" | "stale" | "preempted", "reason": str}``.

    ``missing``: the checkpoint to resume from, recorded by the segment that wrote it, is not in
    ``artifact_store`` (on a cluster: this process's store is not the one the others share). The trial is put
    back to WAITING with its record untouched, for a process that has the checkpoint.

    A segment whose training ended before its process was killed has its outcome in its record (``result``):
    its retry trains nothing and reports what the killed attempt had not reported yet. With ``preemption``,
    a SIGTERM gives ``train_fn`` its grace; a ``train_fn`` stopped after it puts the trial back to WAITING
    (``preempted``: an interruption of the segment, noted in its record, not a death of its worker).
    ``on_claim(seg)`` runs once the trial is claimed for the segment's record ``seg``, ``on_release()`` just
    before it is given back (WAITING), so that what it writes (a worker's heartbeat finished) cannot land after
    another process claimed it; ``on_release(reuse=True)`` when the same attempt is put back for another
    worker. ``on_release`` returning ``False`` says the segment was taken back from this process: the trial is
    then not given back."""
    storage: BaseStorage = study._storage
    tid = task.trial_id
    preemption = preemption or Preemption()
    if preemption.requested.is_set():
        return {"status": "preempted", "reason": "the process was told to stop before the segment started"}
    try:
        if not storage.set_trial_state_values(tid, TrialState.RUNNING):
            return {"status": "stale", "reason": "the trial is already running in another process"}
    except UpdateFinishedTrialError:
        return {"status": "stale", "reason": "the trial is already finished"}

    def give_back(reuse: bool = False) -> None:
        # A heartbeat refused by the storage (``on_release`` says ``False``): the segment was taken back from this
        # process and the trial may be another worker's by now.
        if on_release is not None and (on_release(reuse=True) if reuse else on_release()) is False:
            return
        storage.set_trial_state_values(tid, TrialState.WAITING)

    frozen = storage.get_trial(tid)
    seg = dict(frozen.system_attrs[task.key])
    if seg["status"] != "reserved" or seg.get("attempts", 1) != task.attempt:
        give_back()
        return {"status": "stale", "reason": f"segment {task.key} is {seg['status']}, attempt {seg.get('attempts')}"}
    if on_claim is not None:
        on_claim(seg)
    candidate = frozen.system_attrs[BUDGETED_CANDIDATE_KEY]
    planned = float(candidate["planned"])
    t0 = time.perf_counter()
    result = seg.get("result")
    outcome: dict[str, Any]
    if result is None:
        with tempfile.TemporaryDirectory(prefix="sh_scaling-segment-") as tmp:
            resume_path = None
            if seg["resume"] is not None:
                resume_path = os.path.join(tmp, "checkpoint")
                why = _unusable_checkpoint(seg["resume"], uploaded_ids(storage, frozen))
                try:
                    if why is not None:
                        raise ValueError(why)
                    download_artifact(artifact_store=artifact_store, file_path=resume_path, artifact_id=seg["resume"])
                except ArtifactNotFound:
                    give_back(reuse=True)  # the same attempt, for a worker that has the checkpoint
                    return {"status": "missing", "reason": _not_in_store(frozen, seg["resume"], artifact_store)}
                except Exception as exc:  # noqa: BLE001 - any store error means the same: no checkpoint to resume
                    give_back()
                    return {"status": "checkpoint", "reason": f"download failed: {type(exc).__name__}: {exc}"}
            try:
                with preemption.training():
                    out = train_fn(candidate["config"], resume_path, float(seg["until"]))
                points, checkpoint = _unpack(out)
            except TrainingStopped as exc:
                why = f"attempt {task.attempt}: stopped by SIGTERM ({exc}); put back"
                if seg.get("attempt_trial") is None:
                    storage.set_trial_system_attr(tid, task.key, interrupted(seg, why))
                    give_back()
                    return {"status": "preempted", "reason": why}
                # The interruption is the attempt's outcome, recorded as any other: a worker whose segment was
                # taken back meanwhile finds it refused and writes nothing, neither the note nor the give-back,
                # over what the segment's next worker holds. The same attempt goes on with trials of its own.
                stands = record_outcome(storage, int(seg["attempt_trial"]), {"interrupted": why})
                if stands is None:
                    return {"status": "stale", "taken_back": True,
                            "reason": f"segment {task.key}, attempt {task.attempt}, was taken back from this worker; "
                                      "the storage refused its interruption"}
                if "interrupted" in stands:
                    attempts_id = storage.get_study_id_from_name(attempts_study_name(study.study_name))
                    fresh = new_attempt(storage, attempts_id, study._study_id, tid, task.key, task.attempt)
                    storage.set_trial_system_attr(tid, task.key, {**interrupted(seg, why), **fresh})
                    give_back()
                    return {"status": "preempted", "reason": why}
                outcome = stands  # another process of this attempt recorded its outcome first: it stands
            except CheckpointError as exc:
                give_back()
                return {"status": "checkpoint", "reason": f"train_fn could not load it: {exc}"}
            except Exception as exc:  # noqa: BLE001 - a failing candidate must not stop the round
                reason = f"train_fn raised {type(exc).__name__}: {exc}"
                tb = traceback.format_exc()[-_TRACEBACK_CHARS:]
                if abandoned():
                    raise _Abandoned from exc
                outcome = {"failed": reason, "traceback": tb}
            else:
                if abandoned():
                    raise _Abandoned
                result = _result(frozen, seg, points)
                result.update(_upload(storage, artifact_store, frozen, checkpoint, tmp))
                result.update(seconds=round(time.perf_counter() - t0, 3), worker=os.getpid(),
                              host=socket.gethostname())
                outcome = {"result": result}
        if abandoned():
            raise _Abandoned
        if seg.get("attempt_trial") is not None:
            # The outcome counts once the attempt's trial is finished with it, a change only one process can win:
            # a take-back that finished it first (this worker was taken for dead) leaves this one nothing to write.
            stands = record_outcome(storage, int(seg["attempt_trial"]), outcome)
            if stands is None:
                return {"status": "stale", "taken_back": True,
                        "reason": f"segment {task.key}, attempt {task.attempt}, was taken back from this worker; "
                                  "the storage refused its outcome"}
            outcome = stands
    else:
        outcome = {"result": result}
    try:
        status = finish_attempt(storage, tid, task.key, seg, outcome, planned)
    except UpdateFinishedTrialError:
        # Taken for dead after it recorded the outcome, and the candidate finished since (its recorded failure
        # failed it, or a later round pruned it): everything this process had to write was written by others.
        return {"status": "stale", "taken_back": True,
                "reason": f"segment {task.key}, attempt {task.attempt}: the candidate's trial was finished meanwhile"}
    if status == "done":
        give_back()
    return {"status": status, "reason": str(outcome.get("failed", ""))}


def finish_attempt(storage: BaseStorage, tid: int, key: str, seg: dict[str, Any], outcome: dict[str, Any],
                   planned: float, note: str | None = None) -> str:
    """Write a segment's recorded outcome into its candidate's trial: ``"failed"`` (the candidate fails with
    its ``train_fn``'s reason) or ``"done"`` (the points reported, the segment's record done). The trial is not
    given back here.

    The record is read again first, and again after the points are reported, and written on what it holds then
    (``seg`` if the trial has none): a worker that recorded its attempt's outcome and then stalled may have had
    the segment taken back meanwhile, with the outcome put into the record and its death counted there; what it
    writes when it wakes up keeps that (a take-back between the last read and the write of the record can still
    lose that count, not the outcome). Every write can be repeated with the same outcome without harm. ``note``
    is added to the record's notes."""
    frozen = storage.get_trial(tid)
    seg = dict(frozen.system_attrs.get(key) or seg)
    notes = list(seg.get("notes", [])) + ([note] if note else [])
    if "failed" in outcome:
        fail_trial(storage, tid, str(outcome["failed"]), segment=(key, {**seg, "notes": notes}),
                   traceback=outcome.get("traceback"))
        return "failed"
    result = outcome["result"]
    if seg.get("result") is None:
        # One write holds every point with its step, compute and loss, and the checkpoint: from here on a kill
        # loses nothing, and the points are reported from this record alone.
        seg = {**seg, "result": result}
        storage.set_trial_system_attr(tid, key, seg)
    record = _report_result(storage, frozen, result, planned)
    # Read once more: reporting many points takes a while, and a take-back meanwhile counted a death here.
    seg = dict(storage.get_trial(tid).system_attrs.get(key) or seg)
    notes = list(seg.get("notes", [])) + ([note] if note else [])
    record.update(status="done", worker=result.get("worker", os.getpid()),
                  host=result.get("host", socket.gethostname()), notes=notes + record.pop("new_notes"))
    done = {k: v for k, v in seg.items() if k not in ("result", "notes")}
    storage.set_trial_system_attr(tid, key, {**done, **record})
    return "done"


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


def _result(frozen: optuna.trial.FrozenTrial, seg: dict[str, Any], points: list) -> dict[str, Any]:
    """The segment's points to report, each with its step (clipped to what it was granted), and what was left out.

    The points the curve already has are those of earlier segments: steps below the segment's ``first_step``.
    """
    until = float(seg["until"])
    first_step = int(seg["first_step"])
    notes: list[str] = []
    already = [c for s, c in reported_compute(frozen).items() if s < first_step]
    last = max(already) if already else 0.0
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
    last_point = keep[-1][0] if keep else None
    return {
        "points": [[first_step + i, c, loss] for i, (c, loss) in enumerate(keep)],
        "last_compute": last_point,
        # Fewer points than asked: the segment ends without an evaluation at the compute it was granted.
        "short": last_point is None or last_point < until * (1 - RTOL),
        "overshoot": overshoot,
        "notes": notes,
    }


def _report_result(storage: BaseStorage, frozen: optuna.trial.FrozenTrial, result: dict[str, Any],
                   planned: float) -> dict[str, Any]:
    """Report the recorded points that the trial does not have yet; the segment's summary for its record."""
    notes = list(result["notes"])
    try:
        n_reported = report_points(storage, frozen, result["points"], max_compute=planned)
    except ValueError as exc:
        # Only a curve written by other code can disagree with the recorded points: they stay in the record.
        n_reported = 0
        notes.append(f"points not reported: {exc}")
    summary = {k: v for k, v in result.items() if k not in ("points", "notes")}
    return {**summary, "n_points": len(result["points"]), "n_reported": n_reported, "new_notes": notes}


def interrupted(seg: dict[str, Any], note: str) -> dict[str, Any]:
    """A segment record with one more interruption (an attempt stopped by no fault of its own: a SIGTERM, its
    driver stopping) and ``note`` added to its notes. Interruptions never count against the candidate."""
    return {**seg, "interruptions": int(seg.get("interruptions", 0)) + 1,
            "notes": list(seg.get("notes", [])) + [note]}


def progress_mark(storage: BaseStorage | None, frozen: optuna.trial.FrozenTrial, seg: dict[str, Any]) -> list[int]:
    """What the attempts of a segment have left in the storage so far: ``[points, checkpoints, result]``.

    ``points``: losses the trial holds at the segment's steps (``first_step`` on); ``checkpoints``: artifacts
    uploaded for the trial (removed ones too: the list only grows); ``result``: 1 once the segment's outcome
    is recorded. Every attempt that made progress changes it: ``train_fn`` returned (a checkpoint uploaded, the
    result written) or points were reported. The driver compares the mark when a worker is found dead with the
    one from before the attempt, to tell a death that lost the attempt's work from one that did not. With
    ``storage`` ``None``, the checkpoints are counted as ``frozen`` holds them (see :func:`uploaded_ids`).

    Example::

        before = progress_mark(storage, trial, seg)   # when the segment is reserved
        ...                                           # an attempt runs and its worker dies
        progressed = progress_mark(storage, storage.get_trial(trial._trial_id), seg) != before
    """
    first = int(seg["first_step"])
    points = sum(1 for step in frozen.intermediate_values if step >= first)
    return [points, len(uploaded_ids(storage, frozen)), int(seg.get("result") is not None)]


def uploaded_ids(storage: BaseStorage | None, frozen: optuna.trial.FrozenTrial) -> set[str]:
    """The ids of the artifacts uploaded for a trial: read from ``storage`` (one read), or with ``storage``
    ``None`` as ``frozen`` holds them (no read: the attributes it was read with, which name every upload; for a
    trial read a moment ago, such as each trial of one read of the whole study)."""
    source: Any = storage if storage is not None else _AttributesOf(frozen)
    return {m.artifact_id for m in get_all_artifact_meta(frozen, storage=source)}


class _AttributesOf:
    """Answers the one read :func:`optuna.artifacts.get_all_artifact_meta` makes of a trial (its system
    attributes) from a trial already read, so that its uploads are listed without a storage call."""

    def __init__(self, frozen: optuna.trial.FrozenTrial) -> None:
        self._frozen = frozen

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        if trial_id != self._frozen._trial_id:
            raise KeyError(f"trial {trial_id} is not trial {self._frozen._trial_id}")
        return dict(self._frozen.system_attrs)


def _not_in_store(frozen: Any, artifact_id: str, artifact_store: Any) -> str:
    """Why a recorded checkpoint cannot be read here: it names who wrote it and where this process looked."""
    writer = next((s for s in segments(frozen) if s.get("checkpoint") == artifact_id), {})
    who = f"process {writer.get('worker', '?')} on {writer.get('host', 'an unrecorded host')}"
    where = getattr(artifact_store, "_base_path", None) or repr(artifact_store)
    candidate = frozen.system_attrs[BUDGETED_CANDIDATE_KEY]["index"]
    return (f"checkpoint {artifact_id} of candidate {candidate} was written by worker {who} but is not in this "
            f"worker's artifact store at {str(where)!r}: the store must be shared (the same folder, mounted on "
            "every machine, or the same object store)")


def _unusable_checkpoint(artifact_id: Any, uploaded: set[str]) -> str | None:
    """Why a checkpoint id read from the storage must not be opened, or ``None``.

    Only ids of the form :func:`optuna.artifacts.upload_artifact` gives, uploaded for this trial, are opened
    in the artifact store the sweep was given: an id written into the storage by anyone else cannot name a
    file outside that store.
    """
    if not (isinstance(artifact_id, str) and _ARTIFACT_ID.fullmatch(artifact_id)):
        return f"stored checkpoint id {artifact_id!r} is not an id the artifact store gave"
    if artifact_id not in uploaded:
        return f"checkpoint {artifact_id} was not uploaded for this trial"
    return None


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
