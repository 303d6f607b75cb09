"""Where segments run: in the driver's process, or in worker processes on the same storage.

The driver hands out segments and handles each outcome (which may hand out more: a retry, a restart from
scratch). Workers are started with the ``spawn`` method (a fresh interpreter: no storage connection, lock or
thread is inherited from the driver) and each talks to the driver over its own pipe, so that the driver
always knows which segment a worker holds and sees at once when a worker dies: the pipe closes and the
process sentinel fires. A shared queue could lose a segment that a dying worker had taken but not yet
announced, or be left locked by it.

A worker process trains each segment as a worker of :meth:`~sh_scaling.BudgetedHalving.work` does
(:func:`~sh_scaling.budgeted._workers.run_beating`): with its heartbeat in the trial, marked ``stopping``
within :data:`~sh_scaling.budgeted._workers.STOP_MARK_S` seconds of a SIGTERM. So one worker process told to
stop and SIGKILLed before it put its segment back (a scheduler's grace that ran out, while the driver lives)
is an interruption of the segment, not a death of its worker, and a worker process killed outright is seen
gone from its heartbeat as well as by the driver's pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import wait
from typing import Any

import optuna

from sh_scaling.budgeted._preempt import PREEMPT_GRACE_S, Preempted, Preemption
from sh_scaling.budgeted._retry import RetryingStorage
from sh_scaling.budgeted._segment import SegmentTask, _Abandoned, run_segment
from sh_scaling.budgeted._workers import run_beating

__all__ = ["InProcess", "WorkerProcesses"]

Handler = Callable[[SegmentTask, dict[str, Any]], Iterable[SegmentTask]]

#: Seconds between checks that a busy worker is still alive when it sends nothing.
_POLL_S = 1.0


class InProcess:
    """Runs segments one after the other in the driver's process."""

    def __init__(self, study: optuna.Study, artifact_store: Any, train_fn: Callable[..., Any],
                 preemption: Preemption | None = None) -> None:
        self._args = (study, artifact_store, train_fn)
        self._preemption = preemption or Preemption()

    def execute(self, tasks: Iterable[SegmentTask], handle: Handler) -> None:
        pending = deque(tasks)
        while pending:
            if self._preemption.requested.is_set():
                raise Preempted()
            task = pending.popleft()
            with self._preemption.deferred():
                outcome = run_segment(*self._args, task, preemption=self._preemption)
                if outcome["status"] == "preempted":
                    raise Preempted()
                more = handle(task, outcome)
            pending.extend(more)
        if self._preemption.requested.is_set():
            raise Preempted()

    def close(self, *, abort: bool = False) -> None:
        pass


class _Worker:
    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()


class WorkerProcesses:
    """Runs segments in ``n`` worker processes; a worker that dies is replaced and its segment handed back."""

    def __init__(self, n: int, storage: Any, study_name: str, artifact_store: Any,
                 train_fn: Callable[..., Any], preempt_grace: float = PREEMPT_GRACE_S) -> None:
        self._ctx = mp.get_context("spawn")
        self._grace = preempt_grace
        self._args = (storage, study_name, artifact_store, train_fn, os.getpid(), preempt_grace)
        self._workers = [_Worker(self._ctx, self._args) for _ in range(n)]

    def execute(self, tasks: Iterable[SegmentTask], handle: Handler) -> None:
        pending = deque(tasks)
        busy: dict[_Worker, SegmentTask] = {}
        while pending or busy:
            for w in [w for w in self._workers if w not in busy]:
                if not pending:
                    break
                task = pending.popleft()
                try:
                    w.conn.send(task)
                    busy[w] = task
                except (BrokenPipeError, OSError):
                    pending.appendleft(task)  # it died idle: nothing of the task ran
                    self._replace(w)
            if not busy:
                continue
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=_POLL_S)
            for w in list(busy):
                outcome = None
                if w.conn in ready or w.conn.poll():
                    try:
                        outcome = w.conn.recv()
                    except (EOFError, OSError):
                        outcome = None
                if outcome is None and (w.proc.sentinel in ready or not w.proc.is_alive()):
                    w.proc.join(5)
                    if w.proc.exitcode == 0:
                        # Told to stop (SIGTERM) before its segment began: nothing of the task ran.
                        pending.appendleft(busy.pop(w))
                        self._replace(w)
                        continue
                    outcome = {"status": "died", "reason": f"worker process {w.proc.pid} died "
                               f"(exit code {w.proc.exitcode}) during the segment"}
                    self._replace(w)
                if outcome is None:
                    continue
                task = busy.pop(w)
                if outcome.get("status") == "preempted":
                    # This worker was told to stop (SIGTERM) and put its segment back: it is no death of the
                    # worker; the segment goes to another worker, from the same record.
                    self._replace(w)
                    pending.append(task)
                    continue
                pending.extend(handle(task, outcome))

    def _replace(self, w: _Worker) -> None:
        w.conn.close()
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(5)
        self._workers[self._workers.index(w)] = _Worker(self._ctx, self._args)

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: ask them to exit (or, with ``abort``, send them SIGTERM: a running ``train_fn``
        gets the grace to return, then its segment is put back)."""
        for w in self._workers:
            try:
                if abort:
                    w.proc.terminate()
                else:
                    w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.proc.join(10 if not abort else self._grace + 10)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(5)
            w.conn.close()


def _worker_main(conn: Any, storage: Any, study_name: str, artifact_store: Any, train_fn: Callable[..., Any],
                 parent: int, preempt_grace: float = PREEMPT_GRACE_S) -> None:
    # Ctrl-C goes to the whole process group; the driver decides what happens to running segments.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM (a scheduler preempting the job, or the driver stopping): an idle worker exits 0 at once; a busy
    # one lets train_fn return within the grace, records the segment or puts it back, then exits 0.
    preemption = Preemption(preempt_grace)
    preemption.install()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=RetryingStorage(storage),
                              sampler=optuna.samplers.RandomSampler(0))

    def abandoned() -> bool:
        # A driver killed outright cannot stop its workers; an orphan must not write over what a restarted
        # driver does with the same trial.
        return os.getppid() != parent

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        with preemption.deferred():
            try:
                outcome = run_beating(study, artifact_store, train_fn, task, preemption, abandoned)
            except _Abandoned:
                return
            try:
                conn.send(outcome)
            except (BrokenPipeError, OSError):
                return
        if preemption.requested.is_set():
            return
