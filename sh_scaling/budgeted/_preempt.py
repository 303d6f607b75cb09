"""Stopping on SIGTERM (how Slurm and Kubernetes preempt a job) without losing or double-counting a segment.

A process that gets SIGTERM while ``train_fn`` runs lets it return for up to the grace (:data:`PREEMPT_GRACE_S`
seconds by default): a segment that ends in time is recorded, reported and done as usual. One that does not is
stopped (an exception is raised inside ``train_fn``), its trial is put back to WAITING and its record notes an
``interruption`` (not a death of its worker, and its grant is not charged again: the retry uses the same
record). Outside ``train_fn`` the process finishes what it writes to the storage, then stops. It then exits
with status 0 (:class:`Preempted`), so that the scheduler sees a clean stop and can requeue it.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PREEMPT_GRACE_S", "Preempted", "Preemption", "TrainingStopped"]

#: Seconds ``train_fn`` may go on after SIGTERM before it is stopped. Slurm (``KillWait``) and Kubernetes
#: (``terminationGracePeriodSeconds``) send SIGKILL 30 s after SIGTERM by default; 20 s leaves the rest for
#: recording the segment and giving its trial back.
PREEMPT_GRACE_S = 20.0


class Preempted(SystemExit):
    """Raised when a sweep's process was told to stop (SIGTERM): its segments are put back or done.

    It is a :class:`SystemExit` with status 0, so a script that does not catch it exits 0 (a clean stop the
    scheduler can requeue).
    """

    def __init__(self, message: str = "stopped by SIGTERM; running segments were finished or put back") -> None:
        super().__init__(0)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TrainingStopped(BaseException):
    """Raised inside ``train_fn`` when it did not return within the grace after SIGTERM.

    A :class:`BaseException`, so that a ``train_fn`` that catches ``Exception`` does not swallow it.
    """


def check_grace(grace: Any) -> float:
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not (math.isfinite(grace) and grace >= 0):
        raise ValueError(f"preempt_grace must be a number of seconds >= 0, got {grace!r}")
    return float(grace)


class Preemption:
    """What a process does on SIGTERM. Outside :meth:`deferred` and :meth:`training` it raises
    :class:`Preempted` at once; inside :meth:`deferred` it only sets :attr:`requested` (the code checks it at
    its next boundary); inside :meth:`training` it gives ``train_fn`` the grace, then raises
    :class:`TrainingStopped` in it."""

    def __init__(self, grace: float = PREEMPT_GRACE_S) -> None:
        self.grace = check_grace(grace)
        self.requested = threading.Event()
        self._depth = 0
        self._training = False

    def install(self) -> Callable[[], None]:
        """Handle SIGTERM (and SIGALRM for the grace) in this process; returns what restores the previous
        handlers. Signals reach only the main thread: elsewhere nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = (signal.signal(signal.SIGTERM, self._on_term), signal.signal(signal.SIGALRM, self._on_alarm))

        def restore() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGALRM, previous[1])

        return restore

    def _on_term(self, signum: int, frame: Any) -> None:
        if self.requested.is_set():
            return  # the stop is under way; a second SIGTERM changes nothing
        self.requested.set()
        if self._training:
            signal.setitimer(signal.ITIMER_REAL, max(self.grace, 1e-3))
        elif self._depth == 0:
            raise Preempted()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._training:
            raise TrainingStopped(f"train_fn did not return within {self.grace:g} s of SIGTERM")

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A stretch of storage writes that SIGTERM must not cut: it sets :attr:`requested` only."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    @contextmanager
    def training(self) -> Iterator[None]:
        """``train_fn`` runs: SIGTERM gives it the grace. A SIGTERM that came just before starts the grace now."""
        self._training = True
        try:
            if self.requested.is_set():
                signal.setitimer(signal.ITIMER_REAL, max(self.grace, 1e-3))
            yield
        finally:
            self._training = False
            signal.setitimer(signal.ITIMER_REAL, 0)
