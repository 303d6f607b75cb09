"""What workers of a budgeted sweep need beyond the driver's code: a heartbeat for the segment a worker
trains, and a watch that tells a live worker from a dead one.

A worker that claimed a segment (its trial moved WAITING to RUNNING, a change only one process can win)
writes ``{host, pid, key, attempt, beat}`` (:data:`~sh_scaling.keys.BUDGETED_WORKER_KEY`) every
:data:`SEGMENT_HEARTBEAT_S` seconds into the attempt's heartbeat trial (``beat_trial`` in the segment's record,
in the companion study ``<study_name>:attempts``), and finishes that trial once it gives the segment back. The
take-back finishes it first, so the heartbeat of a worker whose segment was taken back is refused by the
storage (:mod:`sh_scaling.budgeted._attempts`). Another
worker that sees the trial RUNNING takes the segment back (a death of its worker, retried from the same
record) when the heartbeat has not changed for :data:`SEGMENT_GRACE_S` seconds of its own clock (clocks of
different machines need not agree), or at once when the holder ran on the same machine and its process is
gone.

A worker told to stop (SIGTERM) says so in its heartbeat (``"state": "stopping"``) within
:data:`STOP_MARK_S` seconds, from the heartbeat's own thread (the signal handler writes nothing: it may have
cut a storage call of the main thread short). A scheduler whose grace runs out SIGKILLs it, maybe before it
put its segment back; the segment is then taken back as a preemption (an ``interruption`` of the segment),
not a death of its worker (:func:`told_to_stop`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.trial import TrialState

from sh_scaling.budgeted._preempt import Preemption
from sh_scaling.budgeted._records import UpdateFinishedTrialError, segments
from sh_scaling.budgeted._segment import SegmentTask, _Abandoned, run_segment
from sh_scaling.keys import BUDGETED_WORKER_KEY

__all__ = ["SEGMENT_GRACE_S", "SEGMENT_HEARTBEAT_S", "STOP_MARK_S", "Collect", "SegmentBeat", "Watch",
           "current_beat", "heartbeats", "holds", "run_beating", "told_to_stop"]

#: Seconds between two heartbeats of a worker that trains a segment.
SEGMENT_HEARTBEAT_S = 5.0
#: Seconds without a heartbeat after which a segment is taken back from its worker (twelve missed beats, so
#: that a slow storage or a long garbage collection does not hand a live worker's segment to another).
SEGMENT_GRACE_S = 60.0
#: Seconds within which a worker told to stop (SIGTERM) marks its heartbeat ``stopping``: how often the
#: heartbeat's thread looks at the stop request. Small against any scheduler's grace (Slurm and Kubernetes
#: send SIGKILL 30 s after SIGTERM by default), and a look is only an event's flag read.
STOP_MARK_S = 0.1


class Collect:
    """A pool that runs nothing: it lets the driver's round code reserve a round's segments for workers."""

    def execute(self, tasks: Iterable[SegmentTask], handle: Any) -> None:
        list(tasks)


class SegmentBeat:
    """The heartbeat of the segment this worker trains, from the moment it claimed the trial.

    The beats go into the attempt's heartbeat trial (``beat_trial`` in the segment's record, see
    :mod:`sh_scaling.budgeted._attempts`), which the take-back finishes first: once the segment was taken back
    from this worker the storage refuses its next beat (:attr:`refused`), and the worker writes nothing more.
    ``stopping`` is set when the process is told to stop (:attr:`Preemption.requested
    <sh_scaling.budgeted._preempt.Preemption.requested>`): the next beat, within :data:`STOP_MARK_S`
    seconds, says ``"stopping"``, and every later one too. ``abandoned()`` is asked before each beat after the
    first and before the last write: once it is true (the driver that handed the segment out is gone) the
    heartbeat writes nothing more.
    """

    def __init__(self, storage: Any, task: SegmentTask, stopping: threading.Event | None = None,
                 abandoned: Callable[[], bool] = lambda: False) -> None:
        self._storage, self._task = storage, task
        self._stopping = stopping if stopping is not None else threading.Event()
        self._abandoned = abandoned
        self._marked = False
        self._stop = threading.Event()
        self._refused = threading.Event()
        self._n = 0
        self._beat_trial: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def beat_trial(self) -> int | None:
        """The heartbeat trial this worker beats into (``None`` before :meth:`start`)."""
        return self._beat_trial

    @property
    def refused(self) -> bool:
        """The storage refused a beat: the segment was taken back from this worker."""
        return self._refused.is_set()

    def start(self, seg: dict[str, Any] | None = None) -> None:
        """Beat now and every :data:`SEGMENT_HEARTBEAT_S` seconds, into the heartbeat trial of ``seg`` (the
        segment's record, read from the storage when not given)."""
        if seg is None:
            seg = self._storage.get_trial(self._task.trial_id).system_attrs[self._task.key]
        self._beat_trial = int(seg["beat_trial"])
        try:
            self._beat()
        except UpdateFinishedTrialError:
            self._refused.set()
            return
        self._thread = threading.Thread(target=self._loop, name="sh_scaling-segment-beat", daemon=True)
        self._thread.start()

    def _record(self) -> dict[str, Any]:
        """What the next beat writes."""
        return {"state": "stopping" if self._stopping.is_set() else "running", "host": socket.gethostname(),
                "pid": os.getpid(), "key": self._task.key, "attempt": self._task.attempt, "beat": self._n}

    def _beat(self) -> None:
        assert self._beat_trial is not None
        self._n += 1
        stopping = self._stopping.is_set()
        self._storage.set_trial_system_attr(self._beat_trial, BUDGETED_WORKER_KEY, self._record())
        self._marked = stopping

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(STOP_MARK_S):
            if time.monotonic() - last < SEGMENT_HEARTBEAT_S and (self._marked or not self._stopping.is_set()):
                continue
            last = time.monotonic()
            try:
                if self._abandoned():
                    return
                self._beat()
            except UpdateFinishedTrialError:
                self._refused.set()
                return
            except Exception:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                continue

    def stop(self, reuse: bool = False) -> bool:
        """Stop beating and say the trial is no longer held (it is about to be given back, or was finished):
        the heartbeat trial is finished (COMPLETE), or, with ``reuse`` (the segment is put back for another
        worker to run the same attempt), marked ``{"state": "idle"}``. Only the first call after :meth:`start`
        writes: before it this worker did not hold the trial, and after it another worker may have claimed the
        trial. ``False`` when this worker no longer holds the segment (a beat or this write was refused): the
        trial is not this worker's to give back."""
        if self._stop.is_set() or self._n == 0:
            self._stop.set()
            return not self._refused.is_set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SEGMENT_HEARTBEAT_S + 5)
        if self._refused.is_set():
            return False
        if self._abandoned():
            return True
        assert self._beat_trial is not None
        try:
            if reuse:
                self._storage.set_trial_system_attr(self._beat_trial, BUDGETED_WORKER_KEY, {"state": "idle"})
            else:
                self._storage.set_trial_state_values(self._beat_trial, TrialState.COMPLETE, values=[float(self._n)])
        except UpdateFinishedTrialError:
            self._refused.set()
            return False
        return True


