"""What workers of a budgeted sweep need beyond the driver's code: a heartbeat in the trial a worker trains,
and a watch that tells a live worker from a dead one.

A worker that claimed a segment (its trial moved WAITING to RUNNING, a change only one process can win)
writes ``{host, pid, key, attempt, beat}`` into the trial (:data:`~sh_scaling.keys.BUDGETED_WORKER_KEY`)
every :data:`SEGMENT_HEARTBEAT_S` seconds, and ``{"state": "idle"}`` once it gave the trial back. Another
worker that sees the trial RUNNING takes the segment back (a death of its worker, retried from the same
record) when the heartbeat has not changed for :data:`SEGMENT_GRACE_S` seconds of its own clock (clocks of
different machines need not agree), or at once when the holder ran on the same machine and its process is
gone.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any


from sh_scaling.budgeted._records import UpdateFinishedTrialError
from sh_scaling.budgeted._segment import SegmentTask
from sh_scaling.keys import BUDGETED_WORKER_KEY

__all__ = ["SEGMENT_GRACE_S", "SEGMENT_HEARTBEAT_S", "Collect", "SegmentBeat", "Watch"]

#: Seconds between two heartbeats of a worker that trains a segment.
SEGMENT_HEARTBEAT_S = 5.0
#: Seconds without a heartbeat after which a segment is taken back from its worker (twelve missed beats, so
#: that a slow storage or a long garbage collection does not hand a live worker's segment to another).
SEGMENT_GRACE_S = 60.0


class Collect:
    """A pool that runs nothing: it lets the driver's round code reserve a round's segments for workers."""

    def execute(self, tasks: Iterable[SegmentTask], handle: Any) -> None:
        list(tasks)


class SegmentBeat:
    """The heartbeat of the segment this worker trains, from the moment it claimed the trial."""

    def __init__(self, storage: Any, task: SegmentTask) -> None:
        self._storage, self._task = storage, task
        self._stop = threading.Event()
        self._n = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="sh_scaling-segment-beat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self._n += 1
        self._storage.set_trial_system_attr(self._task.trial_id, BUDGETED_WORKER_KEY, {
            "state": "running", "host": socket.gethostname(), "pid": os.getpid(), "key": self._task.key,
            "attempt": self._task.attempt, "beat": self._n})

    def _loop(self) -> None:
        while not self._stop.wait(SEGMENT_HEARTBEAT_S):
            try:
                self._beat()
            except UpdateFinishedTrialError:
                return
            except Exception:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                continue

    def stop(self) -> None:
        """Stop beating and say the trial is no longer held (it is about to be given back, or was finished).
        Only the first call after :meth:`start` writes: before it this worker did not hold the trial, and after
        it another worker may have claimed the trial."""
        if self._stop.is_set() or self._n == 0:
            self._stop.set()
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SEGMENT_HEARTBEAT_S + 5)
        try:
            self._storage.set_trial_system_attr(self._task.trial_id, BUDGETED_WORKER_KEY, {"state": "idle"})
        except UpdateFinishedTrialError:
            pass


class Watch:
    """Which RUNNING trials have a dead worker, as seen from this process."""

    def __init__(self, grace: float = SEGMENT_GRACE_S) -> None:
        self.grace = grace
        self._seen: dict[int, tuple[Any, float]] = {}

    def dead(self, trial: Any) -> str | None:
        """Why the worker of a RUNNING trial is taken to be dead, or ``None`` while it may be alive."""
        record = trial.system_attrs.get(BUDGETED_WORKER_KEY) or {}
        now = time.monotonic()
        key = repr(sorted(record.items()))
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != key:
            self._seen[trial._trial_id] = seen = (key, now)
        if record.get("state") == "running" and _gone(record):
            return f"worker process {record['pid']} on {record['host']} is gone"
        if now - seen[1] > self.grace:
            return f"no heartbeat from its worker for {self.grace:g} s"
        return None


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
