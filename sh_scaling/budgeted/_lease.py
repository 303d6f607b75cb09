"""Which process drives a budgeted sweep: a lease in the storage that only one process can hold at a time.

The lease lives in a companion study (``<study_name>:driver``), so that the sweep's own study holds its
candidates only. It is a chain of trials: the first is created by the process that set the sweep up; the one
that holds it has moved it from WAITING to RUNNING, a state change the storage lets only one process win
(RDB storages lock the row; a journal orders the operations). The holder writes a heartbeat into it every
:data:`HEARTBEAT_S` seconds and gives it back (RUNNING to WAITING) when it stops, or finishes it when the
sweep is done. A holder that stops beating for :data:`LEASE_GRACE_S` seconds (as seen by the waiting
process's own clock, so clocks of different machines need not agree), or whose process is gone on the same
machine, is taken over: the taker creates the next link and finishes the stale one with the next link's id
as its value, again a change only one process can win (a finished trial cannot be finished again). A holder
that gives the lease back first removes itself from the link's record, and a taker checks that the link has
not changed hands since it read it: a process that has just claimed the lease, and has not yet written itself
in, is never taken for its predecessor, gone by then. A holder
whose lease was taken over finds out at its next heartbeat, which the storage refuses, and stops without
writing anything more.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import TrialState

from sh_scaling.budgeted._records import UpdateFinishedTrialError
from sh_scaling.keys import BUDGETED_LEASE_KEY, DECISION_KEY

__all__ = ["HEARTBEAT_S", "LEASE_GRACE_S", "Lease", "LeaseLost", "lease_study_name"]

#: Seconds between two heartbeats of the driver that holds a sweep.
HEARTBEAT_S = 5.0
#: Seconds without a heartbeat after which a waiting driver takes the sweep over: twelve missed heartbeats, so
#: that a slow storage or a long pause of the holder does not hand the sweep to a second driver.
LEASE_GRACE_S = 60.0
#: Seconds between two looks at the lease by a driver that waits for it.
POLL_S = 0.5


class LeaseLost(RuntimeError):
    """Another driver took this sweep over (this one stopped beating for longer than the grace)."""


def lease_study_name(study_name: str) -> str:
    return f"{study_name}:driver"


def _me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _gone(holder: dict[str, Any]) -> bool:
    """The holder ran on this machine and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Lease:
    """The lease of one sweep: :meth:`acquire` waits until this process holds it or the sweep is finished."""

    def __init__(self, storage: Any, study_name: str, study_id: int) -> None:
        self._storage = storage
        self._study = optuna.create_study(storage=storage, study_name=lease_study_name(study_name),
                                          load_if_exists=True)
        self._sweep_id = int(study_id)
        self.trial_id: int | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------- links
    def _links(self) -> list[Any]:
        return [t for t in self._study.get_trials(deepcopy=False)
                if (t.system_attrs.get(BUDGETED_LEASE_KEY) or {}).get("study_id") == self._sweep_id]

    def create_root(self) -> None:
        """The first link, by the process that set the sweep up (before any other process looks for it)."""
        if not any(t.system_attrs[BUDGETED_LEASE_KEY].get("generation") == 0 for t in self._links()):
            self._add_link(0)

    def _add_link(self, generation: int) -> int:
        trial = optuna.trial.create_trial(
            state=TrialState.WAITING,
            system_attrs={BUDGETED_LEASE_KEY: {"study_id": self._sweep_id, "generation": generation}},
            user_attrs={DECISION_KEY: "the lease of the budgeted sweep's driver: RUNNING while a driver runs it"})
        return self._storage.create_new_trial(self._study._study_id, template_trial=trial)

    def _current(self) -> Any:
        """The link that matters now, following each taken-over link to its successor; ``None`` if none yet."""
        links = {t._trial_id: t for t in self._links()}
        roots = sorted(tid for tid, t in links.items() if t.system_attrs[BUDGETED_LEASE_KEY]["generation"] == 0)
        if not roots:
            return None
        t = links[roots[0]]
        while t.state.is_finished() and t.values and math.isfinite(t.values[0]) and int(t.values[0]) in links:
            t = links[int(t.values[0])]
        return t

    # ------------------------------------------------------------------------------------------ acquire
    def acquire(self, *, create: bool = False, give_up: Callable[[], bool] | None = None) -> bool:
        """Wait until this process holds the lease (``True``) or the sweep is finished (``False``; also when
        ``give_up()`` says to stop waiting)."""
        seen: tuple[Any, float] | None = None
        while True:
            if give_up is not None and give_up():
                return False
            cur = self._current()
            if cur is None:
                if create:
                    self.create_root()
                time.sleep(POLL_S)
                continue
            if cur.state == TrialState.COMPLETE:
                return False
            if cur.state == TrialState.WAITING and self._claim(cur._trial_id):
                return True
            if cur.state == TrialState.RUNNING:
                record = cur.system_attrs[BUDGETED_LEASE_KEY]
                beat = (cur._trial_id, record.get("beat"))
                if seen is None or seen[0] != beat:
                    seen = (beat, time.monotonic())
                stale = time.monotonic() - seen[1] > LEASE_GRACE_S
                if (stale or _gone(record.get("holder") or {})) and self._take_over(cur):
                    return True
            time.sleep(POLL_S)

    def _claim(self, tid: int) -> bool:
        try:
            if not self._storage.set_trial_state_values(tid, TrialState.RUNNING):
                return False
            self.trial_id = tid
            self._beat()
        except UpdateFinishedTrialError:  # taken over before this process could write itself in
            self.trial_id = None
            return False
        self._thread = threading.Thread(target=self._beat_loop, name="sh_scaling-lease", daemon=True)
        self._thread.start()
        return True

    def _take_over(self, cur: Any) -> bool:
        fresh = self._storage.get_trial(cur._trial_id)
        if fresh.state != TrialState.RUNNING or fresh.system_attrs.get(BUDGETED_LEASE_KEY) != cur.system_attrs[
                BUDGETED_LEASE_KEY]:
            return False  # it changed hands since it was read: look again
        generation = int(cur.system_attrs[BUDGETED_LEASE_KEY]["generation"]) + 1
        nxt = self._add_link(generation)
        try:
            # Only one process can finish the stale link; its value names the link that follows.
            self._storage.set_trial_state_values(cur._trial_id, TrialState.FAIL, values=[float(nxt)])
        except UpdateFinishedTrialError:
            self._storage.set_trial_user_attr(nxt, DECISION_KEY, "not used: another driver took the sweep over")
            self._storage.set_trial_state_values(nxt, TrialState.FAIL)
            return False
        return self._claim(nxt)

    # -------------------------------------------------------------------------------------------- hold
    def _beat(self) -> None:
        assert self.trial_id is not None
        record = dict(self._storage.get_trial_system_attrs(self.trial_id)[BUDGETED_LEASE_KEY])
        record.update(holder=_me(), beat=int(record.get("beat", 0)) + 1)
        self._storage.set_trial_system_attr(self.trial_id, BUDGETED_LEASE_KEY, record)

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._beat()
            except UpdateFinishedTrialError:
                self._lost.set()
                return
            except Exception:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                continue

    def check(self) -> None:
        """Raise :class:`LeaseLost` if another driver took the sweep over."""
        if self._lost.is_set():
            raise LeaseLost("another driver took this sweep over: it missed its heartbeats for "
                            f"{LEASE_GRACE_S:g} s; it stops without writing anything more")

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def release(self, *, finished: bool) -> None:
        """Give the lease back (the sweep goes on with the next driver) or close it (the sweep is finished)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(HEARTBEAT_S + 5)
        if self.trial_id is None or self._lost.is_set():
            return
        try:
            if finished:
                self._storage.set_trial_user_attr(self.trial_id, DECISION_KEY, "the budgeted sweep is finished")
                self._storage.set_trial_state_values(self.trial_id, TrialState.COMPLETE, values=[-1.0])
            else:
                # This holder leaves the record before the lease is given back: the next process claims the lease
                # (RUNNING) a moment before it writes itself in, and one that looked in between would find this
                # holder, perhaps gone by then, and take the lease over from a live process.
                record = dict(self._storage.get_trial_system_attrs(self.trial_id)[BUDGETED_LEASE_KEY])
                self._storage.set_trial_system_attr(self.trial_id, BUDGETED_LEASE_KEY, {**record, "holder": None})
                self._storage.set_trial_state_values(self.trial_id, TrialState.WAITING)
        except UpdateFinishedTrialError:
            pass
        self.trial_id = None


def create_sweep_study(storage: Any, study_name: str) -> bool:
    """Create the sweep's study if it does not exist; ``True`` for the one process that created it."""
    try:
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], study_name)
    except DuplicatedStudyError:
        return False
    return True