def run_beating(study: optuna.Study, artifact_store: Any, train_fn: Callable[..., Any], task: SegmentTask,
                preemption: Preemption, abandoned: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """:func:`~sh_scaling.budgeted._segment.run_segment` with this process's heartbeat in the attempt's heartbeat
    trial, from its claim to just before it gives the trial back: how every worker process trains a segment,
    whether :meth:`~sh_scaling.BudgetedHalving.work` runs it or a driver's pool (``run(train_fn, n_workers >
    1)``) started it. The heartbeat says ``stopping`` within :data:`STOP_MARK_S` seconds of the process being
    told to stop (``preemption.requested``), so a segment taken back after its process was killed then is an
    interruption (:func:`told_to_stop`), and a process killed outright is seen gone (:class:`Watch`).

    A worker judged dead while it lives (its heartbeat did not reach the storage for :data:`SEGMENT_GRACE_S`
    seconds: a stalled process, a network partition) has its segment taken back and retried by another. The
    take-back finishes the attempt's trials first (:mod:`sh_scaling.budgeted._attempts`): the storage refuses
    this worker's next heartbeat, what ``train_fn`` returned, and the note of an interruption, and the worker
    writes nothing more and returns ``stale``. Before it uploads the checkpoint and before it records the
    outcome, it also looks whether it still holds the segment (:func:`holds`, one read), so that a worker
    taken back stops early. ``abandoned()``: the driver that handed the segment out is gone (the process then
    raises ``_Abandoned`` as :func:`~sh_scaling.budgeted._segment.run_segment` does)."""
    storage = study._storage
    taken = threading.Event()
    beat = SegmentBeat(storage, task, stopping=preemption.requested, abandoned=abandoned)

    def lost() -> bool:
        if abandoned():
            return True
        if not taken.is_set() and (beat.refused or (beat.beat_trial is not None and not holds(
                storage.get_trial(beat.beat_trial), task))):
            taken.set()
        return taken.is_set()

    try:
        out = run_segment(study, artifact_store, train_fn, task, lost, preemption,
                          on_claim=beat.start, on_release=beat.stop)
        if out.get("taken_back"):
            taken.set()  # the storage refused what it wrote: no heartbeat either
        return out
    except _Abandoned:
        if not taken.is_set():
            raise
        return {"status": "stale", "reason": f"segment {task.key}, attempt {task.attempt}, was taken back from this "
                f"worker (no heartbeat of it reached the storage for {SEGMENT_GRACE_S:g} s); another attempt has it"}
    finally:
        beat.stop()


def holds(beat_trial: Any, task: SegmentTask) -> bool:
    """Whether this process still holds the segment of ``task``, from its attempt's heartbeat trial: the trial
    is not finished (the take-back finishes it FAIL first) and its heartbeat is this process's, for this segment
    and attempt."""
    record = beat_trial.system_attrs.get(BUDGETED_WORKER_KEY) or {}
    return (not beat_trial.state.is_finished() and record.get("state") in ("running", "stopping")
            and record.get("pid") == os.getpid() and record.get("host") == socket.gethostname()
            and record.get("key") == task.key and record.get("attempt") == task.attempt)


def heartbeats(storage: Any, attempts_study_id: int | None) -> dict[int, dict[str, Any]]:
    """The heartbeat of every attempt that may be held now, by the id of its heartbeat trial (one read of the
    attempts' study: its WAITING trials)."""
    if attempts_study_id is None:
        return {}
    return {t._trial_id: dict(t.system_attrs.get(BUDGETED_WORKER_KEY) or {})
            for t in storage.get_all_trials(attempts_study_id, deepcopy=False, states=(TrialState.WAITING,))}


def current_beat(trial: Any, beats: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The heartbeat of the worker that holds a candidate's trial: that of its segment in progress (the last
    one reserved, else its last one), ``{}`` before a first beat and once the heartbeat trial is finished."""
    segs = segments(trial)
    seg = next((s for s in reversed(segs) if s["status"] == "reserved"), segs[-1] if segs else {})
    beat_trial = seg.get("beat_trial")
    return beats.get(int(beat_trial), {}) if beat_trial is not None else {}


class Watch:
    """Which RUNNING trials have a dead worker, as seen from this process."""

    def __init__(self, grace: float = SEGMENT_GRACE_S) -> None:
        self.grace = grace
        self._seen: dict[int, tuple[Any, float]] = {}

    def dead(self, trial: Any, record: dict[str, Any]) -> str | None:
        """Why the worker of a RUNNING trial is taken to be dead, or ``None`` while it may be alive. ``record``
        is its heartbeat (:func:`current_beat`)."""
        now = time.monotonic()
        key = repr(sorted(record.items()))
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != key:
            self._seen[trial._trial_id] = seen = (key, now)
        if record.get("state") in ("running", "stopping") and _gone(record):
            return f"worker process {record['pid']} on {record['host']} is gone"
        if now - seen[1] > self.grace:
            return f"no heartbeat from its worker for {self.grace:g} s"
        return None


def told_to_stop(record: dict[str, Any], key: str, attempt: int) -> bool:
    """Whether the worker of attempt ``attempt`` of segment ``key`` said, before it was lost, that it had been
    told to stop (SIGTERM): its heartbeat ``record`` (read from the attempt's heartbeat trial) is ``stopping``
    for that attempt."""
    return record.get("state") == "stopping" and record.get("key") == key and record.get("attempt") == attempt


def _gone(record: dict[str, Any]) -> bool:
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    if record["pid"] == os.getpid():
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
