"""BudgetedHalving: the paper's fixed-budget successive halving, executed on real training with checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pickle
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.distributions import CategoricalDistribution
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from sh_scaling.budgeted._budget import ledger, round_share
from sh_scaling.budgeted._attempts import attempts_study_name, new_attempt, take_back, take_back_heartbeat
from sh_scaling.budgeted._compat import RECORDS_FORMAT, VERSION_FIELD, VersionMismatch, check_joinable, this_version
from sh_scaling.budgeted._lease import POLL_S, Lease, create_sweep_study
from sh_scaling.budgeted._memory_store import MemoryArtifactStore
from sh_scaling.budgeted._pool import InProcess, WorkerProcesses
from sh_scaling.budgeted._preempt import PREEMPT_GRACE_S, Preempted, Preemption, check_grace
from sh_scaling.budgeted._retry import RETRY_FOR_S, RetryingStorage, backoff, is_server_busy
from sh_scaling.budgeted._worker_errors import record_worker_error
from sh_scaling.budgeted._workers import Collect, Watch, current_beat, heartbeats, run_beating, told_to_stop
from sh_scaling.budgeted._records import candidate_index, planned_curve, segments, trained_compute
from sh_scaling.budgeted._segment import (
    SegmentTask,
    fail_trial,
    finish_attempt,
    interrupted,
    progress_mark,
    uploaded_ids,
)
from sh_scaling.halving import (
    RTOL,
    replanned_shares,
    round_shares,
    round_sizes,
    select_survivors,
    trained_until,
    water_fill,
)
from sh_scaling.keys import (
    BUDGETED_CANDIDATE_KEY,
    BUDGETED_LEDGER_KEY,
    BUDGETED_PLAN_KEY,
    BUDGETED_REMOVED_KEY,
    BUDGETED_WORKER_ERRORS_KEY,
    BUDGETED_WORKER_KEY,
    DECISION_KEY,
    SCHEDULE_KEY,
    FORECAST_KEY,
    PRUNED_KEY,
    budgeted_round_key,
    budgeted_segment_key,
)
from sh_scaling.schedules import Schedule, as_schedule, schedule_from_dict
from sh_scaling.simulation import (
    SCHEDULE_AWARE,
    STRATEGIES,
    Strategy,
    parse_strategy,
    round_inputs,
    round_ranking,
)

__all__ = ["BudgetedHalving"]

#: A segment whose worker dies this many times in a row without progress fails its candidate: the cause is
#: then more likely the candidate (it runs out of memory, it crashes the interpreter at the same step) than the
#: machine. Progress is anything an attempt left in the storage (a new point, a checkpoint uploaded, the
#: segment's result recorded; :func:`~sh_scaling.budgeted._segment.progress_mark`): an attempt that made some
#: and died is not counted, and resets the count. A SIGTERM that put the segment back, a worker killed after
#: SIGTERM before it could (its scheduler's grace ran out), and a driver that stopped (interrupted, killed,
#: restarted) while the segment ran, count neither way (the segment's ``interruptions``). Why 8: under random
#: kills every attempt dies with some probability ``p`` whatever the candidate, so ``n`` in a row happen with
#: probability ``p**n``; in ``benchmarks/bench_cluster_chaos.py`` (one
#: SIGKILL or SIGTERM a second on six workers training 2 s segments) 30-43 % of the first round's attempts not
#: put back by a SIGTERM were SIGKILLed, three in a row hit some segment in 6 of 9 runs, and
#: ``0.43**8 = 1.2e-3``: about one segment in a thousand under that storm. A candidate that does crash costs 8
#: of its segment's attempts before it fails (retries are not charged to the budget again: their grant is the
#: segment's).
MAX_DEATHS_WITHOUT_PROGRESS = 8

#: However much progress its attempts made, a segment whose worker died this many times fails its candidate,
#: so that no segment is retried for ever (a worker that always dies right after its upload, say).
MAX_DEATHS = 24

#: Study name used when none is given, so that a restart with the same storage finds the sweep again.
DEFAULT_STUDY_NAME = "budgeted-halving"

#: Seconds a driver that finds the study already created waits for its creator to write the plan.
SETUP_WAIT_S = 60.0

_logger = logging.getLogger("sh_scaling.budgeted")


class BudgetedHalving:
    """Fixed-budget successive halving on real training, paused and resumed from checkpoints, in an Optuna study.

    The schedule is the paper's (Schram et al., *Active Budget Allocation for Efficient Scaling Law Estimation
    via Surrogate-Guided Pruning*, ICML 2026), as in the simulator (:func:`sh_scaling.simulation.allocate`):
    with ``n`` candidates, total budget ``B`` and reduction factor ``eta``, ``R = ceil(log_eta n)`` rounds;
    in round ``r`` every survivor is trained further by ``C_r = B / (|M_r| R)`` (never past its planned end),
    then paused; the best ``ceil(|M_r| / eta)`` go on. Rounds, shares, scores and the survivor rule all come
    from the decision core (:mod:`sh_scaling.halving`) through the simulator's own
    :func:`~sh_scaling.simulation.round_inputs` and :func:`~sh_scaling.simulation.round_ranking`: each
    survivor's curve observed up to the compute it was trained to, its target (that compute plus the rest of
    the schedule's shares, capped at its planned end), the curves of eliminated candidates as anchors of the
    frontier, and the same seeded tie-breaks. A replay of recorded curves through this driver therefore makes
    exactly the simulator's decisions (``tests/test_budgeted.py`` checks it on routing and synthetic curves,
    and on the CPU ladder with each candidate's schedule stated).

    **One trial per candidate, paused between rounds.** Optuna has no pause, but it has a state for a trial
    that exists and waits to run: WAITING (what ``enqueue_trial`` creates). Every candidate is a trial created
    WAITING when the sweep starts, with its configuration as params. A segment (one round's training of one
    candidate) moves it to RUNNING (only one process can: the storage refuses the second), reports its
    evaluations with :func:`sh_scaling.report` (one curve across segments: step numbers continue), uploads its
    checkpoint with :func:`optuna.artifacts.upload_artifact`, and puts it back to WAITING: paused. Eliminated
    candidates become PRUNED (the reason in :data:`~sh_scaling.keys.PRUNED_KEY`, the forecast that ranked them
    in :data:`~sh_scaling.keys.FORECAST_KEY`, where samplers read it), those that reach their planned end or
    survive the last round COMPLETE (value: their lowest loss, the simulator's ``best_loss``; a survivor the
    budget never carried to its first evaluation is PRUNED, with that reason), those whose ``train_fn`` raised,
    or whose segment's worker died :data:`MAX_DEATHS_WITHOUT_PROGRESS` times in a row without progress (see
    **Deaths** below), FAIL (the reason in :data:`~sh_scaling.keys.BUDGETED_FAILED_KEY`). A trial is RUNNING
    only while a process trains it: when :meth:`run` returns or is interrupted (an exception, Ctrl-C) the
    running segments are stopped and their trials put back to WAITING (an ``interruption`` of the segment,
    noted in its record, not a death of its worker); on SIGTERM (a
    scheduler's preemption) each running ``train_fn`` first gets a grace to return (``preempt_grace``), and
    the process exits 0 (:class:`~sh_scaling.budgeted.Preempted`). Keeping
    trials RUNNING
    between rounds, or creating them only at the end, was the alternative: the first leaves RUNNING trials
    behind whenever the driver stops, and Optuna forbids reporting to a trial once it is finished, so it could
    not be resumed; the second hides the sweep from the dashboard and from samplers until it ends. Nothing
    else in Optuna pops a WAITING trial except ``study.ask``/``study.optimize``, so the study belongs to the
    driver: do not optimize other objectives in it.

    **Restart.** All state is in the storage: the schedule (:data:`~sh_scaling.keys.BUDGETED_PLAN_KEY`),
    each round's survivors and ranking (:func:`~sh_scaling.keys.budgeted_round_key`), each segment's grant,
    checkpoints and outcome (:func:`~sh_scaling.keys.budgeted_segment_key`). Calling :meth:`run` again with
    the same storage, study name and arguments continues where the last call stopped: decided rounds are not
    decided again, finished segments are not trained again, an interrupted segment is retried from its
    candidate's last checkpoint, and a trial left RUNNING by a driver killed outright (SIGKILL) is taken back.
    Arguments that would change the sweep (candidates, budget, strategy, ...) raise ``ValueError``, before
    anything is created or written (checkpoint folder included). :meth:`check` makes every refusal that needs no
    storage without opening it; every method that opens the storage begins with it.

    **One driver at a time.** The process that creates the study (a state change only one process can win)
    sets the sweep up: its trials, then the plan. A driver that finds the study already there waits for the
    plan (up to :data:`SETUP_WAIT_S` seconds), is refused with ``ValueError`` if its settings differ, and
    otherwise joins: it waits while another driver holds the sweep's lease (a trial in the companion study
    ``<study_name>:driver`` that only one process can move to RUNNING; see
    :data:`~sh_scaling.keys.BUDGETED_LEASE_KEY`), takes over once that driver gives it back or stops beating
    for 60 s (at once when its process is gone on the same machine), and returns the sweep's result when it
    is finished. Two drivers never create a candidate twice nor grant the same budget twice; a driver whose
    lease was taken over raises ``LeaseLost`` and writes nothing more.

    **Deaths.** A segment whose worker process died (SIGKILL, out of memory, a lost machine: it left the
    trial RUNNING) is retried from the same record and checkpoint, and its grant is not charged again. Kills
    are counted so that a candidate that crashes its process is not retried for ever, and a preempted or
    unlucky one is never failed: an attempt put back after SIGTERM, or whose worker said it was told to stop
    and was killed before it put the segment back (the scheduler's SIGKILL at the end of its grace), or
    interrupted by its driver, is no death (``interruptions``); an attempt that died after it made progress (a
    new point reported, a checkpoint uploaded, the segment's result recorded) is a death (``deaths``) that
    does not count against the candidate and resets the count; each attempt that died without progress counts
    (``deaths_in_a_row``), and :data:`MAX_DEATHS_WITHOUT_PROGRESS` (8) in a row fail the candidate with the
    reason "its segment's worker died 8 times in a row without progress (...)". ``train_fn`` returns its points
    and checkpoint when its segment ends, so a worker killed while it trains leaves no progress: whether the
    kill was the candidate's doing or the cluster's cannot be told apart, and 8 in a row are what random kills
    almost never do (see :data:`MAX_DEATHS_WITHOUT_PROGRESS`). At most :data:`MAX_DEATHS` (24) deaths of one
    segment in all, progress or not.

    **Or no driver: workers.** :meth:`start` sets a sweep up for workers and :meth:`work` (or the command
    ``sh-scaling work``) works on it from any number of processes on any machines: each claims granted
    segments, and the one that finds a round finished closes it, holding the lease only for that (see
    :meth:`work`). A sweep is run either by :meth:`run` or by workers, not both.

    **The budget is a promise.** Before a segment starts, the compute it is granted is written into its
    record (reserved); the records of all segments are the ledger (:func:`sh_scaling.budgeted.ledger`), so
    what counts against the budget is always in the storage. A grant never exceeds what the budget has left,
    and when something ate into it (a restart from scratch, the grant of a segment that failed), the
    remaining rounds' shares shrink in proportion (:func:`sh_scaling.budgeted.round_share`), so the total
    never passes the budget. A segment counts once: its retry after a killed worker uses the same record (and
    the checkpoint it was to resume from). Once ``train_fn`` has returned, one write of the segment record
    holds every point with its step, compute and loss, and the checkpoint's id; the points are reported from
    that record, so a process killed while it reports loses nothing: the retry trains nothing again and reports
    exactly the points the killed attempt did not, each loss under the step of its own compute. The grant is what is counted: ``train_fn`` is
    trusted to train to ``until_compute`` and no further; points it reports past that are clipped from the
    curve (every candidate is ranked on what it was granted) and recorded as ``overshoot``.

    **Candidates not evaluated yet, budgets too small.** A candidate that has reported no loss when its round
    ends has nothing to rank: it ranks after every candidate that has, and candidates without a loss are ordered
    among themselves by the seeded tie-break (``seed``), as in the simulator (a
    :class:`~sh_scaling.simulation.Strategy` with ``unseen="median"`` or ``"prior"`` scores them from the
    others' scores instead, here as there); where no candidate has reported one
    (evaluations that start after a warm-up longer than the first round's share), the whole first cut is that
    draw, recorded in the round's record with no scores. A budget whose rounds never carry any candidate to its
    first evaluation ends with every candidate PRUNED ("the schedule ended before it reported a finite positive
    loss"), ``best_loss_`` NaN and ``best_index_`` ``None``; give ``first_eval_compute`` to have such a budget,
    or one whose first round cannot evaluate every candidate, refused with ``ValueError`` before any training.

    Args:
        candidates: The configurations to race: a sequence of mappings (JSON-serialisable; numpy scalars are
            converted), or a :class:`pandas.DataFrame` such as :func:`sh_scaling.plan_sweep` returns (one
            candidate per row). Duplicates raise ``ValueError``. Primitive values also become the trial's
            params (one-choice categorical distributions), so the dashboard shows them.
        budget: Total compute ``B`` of the sweep, in the unit of the compute ``train_fn`` reports.
        max_compute: Each candidate's planned end (the compute its training schedule is set for, e.g. the end
            of its learning-rate decay): a number or a function of the configuration. A candidate is never
            trained past it; once there it leaves the race, and its result stands. Default: the most any
            candidate can get from the schedule, ``sum_r C_r``.
        first_eval_compute: Compute of a candidate's first evaluation (number or function of the
            configuration). When given, a budget whose first round cannot reach every candidate's first
            evaluation raises ``ValueError`` before any training (no decision could see those candidates).
        reduction_factor: ``eta`` > 1. Default 2, the paper's.
        strategy: How survivors are ranked: a name from :data:`sh_scaling.simulation.STRATEGIES`, a spec with
            settings (``"SH+MPL-SE:unseen=reach"``, read by :func:`~sh_scaling.simulation.parse_strategy` as
            ``sh-scaling simulate --strategies`` reads it; a bad one raises its one-line ``ValueError`` naming the
            spec, before anything is stored), or a :class:`~sh_scaling.simulation.Strategy` (surrogate,
            optimism, warm-up window, margin, objective). :meth:`join` rebuilds a named strategy or spec from
            the plan. Every setting of the strategy is stored in the plan (its ``margin``, and a surrogate
            prototype's class and ``get_params()``), so a restart that changes any of them is refused.
            Default ``"SH+FA"``, the rule the pruner ships (frontier-aware ranking on power-law forecasts),
            with a candidate not evaluated yet scored by the others' median where its target reaches the stage
            of their first evaluations (``Strategy(unseen="reach")``). A candidate evaluated fewer times than
            the surrogate needs is ranked on its observed loss unless the strategy's ``few`` rule says otherwise
            (``Strategy(few="stage")``, here as in the simulator).
            ``"UA"`` trains every candidate by ``B / n`` and ranks nobody; ``"SH+oracle"`` needs the future
            and is refused. The schedule-aware strategies (``"SH+MPL"``, ``"SH+FA-MPL"``, ``"SH+MPL-SE"``)
            forecast each candidate by the multi-power law under its ``schedule`` to its ``max_compute``, as the
            simulator forecasts a curve under its ``meta["schedule"]``; they are refused when no candidate
            states a schedule (forecasting every one as if trained at a constant rate would be a silent
            fallback).
        schedule: Each candidate's planned learning-rate schedule, as a fraction of its ``max_compute``: a
            :class:`~sh_scaling.schedules.Schedule` (``Cosine(warmup=0.05, final_ratio=0.1)``) or its
            ``to_dict()`` for every candidate, or a function of the candidate's configuration returning one of
            those, or ``None`` for a candidate without a known schedule (as ``SurrogateHalvingPruner(schedule=)``).
            Read once, when the sweep is set up, and stored in the plan (so workers that :meth:`join` and
            restarts forecast with the same schedules; a restart with other schedules is refused) and on each
            candidate's trial (:data:`~sh_scaling.keys.SCHEDULE_KEY`, where
            :func:`sh_scaling.curves.from_study` reads it). Only schedule-aware strategies use it; under one, a
            candidate without a schedule is forecast at a constant rate (a power law in compute), as the
            simulator forecasts a curve without one. A value that is not a schedule, or a function that raises,
            is refused with ``ValueError`` naming the candidate, before any training.
        storage: An Optuna storage or URL. ``None``: in memory (one process, no restart). Worker processes
            (``n_workers > 1``) need one they can share: a ``JournalStorage`` file or an RDB URL.
        study_name: Default ``"budgeted-halving"``, so that a restart finds the sweep.
        artifact_store: Where checkpoints go; any Optuna artifact store. Default: a
            :class:`~optuna.artifacts.FileSystemArtifactStore` in a folder next to a journal file or SQLite
            database (``<file>.checkpoints``, with any SQLite driver), in memory for an in-memory study;
            any other storage (PostgreSQL, MySQL, Redis, gRPC) needs it given (``ValueError`` otherwise): a
            store every process of the sweep can read after a reboot. Checkpoints are read from this store
            only, never from a location recorded in the study, and only under ids the store gave for the
            candidate's own trial (any other id in a segment record restarts the segment from scratch). A store
            that cannot be written raises ``ValueError`` before any training.
        seed: Seeds the tie-breaks between equal scores (the simulator's ``rng``; default 0, as its default).
        keep_checkpoints: ``"last"`` (default): after each round and at the end, checkpoints of pruned and
            failed candidates, and those superseded by a later segment, are removed from the artifact store, so
            that it ends with the last checkpoint of each complete candidate only. ``"all"``: nothing is
            removed.
        replan: Leave no budget unspent, as the simulator's ``allocate(..., replan=True)`` does: each round gets
            its schedule's share of what the budget has left (what earlier rounds did not spend, because
            candidates reached their planned end, goes to the remaining rounds in the schedule's proportions),
            each decision's targets count the remaining rounds' replanned shares, and the last round splits what
            is left among its survivors. Default ``False``: the schedule's shares, as in the paper.

    After :meth:`run`: ``study_`` (the Optuna study), ``artifact_store_`` (where the checkpoints are),
    ``survivors_`` (candidate indices alive at the start of
    each round, as the simulator's ``AllocationResult.survivors``), ``trained_`` (compute each candidate was
    trained to), ``ledger_`` (:func:`sh_scaling.budgeted.ledger`), ``spent_`` (its total), ``best_index_`` and
    ``best_loss_`` (the lowest observed loss and its candidate).

    Example::

        def train_fn(config, from_checkpoint, until_compute):
            model = build(config) if from_checkpoint is None else load(from_checkpoint)
            points = []
            while model.compute < until_compute:
                model.train_step()
                if model.should_evaluate():
                    points.append((model.compute, model.evaluate()))
            points.append((model.compute, model.evaluate()))   # the loss where the segment ends
            return points, model.save_bytes()

        sweep = sh_scaling.BudgetedHalving(configs, 1e21, max_compute=lambda c: 6 * c["n"] * c["tokens"],
                                           storage="sqlite:///sweep.db", study_name="ladder")
        sweep.run(train_fn)
        print(sweep.best_loss_, sweep.ledger_["total"])

    ``train_fn(config, from_checkpoint, until_compute) -> (points, checkpoint)`` trains the candidate from
    ``from_checkpoint`` (a local file path holding a checkpoint it returned before, or ``None``: from scratch)
    to the cumulative compute ``until_compute``, and returns its evaluations ``[(compute, loss), ...]``
    (cumulative compute; those already reported are dropped, those past ``until_compute`` clipped) and the
    checkpoint to resume from next time: a file path (uploaded; the file is left where it is), bytes, or
    ``None`` for a trainer that keeps its own state. A checkpoint file is data handed from one process to
    another, possibly on other machines: load it with a loader that cannot run code
    (``torch.load(path, weights_only=True)``, safetensors). It should evaluate where its segment ends, so that the
    round's decision sees the candidate where it is; a segment whose last point is short of
    ``until_compute`` is recorded (``short``). Each point is one write of Optuna's storage (a transaction of an
    RDB storage, a synced line of a journal file; the in-memory storage copies the trial's losses at each), so
    return a few thousand points a segment at most: 100,000 took 1 to 13 minutes (the budgeted guide's table,
    ``benchmarks/bench_segment_points.py``). If it cannot load ``from_checkpoint`` it should raise
    :class:`sh_scaling.budgeted.CheckpointError`: the segment restarts from scratch, recorded, and is granted
    the extra compute if the budget has it. Any other exception fails the candidate with the reason; the round
    goes on. With ``n_workers > 1`` it runs in worker processes started with ``spawn``, so it must be
    picklable (a module-level function or a ``functools.partial`` of one), and a script that calls
    :meth:`run` needs the ``if __name__ == "__main__":`` guard (every worker imports it).
    """

    def __init__(
        self,
        candidates: Any,
        budget: float,
        *,
        max_compute: float | Callable[[dict[str, Any]], float] | None = None,
        first_eval_compute: float | Callable[[dict[str, Any]], float] | None = None,
        reduction_factor: float = 2,
        strategy: str | Strategy = "SH+FA",
        schedule: Schedule | Mapping[str, Any] | Callable[[dict[str, Any]], Any] | None = None,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        artifact_store: Any = None,
        seed: int = 0,
        keep_checkpoints: str = "last",
        replan: bool = False,
    ) -> None:
        self.candidates = candidates
        self.budget = budget
        self.max_compute = max_compute
        self.first_eval_compute = first_eval_compute
        self.reduction_factor = reduction_factor
        self.strategy = strategy
        self.schedule = schedule
        self.storage = storage
        self.study_name = study_name
        self.artifact_store = artifact_store
        self.seed = seed
        self.keep_checkpoints = keep_checkpoints
        self.replan = replan

    # ---------------------------------------------------------------------------------------------- check
    def check(self) -> BudgetedHalving:
        """Every refusal that needs no storage, made at once; returns ``self``. Opens, creates and writes nothing.

        ``ValueError`` for: candidates that are not a non-empty sequence of JSON-serialisable mappings, or that
        repeat a configuration; a budget, ``max_compute`` or ``first_eval_compute`` that is not a positive
        finite number (or a function of the configuration that raises or returns one that is not); a
        ``reduction_factor`` not above 1; a strategy name or spec that :func:`~sh_scaling.simulation.parse_strategy`
        refuses (its one-line error, naming the spec), ``"SH+oracle"``, or a schedule-aware strategy when no
        candidate states a schedule; a ``schedule`` that is not one for some candidate; a budget whose first
        round cannot reach the first evaluation of every candidate (with ``first_eval_compute``);
        ``keep_checkpoints``, ``replan`` or ``seed`` of the wrong kind. :meth:`run`, :meth:`work` and
        :meth:`start` begin with the same checks, before they open the storage; a restart with settings other
        than those stored is refused after the storage is opened, before anything is created or written
        (the checkpoint folder included). ``sh-scaling start`` calls it before it creates the storage.
        """
        self._schedule()
        return self

    # ------------------------------------------------------------------------------------------------ run
    def run(self, train_fn: Callable[..., Any], n_workers: int = 1, *,
            preempt_grace: float = PREEMPT_GRACE_S) -> BudgetedHalving:
        """Run (or continue) the sweep; returns ``self``. See the class docstring for ``train_fn``.

        Everything that can be checked is checked before any training: the arguments, the budget against the
        first evaluations, the storage and artifact store, a stored sweep's settings.

        SIGTERM (a scheduler preempting the job) stops the sweep cleanly: every running ``train_fn`` (in this
        process or a worker process) may return for up to ``preempt_grace`` seconds (default
        :data:`~sh_scaling.budgeted.PREEMPT_GRACE_S`, 20) and its segment is then recorded as done; one that
        does not is stopped and its segment put back (WAITING; an ``interruption``, not a death of its worker,
        and not charged again). Then :class:`~sh_scaling.budgeted.Preempted` is raised: a ``SystemExit`` with
        status 0, so the script exits 0 and a later ``run()`` continues. A worker process sent SIGTERM on its
        own (the driver goes on) does the same with its segment and is replaced; it trains with the heartbeat
        of a :meth:`work` worker, marked ``stopping`` within 0.1 s of the SIGTERM, so that when it is SIGKILLed
        before it put the segment back (a scheduler's grace that ran out) the segment counts as an
        interruption, not a death of its worker.
        """
        if not callable(train_fn):
            raise ValueError(f"train_fn must be callable, got {train_fn!r}")
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        grace = check_grace(preempt_grace)
        configs, budget, strat, sizes, shares, planned, schedules = self._schedule()
        keep = self._keep()
        study_name = self.study_name or DEFAULT_STUDY_NAME
        plan = self._plan(configs, budget, strat, sizes, shares, planned, schedules)
        storage = _connect(self.storage)
        if n_workers > 1:
            _check_shareable(storage, train_fn, self.artifact_store)
        self._refuse_other_settings(storage, study_name, plan)
        store = self._artifact_store(storage)
        _check_writable(store)
        creator = create_sweep_study(storage, study_name)
        study = optuna.load_study(storage=storage, study_name=study_name,
                                  sampler=optuna.samplers.RandomSampler(self.seed))
        if creator:
            # The one process that created the study sets the sweep up: its trials, the lease (held by this
            # process from the start), and the plan last, which every other driver waits for.
            lease = Lease(storage, study_name, study._study_id)
            lease.create_root()
            held = lease.acquire()
            trial_ids = self._ensure_trials(study, configs, planned, schedules)
            study._storage.set_study_system_attr(study._study_id, BUDGETED_PLAN_KEY, plan)
        else:
            self._wait_for_plan(study)
            self._check_plan(study, plan)
            lease = Lease(storage, study_name, study._study_id)
            # Another driver may run the sweep: wait while it does, take over if it stops, or find it finished.
            held = lease.acquire(create=True)
            trial_ids = (self._ensure_trials(study, configs, planned, schedules) if held
                         else self._trial_ids(study, configs))
        ctx = _Context(study, trial_ids, planned, budget, sizes, shares, strat, int(self.seed), lease, schedules)
        ctx.replan = self._replan()
        ctx.store, ctx.keep_checkpoints = store, keep
        self.artifact_store_ = store
        if not held:
            self._learn(ctx)
            return self
        finished = False
        try:
            self._take_back(ctx, "the driver stopped while it ran")
            ctx.charges = {(t._trial_id, s["k"]): float(s["charge"]) for t in self._trials(ctx)
                           for s in segments(t)}
            preemption = Preemption(grace)
            pool: Any = (WorkerProcesses(n_workers, storage, study_name, store, train_fn, grace) if n_workers > 1
                         else InProcess(study, store, train_fn, preemption))
            restore = preemption.install()
            try:
                self._rounds(ctx, pool)
                pool.close()
            except BaseException:
                pool.close(abort=True)
                raise
            finally:
                restore()
                if not lease.lost:  # a driver that lost the sweep writes nothing more
                    self._take_back(ctx, "the driver was interrupted while it ran")
                    self._write_ledger(ctx)
            finished = True
        finally:
            lease.release(finished=finished)
        self.artifact_store_ = store
        self._learn(ctx)
        return self

    # ----------------------------------------------------------------------------------------------- work
    def work(self, train_fn: Callable[..., Any], *, preempt_grace: float = PREEMPT_GRACE_S) -> BudgetedHalving:
        """Work on the sweep as one of any number of workers, on any machines; returns ``self`` when it is done.

        Every worker runs this same call (or ``sh-scaling work``) against one storage that all of them reach
        (PostgreSQL or MySQL through Optuna's RDB storage, or a journal file on a shared file system) and one
        artifact store. There is no driver: the first call creates the sweep (its trials, its plan and the
        grants of the first round), later calls with the same settings join it, and one with other settings
        is refused (``ValueError`` naming them). A worker then loops: it claims a granted segment (moves its
        trial from WAITING to RUNNING, a change only one process can win), trains it with a heartbeat in the
        trial, records, reports and uploads it exactly as :meth:`run` does, and gives the trial back. The
        worker that finds a round's segments all finished closes the round, holding the sweep's lease (see
        the class docstring) so that two that finish together decide once: the decision core ranks the
        survivors as :meth:`run` would, and the next round's segments are granted. When the sweep is
        finished every worker returns.

        A worker killed outright (SIGKILL, a lost machine) leaves its trial RUNNING: another worker takes the
        segment back when the trial's heartbeat has not changed for 60 s (at once when the dead worker ran on
        the same machine) and retries it from the same record and checkpoint (a death of the segment's
        worker; :data:`MAX_DEATHS_WITHOUT_PROGRESS` in a row without progress fail the candidate, see the
        class docstring). A worker told to stop (SIGTERM) lets
        ``train_fn`` return for up to ``preempt_grace`` seconds, or puts the segment back, then raises
        :class:`~sh_scaling.budgeted.Preempted` (exit status 0). It first marks its heartbeat ``stopping``
        (within 0.1 s), so that when its scheduler kills it before it put the segment back (SIGKILL after a
        grace shorter than the work left) the segment taken back counts as an interruption, not a death.
        Storage calls that lose their connection are retried with backoff for up to 5 minutes.

        ``train_fn`` is the same as :meth:`run`'s. A sweep started by :meth:`run` is not worked on by workers
        (and the other way round): ``ValueError``. A worker of another major or minor release of sh_scaling than
        the one that started the sweep is refused (:class:`~sh_scaling.budgeted.VersionMismatch`, naming both;
        a patch-level difference is allowed), and one whose artifact store lacks a checkpoint another worker
        recorded puts the segment back untouched and raises
        :class:`~sh_scaling.budgeted.ArtifactStoreNotShared`; both are also recorded in the study
        (:data:`~sh_scaling.keys.BUDGETED_WORKER_ERRORS_KEY`).
        """
        if not callable(train_fn):
            raise ValueError(f"train_fn must be callable, got {train_fn!r}")
        grace = check_grace(preempt_grace)
        ctx = self._start()
        preemption = Preemption(grace)
        ctx.stop_requested = preemption.requested.is_set
        restore = preemption.install()
        try:
            with preemption.deferred():
                self._work_loop(ctx, train_fn, preemption)
        finally:
            restore()
        self._learn(ctx)
        if preemption.requested.is_set():
            raise Preempted()
        return self

    def start(self) -> BudgetedHalving:
        """Create the sweep for workers, or join it with the same settings; returns ``self``.

        Creates the study, one WAITING trial per candidate and the plan (``ValueError`` if the study holds a
        sweep with other settings, naming them); the first worker that looks grants the first round. Any
        process may call it, any number of times: workers started with :meth:`work` or ``sh-scaling work``
        then train the sweep. :meth:`work` calls it itself.
        """
        self._start()
        return self

    def _start(self) -> _Context:
        configs, budget, strat, sizes, shares, planned, schedules = self._schedule()
        keep = self._keep()
        study_name = self.study_name or DEFAULT_STUDY_NAME
        plan = {**self._plan(configs, budget, strat, sizes, shares, planned, schedules), "mode": "workers",
                "keep_checkpoints": keep}
        storage = RetryingStorage(_connect(self.storage))
        self._refuse_other_settings(storage, study_name, plan)
        store = self._artifact_store(storage)
        _check_writable(store)
        creator = create_sweep_study(storage, study_name)
        study = optuna.load_study(storage=storage, study_name=study_name,
                                  sampler=optuna.samplers.RandomSampler(self.seed))
        lease = Lease(storage, study_name, study._study_id)
        if creator:
            lease.create_root()
            lease.acquire()
            try:
                trial_ids = self._ensure_trials(study, configs, planned, schedules)
                study._storage.set_study_system_attr(study._study_id, BUDGETED_PLAN_KEY, plan)
            finally:
                lease.release(finished=False)
        else:
            self._wait_for_plan(study)
            self._check_plan(study, plan)
            trial_ids = self._trial_ids(study, configs)
        ctx = _Context(study, trial_ids, planned, budget, sizes, shares, strat, int(self.seed), lease, schedules)
        ctx.replan = self._replan()
        ctx.store, ctx.keep_checkpoints = store, keep
        self.artifact_store_ = store
        return ctx

    @classmethod
    def join(cls, storage: str | optuna.storages.BaseStorage, study_name: str, *,
             artifact_store: Any = None) -> BudgetedHalving:
        """The sweep a study holds, with the settings it was started with, to :meth:`work` on it.

        For a worker that knows only where the sweep is (``sh-scaling work``): the candidates, their planned
        ends and schedules, the budget, reduction factor, strategy (by name or spec, as
        :func:`~sh_scaling.simulation.parse_strategy` reads it, with its ``unseen`` and ``few`` rules), seed,
        ``keep_checkpoints`` and ``replan`` are read from the study. ``ValueError`` if the study holds no sweep
        started for workers, or one with a strategy that is neither a named one nor a spec of one (join it with
        the ``BudgetedHalving(...)`` call that started it).
        """
        base = _connect(storage)
        try:
            study = optuna.load_study(storage=base, study_name=study_name)
        except KeyError:
            raise ValueError(f"storage {_describe_storage(base)} has no study {study_name!r}: start the sweep with "
                             "BudgetedHalving(...).work(train_fn) first") from None
        stored = study._storage.get_study_system_attrs(study._study_id).get(BUDGETED_PLAN_KEY)
        if stored is None:
            raise ValueError(f"study {study_name!r} holds no budgeted sweep")
        _check_version(study._storage, study._study_id, stored, study_name)
        if stored.get("mode") != "workers":
            raise ValueError(f"study {study_name!r} is run by a driver (BudgetedHalving.run), not by workers")
        strat = _named_strategy(stored["strategy"])
        if strat is None:
            raise ValueError(f"study {study_name!r} ranks with a custom strategy {stored['strategy']}: join it "
                             "with the BudgetedHalving(...) call that started it")
        records = sorted((t.system_attrs[BUDGETED_CANDIDATE_KEY] for t in study.get_trials(deepcopy=False)
                          if candidate_index(t) is not None), key=lambda c: int(c["index"]))
        configs = [c["config"] for c in records]
        ends = {json.dumps(c["config"], sort_keys=True): float(c["planned"]) for c in records}
        schedule = None
        if stored.get("schedules") is not None:
            by_config = {json.dumps(c, sort_keys=True): d for c, d in zip(configs, stored["schedules"])}
            schedule = lambda c: by_config[json.dumps(c, sort_keys=True)]  # noqa: E731
        return cls(configs, stored["budget"], max_compute=lambda c: ends[json.dumps(c, sort_keys=True)],
                   reduction_factor=stored["reduction_factor"], strategy=strat, schedule=schedule, storage=base,
                   study_name=study_name, artifact_store=artifact_store, seed=stored["seed"],
                   keep_checkpoints=stored["keep_checkpoints"], replan=bool(stored.get("replan", False)))

    def _work_loop(self, ctx: _Context, train_fn: Callable[..., Any], preemption: Preemption) -> None:
        watch = Watch()
        rng = np.random.default_rng()
        while not preemption.requested.is_set():
            kind, tasks = self._scan(ctx, watch)
            if kind == "claim":
                task = tasks[int(rng.integers(len(tasks)))]  # spread workers over the segments
                outcome = run_beating(ctx.study, ctx.store, train_fn, task, preemption)
                if outcome["status"] == "missing":  # put back as it was, for a worker that has the checkpoint
                    record_worker_error(ctx.study._storage, ctx.study._study_id, outcome["reason"])
                    raise ArtifactStoreNotShared(outcome["reason"])
                if outcome["status"] == "checkpoint":
                    self._locked(ctx, lambda: self._handle(ctx, task, outcome))
            elif kind == "close":
                if self._locked(ctx, lambda: self._close(ctx, watch)) is None:
                    return  # the sweep is finished (or this worker was told to stop)
            else:
                preemption.requested.wait(POLL_S)

    def _locked(self, ctx: _Context, step: Callable[[], Any]) -> Any:
        """Run a bookkeeping step holding the sweep's lease (``None``: the sweep is finished, or this worker was
        told to stop while it waited for the lease)."""
        if not ctx.lease.acquire(create=True, give_up=ctx.stop_requested):
            return None
        finished = False
        try:
            ctx.charges = {(t._trial_id, s["k"]): float(s["charge"]) for t in self._trials(ctx)
                           for s in segments(t)}
            finished = step() is True
        finally:
            ctx.lease.release(finished=finished)
        return None if finished else True

    def _scan(self, ctx: _Context, watch: Watch) -> tuple[str, list[SegmentTask]]:
        """What this worker should do now: ``claim`` one of the segments, ``close`` (a round, or take a dead
        worker's segment back), or ``wait``."""
        attrs = ctx.study._storage.get_study_system_attrs(ctx.study._study_id)
        R = len(ctx.sizes)
        for r in range(R):
            rec = attrs.get(budgeted_round_key(r))
            if rec is None or not rec.get("opened"):
                return "close", []
            if "survivors" in rec and r < R - 1:
                continue
            break
        assert rec is not None
        trials = self._trials(ctx)
        claimable, busy = [], False
        beats: dict[int, dict[str, Any]] | None = None
        for i in rec["alive"]:
            t = trials[int(i)]
            if t.state.is_finished():
                continue
            seg = next((s for s in segments(t) if s["round"] == r), None)
            if t.state == TrialState.RUNNING:
                if beats is None:
                    beats = ctx.heartbeats()
                if watch.dead(t, current_beat(t, beats)) is not None:
                    return "close", []
                busy = True
            elif seg is not None and seg["status"] == "reserved":
                claimable.append(SegmentTask(t._trial_id, budgeted_segment_key(seg["k"]), int(seg["attempts"])))
        if claimable:
            return "claim", claimable
        return ("wait" if busy else "close"), []

    def _close(self, ctx: _Context, watch: Watch) -> bool:
        """Holding the lease: take back the segments of dead workers, close every round whose segments are all
        finished and grant the next; ``True`` when the sweep is finished."""
        beats: dict[int, dict[str, Any]] | None = None
        for t in self._trials(ctx):
            if t.state != TrialState.RUNNING:
                continue
            if beats is None:
                beats = ctx.heartbeats()
            why = watch.dead(t, current_beat(t, beats))
            seg = next((s for s in reversed(segments(t)) if s["status"] == "reserved"), None)
            if why is None:
                continue
            if seg is None:  # its worker died after recording the segment: only the trial is to be given back
                last = segments(t)[-1] if segments(t) else {}
                if last.get("beat_trial") is not None:
                    take_back_heartbeat(ctx.study._storage, int(last["beat_trial"]))
                ctx.study._storage.set_trial_state_values(t._trial_id, TrialState.WAITING)
                continue
            task = SegmentTask(t._trial_id, budgeted_segment_key(seg["k"]), int(seg["attempts"]))
            self._handle(ctx, task, {"status": "died", "reason": why})
        return self._advance(ctx)

    def _advance(self, ctx: _Context) -> bool:
        """The rounds of :meth:`_rounds`, one step at a time: open a round (grant its segments), or close it
        once every segment is finished. ``True`` when the sweep is finished."""
        R = len(ctx.sizes)
        rng = np.random.default_rng(ctx.seed)
        alive = list(range(len(ctx.planned)))
        storage, sid = ctx.study._storage, ctx.study._study_id
        for r in range(R):
            rec, alive, decided = self._open_round(ctx, r, alive, rng)
            if decided:
                continue
            if not rec.get("opened"):
                self._train_round(ctx, Collect(), r, alive, float(rec["share"]), rec.get("grants"))
                storage.set_study_system_attr(sid, budgeted_round_key(r), {**rec, "opened": True})
                return False
            trials = self._trials(ctx)
            for i in alive:
                t = trials[i]
                if t.state == TrialState.RUNNING or (not t.state.is_finished() and any(
                        s["round"] == r and s["status"] == "reserved" for s in segments(t))):
                    return False  # a segment of the round is not finished yet
            survivors = self._close_round(ctx, r, alive, rng, rec)
            if survivors is None:
                break
            alive = survivors
        self._end_rounds(ctx)
        self._write_ledger(ctx)
        return True

    def _replan(self) -> bool:
        if not isinstance(self.replan, bool):
            raise ValueError(f"replan must be True or False, got {self.replan!r}")
        return self.replan

    def _seed(self) -> int:
        seed = self.seed
        integral = isinstance(seed, (int, np.integer)) or (isinstance(seed, float) and seed.is_integer())
        if isinstance(seed, bool) or not integral or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return int(seed)

    def _keep(self) -> str:
        if self.keep_checkpoints not in ("last", "all"):
            raise ValueError(f"keep_checkpoints must be 'last' (each candidate still wanted keeps its last "
                             f"checkpoint) or 'all', got {self.keep_checkpoints!r}")
        return str(self.keep_checkpoints)

    def _plan(self, configs: list[dict], budget: float, strat: Strategy, sizes: list[int], shares: list[float],
              planned: list[float], schedules: list[dict[str, Any] | None]) -> dict[str, Any]:
        return {
            "version": RECORDS_FORMAT, VERSION_FIELD: this_version(),
            "budget": budget, "reduction_factor": float(self.reduction_factor),
            "strategy": _describe(strat), "sizes": sizes, "shares": shares, "seed": self._seed(),
            "n_candidates": len(configs), "fingerprint": _fingerprint(configs, planned),
            "replan": self._replan(),
            # Each candidate's learning-rate schedule, None for all when none is stated.
            "schedules": schedules if any(d is not None for d in schedules) else None,
        }

    def _schedule(self) -> tuple[list[dict], float, Strategy, list[int], list[float], list[float],
                                 list[dict[str, Any] | None]]:
        """Checked arguments, the rounds and shares, each candidate's planned end and its learning-rate schedule
        (as :meth:`~sh_scaling.schedules.Schedule.to_dict`, ``None`` where none is stated)."""
        configs = _configs(self.candidates)
        budget = _positive("budget", self.budget)
        self._keep()
        self._replan()
        self._seed()
        if isinstance(self.reduction_factor, bool) or not (
                isinstance(self.reduction_factor, (int, float)) and self.reduction_factor > 1):
            raise ValueError(f"reduction_factor must be a number > 1, got {self.reduction_factor!r}")
        schedules = _schedules(self.schedule, configs)
        stated = any(d is not None for d in schedules)
        strat = _strategy(self.strategy)
        if strat.surrogate == SCHEDULE_AWARE and not stated:
            raise ValueError(
                f"strategy {strat.name!r} forecasts each candidate under its learning-rate schedule, and no "
                "candidate states one: every candidate would be forecast as if trained at a constant rate. Pass "
                "schedule= (a Schedule, its to_dict(), or a function of the candidate's config returning one; "
                "--schedule of sh-scaling start), or use a strategy that forecasts from the curve alone, such as "
                "'SH+FA' or 'SH+PL'")
        if strat.ranking == "oracle":
            raise ValueError(f"strategy {strat.name!r} ranks by the future of each curve: a replay-only bound")
        n = len(configs)
        if strat.ranking == "none":  # uniform allocation: one round, nobody ranked (the simulator's UA)
            sizes, shares = [n], [budget / n]
        else:
            sizes = round_sizes(n, self.reduction_factor)
            shares = round_shares(budget, sizes)
        planned = [_per_candidate("max_compute", self.max_compute, c, i, default=float(sum(shares)))
                   for i, c in enumerate(configs)]
        if self.first_eval_compute is not None:
            first = [_per_candidate("first_eval_compute", self.first_eval_compute, c, i, default=0.0)
                     for i, c in enumerate(configs)]
            short = [i for i in range(n) if min(shares[0], planned[i]) < first[i] * (1 - RTOL)]
            if short:
                raise ValueError(
                    f"budget {budget:.6g} gives each of the {n} candidates {shares[0]:.6g} in the first round, less "
                    f"than the first evaluation of candidate(s) {short[:10]} ({first[short[0]]:.6g}): no decision "
                    f"could see their loss. The smallest budget that evaluates every candidate once in the first "
                    f"round is {max(first) * budget / shares[0]:.6g}")
        return configs, budget, strat, sizes, shares, planned, schedules

    def _learn(self, ctx: _Context) -> None:
        """The learned attributes, read back from the storage."""
        trials = self._trials(ctx)
        self.study_ = ctx.study
        attrs = ctx.study._storage.get_study_system_attrs(ctx.study._study_id)
        rounds = [attrs.get(budgeted_round_key(r)) for r in range(len(ctx.sizes))]
        self.survivors_ = [[int(i) for i in rec["alive"]] for rec in rounds if rec is not None]
        self.trained_ = [trained_compute(segments(t)) for t in trials]
        self.ledger_ = ledger(trials, ctx.budget)
        self.spent_ = self.ledger_["total"]
        curves = [planned_curve(t, p) for t, p in zip(trials, ctx.planned)]
        losses = [c.min_loss if len(c) else math.inf for c in curves]
        found = bool(losses) and min(losses) < math.inf
        self.best_index_ = int(np.argmin(losses)) if found else None
        self.best_loss_ = float(min(losses)) if found else float("nan")

    # --------------------------------------------------------------------------------------------- rounds
    def _open_round(
        self, ctx: _Context, r: int, alive: list[int], rng: np.random.Generator
    ) -> tuple[dict[str, Any], list[int], bool]:
        """Round ``r``'s record, written when the round is first reached (its candidates: ``alive`` less the
        failed ones; its share of what is left of the budget), with the candidates it trains and whether it was
        decided already. A round decided before a restart draws its tie-breaks again, so that later ones match,
        and hands on its survivors."""
        storage, sid = ctx.study._storage, ctx.study._study_id
        rec = storage.get_study_system_attrs(sid).get(budgeted_round_key(r))
        if rec is None:
            now = self._trials(ctx)
            alive = [i for i in alive if now[i].state != TrialState.FAIL]
            left = ctx.budget - ctx.total()
            if ctx.replan:
                share = replanned_shares(ctx.shares, ctx.sizes, r, left)[0]
            else:
                share = round_share(ctx.shares, ctx.sizes, r, left)
            rec = {"alive": alive, "share": share}
            if ctx.replan and r == len(ctx.sizes) - 1:
                # The last round, which no decision follows, splits what is left among its survivors; the
                # grants are fixed here, so that a restart in the middle of the round grants the same.
                trials = [now[i] for i in alive]
                room = np.array([0.0 if t.state.is_finished() else ctx.planned[i] - trained_compute(segments(t))
                                 for i, t in zip(alive, trials)])
                rec["grants"] = [float(g) for g in water_fill(share * len(alive), np.maximum(room, 0.0))]
            storage.set_study_system_attr(sid, budgeted_round_key(r), rec)
        if "survivors" in rec:
            rng.random(int(rec["n_ranked"]))
            return rec, [int(i) for i in rec["survivors"]], True
        return rec, [int(i) for i in rec["alive"]], False

    def _close_round(
        self, ctx: _Context, r: int, alive: list[int], rng: np.random.Generator, rec: dict[str, Any]
    ) -> list[int] | None:
        """Round ``r`` once its segments are done: its finished candidates completed and the ledger written;
        then, unless it is the last round, its decision recorded and the checkpoints no longer wanted removed.
        Returns the survivors, ``None`` after the last round."""
        self._complete_finished(ctx, alive)
        self._write_ledger(ctx)
        if r == len(ctx.sizes) - 1:
            return None
        rec = self._decide(ctx, r, alive, rng, rec)
        ctx.study._storage.set_study_system_attr(ctx.study._study_id, budgeted_round_key(r), rec)
        self._clean_checkpoints(ctx)
        return [int(i) for i in rec["survivors"]]

    def _end_rounds(self, ctx: _Context) -> None:
        """After the last round: every candidate settled, and the checkpoints no longer wanted removed."""
        for i, t in enumerate(self._trials(ctx)):
            self._settle(ctx, t, i)
        self._clean_checkpoints(ctx)

    def _rounds(self, ctx: _Context, pool: Any) -> None:
        R = len(ctx.sizes)
        rng = np.random.default_rng(ctx.seed)
        alive = list(range(len(ctx.planned)))
        for r in range(R):
            rec, alive, decided = self._open_round(ctx, r, alive, rng)
            if decided:
                continue
            self._train_round(ctx, pool, r, alive, float(rec["share"]), rec.get("grants"))
            survivors = self._close_round(ctx, r, alive, rng, rec)
            if survivors is None:
                break
            alive = survivors
        self._end_rounds(ctx)

    def _clean_checkpoints(self, ctx: _Context) -> None:
        """Remove from the artifact store every checkpoint no longer wanted (with ``keep_checkpoints="last"``).

        Wanted: the last checkpoint of each candidate still in the race or complete. Not wanted: those of
        pruned and failed candidates, those a later segment superseded, and any a killed process uploaded
        without recording it in its segment. What was removed is recorded in the study, so that nothing is
        removed twice.
        """
        if ctx.keep_checkpoints == "all":
            return
        storage, sid = ctx.study._storage, ctx.study._study_id
        # Finished trials cannot be written to, so the record is the study's: {trial id: [removed ids]}.
        record = dict(storage.get_study_system_attrs(sid).get(BUDGETED_REMOVED_KEY) or {})
        changed = False
        for t in self._trials(ctx):
            done = [s for s in segments(t) if s["status"] == "done"]
            keep = {done[-1].get("checkpoint")} if done and t.state in (
                TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE) else set()
            removed = list(record.get(str(t._trial_id), []))
            # The uploads as this read of the study holds them: the same read as the segments they are kept by.
            for artifact_id in sorted(uploaded_ids(None, t) - keep - set(removed)):
                try:
                    ctx.store.remove(artifact_id)
                except (ArtifactNotFound, FileNotFoundError):
                    pass  # already gone: what was wanted is that it is not there
                except Exception as exc:  # noqa: BLE001 - a store that cannot remove still holds the sweep
                    warnings.warn(f"BudgetedHalving: checkpoint {artifact_id} could not be removed from the artifact "
                                  f"store ({type(exc).__name__}: {exc}); it stays", RuntimeWarning, stacklevel=2)
                    continue
                removed.append(artifact_id)
                changed = True
            record[str(t._trial_id)] = removed
        if changed:
            storage.set_study_system_attr(sid, BUDGETED_REMOVED_KEY, record)

    def _train_round(self, ctx: _Context, pool: Any, r: int, alive: list[int], share: float,
                     grants: list[float] | None = None) -> None:
        """Reserve and run each candidate's segment of round ``r``: ``share`` more each (at most to its planned
        end), or the round's ``grants`` (one per candidate of ``alive``) where the round fixed them."""
        granted = dict(zip(alive, grants)) if grants is not None else None
        tasks = []
        trials = self._trials(ctx)
        for i in alive:
            t = trials[i]
            if t.state.is_finished():
                continue
            segs = segments(t)
            seg = next((s for s in segs if s["round"] == r), None)
            if seg is None:
                start = trained_compute(segs)
                # Exactly the simulator's arithmetic, so that the compute trained to is the same float.
                give = granted[i] if granted is not None else min(share, ctx.planned[i] - start)
                if not give > 0:
                    continue
                until = trained_until(start, give, ctx.planned[i])
                seg = self._reserve_next(ctx, t, len(segs), r, start, until, segs)
                if seg is None:
                    continue
            if seg["status"] == "reserved":
                tasks.append(SegmentTask(t._trial_id, budgeted_segment_key(seg["k"]), int(seg["attempts"])))
        pool.execute(tasks, lambda task, outcome: self._handle(ctx, task, outcome))

    def _reserve_next(self, ctx: _Context, t: Any, k: int, r: int, start: float, until: float,
                      segs: list[dict]) -> dict | None:
        """Reserve segment ``k`` of a candidate, resuming from its last checkpoint."""
        done = [s for s in segs if s["status"] == "done"]
        resume = done[-1].get("checkpoint") if done else None
        notes: list[str] = []
        if done and done[-1].get("checkpoint_lost"):
            notes.append(f"the checkpoint of segment {done[-1]['k']} was not stored "
                         f"({done[-1].get('checkpoint_error')}): restarted from scratch")
            return self._reserve(ctx, t, k, r, 0.0, until, None, True, notes, 1, prior=0.0)
        return self._reserve(ctx, t, k, r, start, until, resume, False, notes, 1, prior=0.0)

    def _reserve(self, ctx: _Context, t: Any, k: int, r: int, start: float, until: float, resume: str | None,
                 from_scratch: bool, notes: list[str], attempts: int, prior: float) -> dict | None:
        """Write a segment's grant into its record before it starts, within what the budget has left."""
        ctx.lease.check()
        others = {key: c for key, c in ctx.charges.items() if key != (t._trial_id, k)}
        charge = until - start
        if _fsum(others, charge) > ctx.budget:
            free = _largest_fitting(others, ctx.budget)
            if not free > 0:
                notes.append(f"no budget left for this segment (wanted {charge:.6g})")
                self._note_round(ctx, t, r, notes[-1])
                return None
            if free < charge * (1 - RTOL):
                notes.append(f"granted {free:.6g} instead of {charge:.6g}: what the budget had left")
            until, charge = start + free, free
        steps = t.intermediate_values
        seg = {
            "k": k, "round": r, "from": start, "until": until, "charge": charge,
            "first_step": (max(steps) + 1) if steps else 0, "resume": resume, "from_scratch": from_scratch,
            "status": "reserved", "attempts": attempts, "notes": notes, "reserved_at": _now(),
        }
        seg["progress"] = progress_mark(None, t, seg)  # as read: nothing trains the candidate while it is granted
        seg.update(ctx.new_attempt(t._trial_id, budgeted_segment_key(k), attempts))
        ctx.study._storage.set_trial_system_attr(t._trial_id, budgeted_segment_key(k), seg)
        ctx.charges[(t._trial_id, k)] = charge
        return seg

    def _note_round(self, ctx: _Context, t: Any, r: int, note: str) -> None:
        ctx.study._storage.set_trial_user_attr(t._trial_id, DECISION_KEY, f"round {r + 1}: {note}")

    def _handle(self, ctx: _Context, task: SegmentTask, outcome: dict[str, Any]) -> list[SegmentTask]:
        """What follows a segment's outcome: nothing, a retry from the same checkpoint, or a restart."""
        ctx.lease.check()
        status = outcome["status"]
        if status in ("done", "failed"):
            return []
        storage = ctx.study._storage
        t = storage.get_trial(task.trial_id)
        seg = dict(t.system_attrs[task.key])
        if int(seg.get("attempts", 1)) != task.attempt and seg["status"] == "reserved":
            return []  # another process already handled this attempt (a worker of a sweep without a driver)
        if status == "stale" or seg["status"] != "reserved":
            if t.state == TrialState.RUNNING and seg["status"] != "reserved":
                storage.set_trial_state_values(t._trial_id, TrialState.WAITING)  # died after recording
            if status == "stale":
                warnings.warn(f"BudgetedHalving: segment {task.key} of trial {t.number} not run: {outcome['reason']}",
                              RuntimeWarning, stacklevel=2)
            return []
        attempts = int(seg["attempts"])
        if seg.get("attempt_trial") is not None:
            # The attempt is finished first, before anything else is written: a worker that lives on after it was
            # taken for dead can record nothing for it from now on. It may have recorded its outcome first: a
            # failure fails the candidate as its worker would have; a result goes into the segment's record, where
            # the next attempt finds it and reports it without training (the death came after progress).
            recorded = take_back(storage, int(seg["attempt_trial"]), seg.get("beat_trial"))
            if recorded is not None and "interrupted" in recorded:
                # Its worker recorded that it was told to stop (SIGTERM), then was lost before it put the segment
                # back: an interruption, as when it puts the segment back in time.
                status, outcome = "stopped", {**outcome, "reason": str(recorded["interrupted"])}
                recorded = None
            if recorded is not None and "result" not in recorded:
                self._finish_recorded(ctx, t, task.key, seg, recorded, outcome["reason"])
                return []
            if recorded is not None and seg.get("result") is None:
                seg = {**seg, "result": recorded["result"]}
        if status in ("checkpoint", "missing"):  # one store for all processes of a driver: the file is gone
            notes = list(seg.get("notes", [])) + [
                f"attempt {attempts}: checkpoint {seg['resume']} could not be loaded ({outcome['reason']}); "
                "restarted from scratch"]
            new = self._reserve(ctx, t, int(seg["k"]), int(seg["round"]), 0.0, float(seg["until"]), None, True,
                                notes, attempts + 1, prior=float(seg["charge"]))
            if new is None:
                fail_trial(storage, t._trial_id, "its checkpoint could not be loaded and the budget has nothing "
                           "left to train it again from scratch", segment=(task.key, {**seg, "notes": notes}))
                return []
            return [SegmentTask(t._trial_id, task.key, attempts + 1)]
        if status == "died" and told_to_stop(_beat_of(storage, seg), task.key, attempts):
            # Its worker said it was told to stop (SIGTERM) and was killed before it put the segment back (its
            # scheduler's grace ran out): the scheduler's doing, an interruption as when it puts the segment back
            # in time, not a death.
            status = "stopped"
            outcome = {**outcome, "reason": f"{outcome['reason']} after it was told to stop (SIGTERM)"}
        if status == "stopped":
            self._give_back(ctx, t, task.key, {
                **interrupted(seg, f"attempt {attempts}: {outcome['reason']}; put back"),
                "progress": progress_mark(storage, t, seg), "attempts": attempts + 1})
            return [SegmentTask(t._trial_id, task.key, attempts + 1)]
        # The worker died (killed, out of memory, the machine lost): retry from the same checkpoint and grant.
        # Only deaths without progress count against the candidate (see MAX_DEATHS_WITHOUT_PROGRESS): what the
        # attempt left in the storage is compared with what was there when it started.
        mark = progress_mark(storage, t, seg)
        progressed = "progress" in seg and mark != seg["progress"]
        deaths = int(seg.get("deaths", 0)) + 1
        in_a_row = 0 if progressed else int(seg.get("deaths_in_a_row", 0)) + 1
        how = "after it made progress" if progressed else f"without progress ({in_a_row} in a row)"
        notes = list(seg.get("notes", [])) + [f"attempt {attempts}: {outcome['reason']}; died {how}"]
        seg = {**seg, "deaths": deaths, "deaths_in_a_row": in_a_row, "progress": mark, "notes": notes}
        if in_a_row >= MAX_DEATHS_WITHOUT_PROGRESS or deaths >= MAX_DEATHS:
            why = (f"its segment's worker died {in_a_row} times in a row without progress (no new point, "
                   f"checkpoint or result between two attempts: the candidate, not the machine, is the likely "
                   f"cause; last: {outcome['reason']})" if in_a_row >= MAX_DEATHS_WITHOUT_PROGRESS else
                   f"its segment's worker died {deaths} times ({outcome['reason']})")
            fail_trial(storage, t._trial_id, why, segment=(task.key, seg))
            return []
        self._give_back(ctx, t, task.key, {**seg, "attempts": attempts + 1})
        return [SegmentTask(t._trial_id, task.key, attempts + 1)]

    def _give_back(self, ctx: _Context, t: Any, key: str, seg: dict[str, Any]) -> None:
        """Record the next attempt of a segment taken back from its lost worker, then make its trial claimable.

        Only the process that handles the lost worker's outcome writes here (a driver, or the worker that holds
        the sweep's lease), after it finished the lost attempt's trial (:func:`~sh_scaling.budgeted._attempts.
        take_back`), and while the trial is RUNNING no other process can claim it (a claim is the WAITING to
        RUNNING change, which only one process can win). So every write goes first, and the trial becomes
        claimable last, in one write: the next attempt's own trials are created (its outcome's and its heartbeat's:
        the next worker claims the trial a moment before its own first heartbeat, and one that looked in between
        finds no heartbeat of the lost worker there to take the segment back from a live worker on), then the
        next attempt is recorded. A worker that claims the trial then reads the next attempt's record, whatever it
        scanned before: one that holds a task for the attempt that was lost finds it stale and gives the trial
        back untouched; none trains the lost attempt again, nor overwrites the death or interruption just counted.
        """
        storage = ctx.study._storage
        seg = {**seg, **ctx.new_attempt(t._trial_id, key, int(seg["attempts"]))}
        storage.set_trial_system_attr(t._trial_id, key, seg)
        if t.state == TrialState.RUNNING:
            storage.set_trial_state_values(t._trial_id, TrialState.WAITING)

    def _finish_recorded(self, ctx: _Context, t: Any, key: str, seg: dict[str, Any], recorded: dict[str, Any],
                         why: str) -> None:
        """Fail a candidate whose segment's worker was lost after it recorded its ``train_fn``'s failure (the
        attempt's trial was COMPLETE with it when it was to be taken back), as that worker would have."""
        planned = float(t.system_attrs[BUDGETED_CANDIDATE_KEY]["planned"])
        note = f"attempt {seg['attempts']}: {why} after it recorded the failure of its train_fn"
        finish_attempt(ctx.study._storage, t._trial_id, key, seg, recorded, planned, note=note)

    def _decide(self, ctx: _Context, r: int, alive: list[int], rng: np.random.Generator, rec: dict) -> dict:
        """The round's decision, from the storage, with the simulator's own functions."""
        ctx.lease.check()
        trials = self._trials(ctx)
        scheduled = ctx.strategy.surrogate == SCHEDULE_AWARE
        curves = [planned_curve(t, p, s if scheduled else None)
                  for t, p, s in zip(trials, ctx.planned, ctx.schedules)]
        trained = {c.id: trained_compute(segments(t)) for c, t in zip(curves, trials)}
        ranked = [i for i in alive if trials[i].state != TrialState.FAIL]
        if ctx.replan:
            future = sum(replanned_shares(ctx.shares, ctx.sizes, r + 1, ctx.budget - ctx.total()))
        else:
            future = sum(ctx.shares[r + 1:])
        targets = np.array([min(trained[curves[i].id] + future, ctx.planned[i]) for i in ranked])
        dead = [curves[j] for j in range(len(curves)) if j not in set(ranked)]
        inputs = round_inputs(ctx.strategy, [curves[i] for i in ranked], trained, targets, dead)
        ranking = round_ranking(ctx.strategy, inputs)
        score = ranking.score
        finished = np.array([trained[curves[i].id] >= ctx.planned[i] for i in ranked], bool)
        tiebreak = rng.random(len(ranked))
        n_keep = ctx.sizes[r + 1]
        keep = select_survivors(score, n_keep, finished=finished, tiebreak=tiebreak)
        order = select_survivors(score, len(ranked), finished=finished, tiebreak=tiebreak)
        survivors = [ranked[j] for j in keep]
        storage = ctx.study._storage
        R = len(ctx.sizes)
        for rank, j in enumerate(order, start=1):
            i, tid = ranked[j], trials[ranked[j]]._trial_id
            how = (f"round {r + 1} of {R}: ranked {rank} of {len(ranked)} by {ctx.strategy.name} "
                   f"(score {score[j]:.6g}, target {targets[j]:.6g}); the best {n_keep} go on")
            if trials[i].state.is_finished():
                continue
            if ctx.strategy.ranking in ("forecast", "frontier") and not inputs.fallback[j]:
                if math.isfinite(inputs.mean[j]):
                    storage.set_trial_user_attr(tid, FORECAST_KEY, float(inputs.mean[j]))
            if i in survivors:
                storage.set_trial_user_attr(tid, DECISION_KEY, f"goes on: {how}")
            else:
                storage.set_trial_system_attr(tid, PRUNED_KEY, how)
                storage.set_trial_user_attr(tid, DECISION_KEY, f"pruned: {how}")
                storage.set_trial_state_values(tid, TrialState.PRUNED)
        return {**rec, "n_ranked": len(ranked), "ranked": [ranked[j] for j in order],
                "scores": [_clean(score[j]) for j in order], "targets": [_clean(targets[j]) for j in order],
                "ranked_by": [ranking.ranked_by[j] for j in order],
                "survivors": survivors, "decided_at": _now()}

    def _complete_finished(self, ctx: _Context, alive: list[int]) -> None:
        """Candidates that reached their planned end leave the race with their result."""
        trials = self._trials(ctx)
        for i in alive:
            t = trials[i]
            if t.state == TrialState.WAITING and trained_compute(segments(t)) >= ctx.planned[i]:
                self._finish(ctx, t, i)

    def _settle(self, ctx: _Context, t: Any, i: int) -> None:
        """At the end of the schedule every candidate still waiting is done with."""
        if t.state == TrialState.WAITING:
            self._finish(ctx, t, i)

    def _finish(self, ctx: _Context, t: Any, i: int) -> None:
        curve = planned_curve(t, ctx.planned[i])
        storage = ctx.study._storage
        if len(curve):
            storage.set_trial_state_values(t._trial_id, TrialState.COMPLETE, values=[curve.min_loss])
        elif trained_compute(segments(t)) >= ctx.planned[i]:
            fail_trial(storage, t._trial_id, "it reached its planned end without reporting a finite positive loss")
        else:
            # Trained as far as the schedule allowed, not far enough to be evaluated: no value, no fault.
            why = "the schedule ended before it reported a finite positive loss"
            storage.set_trial_system_attr(t._trial_id, PRUNED_KEY, why)
            storage.set_trial_user_attr(t._trial_id, DECISION_KEY, f"pruned: {why}")
            storage.set_trial_state_values(t._trial_id, TrialState.PRUNED)

    # -------------------------------------------------------------------------------------- bookkeeping
    def _wait_for_plan(self, study: optuna.Study) -> None:
        """The study exists: wait (a while) for the process that created it to finish setting the sweep up."""
        storage, sid = study._storage, study._study_id
        deadline = time.monotonic() + SETUP_WAIT_S
        while BUDGETED_PLAN_KEY not in storage.get_study_system_attrs(sid):
            others = [t for t in study.get_trials(deepcopy=False) if candidate_index(t) is None]
            if others:
                raise ValueError(f"study {study.study_name!r} already has {len(others)} trial(s) that "
                                 "BudgetedHalving did not create; use a new study_name")
            if time.monotonic() > deadline:
                raise ValueError(
                    f"study {study.study_name!r} exists but holds no budgeted sweep after {SETUP_WAIT_S:g} s: it "
                    "was created by other code, or the driver that created it stopped before the sweep was set "
                    "up; use a new study_name (or delete the study)")
            time.sleep(POLL_S)

    def _check_plan(self, study: optuna.Study, plan: dict) -> None:
        """A driver joining a sweep, or restarting it, must ask for the same sweep."""
        self._check_stored(study._storage, study._study_id, study.study_name, plan)

    def _refuse_other_settings(self, storage: Any, study_name: str, plan: dict) -> None:
        """Where the storage already holds this study's plan, refuse other settings before anything is created
        (the checkpoint folder, the study's trials) or written; the check after the study is opened stays."""
        try:
            study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            return
        if BUDGETED_PLAN_KEY in storage.get_study_system_attrs(study_id):
            self._check_stored(storage, study_id, study_name, plan)

    def _check_stored(self, storage: Any, study_id: int, study_name: str, plan: dict) -> None:
        stored = dict(storage.get_study_system_attrs(study_id)[BUDGETED_PLAN_KEY])
        _check_version(storage, study_id, stored, study_name)
        if isinstance(stored.get("strategy"), Mapping):
            stored["strategy"] = _stored_description(stored["strategy"], plan["strategy"])
        mode, wanted = stored.get("mode", "driver"), plan.get("mode", "driver")
        if mode != wanted:
            how = {"driver": "by a driver (BudgetedHalving.run)", "workers": "by workers (BudgetedHalving.work)"}
            raise ValueError(f"study {study_name!r} holds a budgeted sweep run {how[mode]}; it cannot be run "
                             f"{how[wanted]}: call the same method, or use a new study_name")
        # The release may differ by a patch (checked above); everything else must be the same.
        diff = [k for k in plan if k != VERSION_FIELD
                and _jsonable(stored.get(k, _PLAN_DEFAULTS.get(k))) != _jsonable(plan[k])]
        if diff:
            raise ValueError(
                f"study {study_name!r} holds a budgeted sweep with other settings ({', '.join(diff)} differ: "
                f"stored {[stored.get(k) for k in diff]}); a restart must pass the same candidates, budget, "
                "max_compute, reduction_factor, strategy, schedule and seed, or use a new study_name")

    def _artifact_store(self, storage: Any) -> Any:
        """The store the user gave, else the default for the storage (never a location read from the study)."""
        if self.artifact_store is not None:
            return self.artifact_store
        if isinstance(storage, InMemoryStorage):
            return MemoryArtifactStore()
        folder = _default_checkpoint_folder(storage)
        Path(folder).mkdir(parents=True, exist_ok=True)
        return FileSystemArtifactStore(folder)

    def _ensure_trials(self, study: optuna.Study, configs: list[dict], planned: list[float],
                       schedules: list[dict[str, Any] | None]) -> list[int]:
        have = {candidate_index(t): t._trial_id for t in study.get_trials(deepcopy=False)}
        # One distribution per parameter for the whole study (RDB storages refuse a parameter whose
        # distribution changes from trial to trial): every value the candidates give it.
        choices: dict[str, list[Any]] = {}
        for config in configs:
            for k, v in config.items():
                if _is_param(v) and not any(type(v) is type(u) and v == u for u in choices.setdefault(k, [])):
                    choices[k].append(v)
        for i, (config, p, sched) in enumerate(zip(configs, planned, schedules)):
            if i in have:
                continue
            params = {k: v for k, v in config.items() if _is_param(v)}
            attrs: dict[str, Any] = {BUDGETED_CANDIDATE_KEY: {"index": i, "config": config, "planned": p}}
            if sched is not None:  # where from_study and the dashboard read a trial's schedule
                attrs[SCHEDULE_KEY] = sched
            trial = optuna.trial.create_trial(
                state=TrialState.WAITING, params=params,
                distributions={k: CategoricalDistribution(choices[k]) for k in params}, system_attrs=attrs,
            )
            study.add_trial(trial)
        have = {candidate_index(t): t._trial_id for t in study.get_trials(deepcopy=False)}
        return [have[i] for i in range(len(configs))]

    def _trial_ids(self, study: optuna.Study, configs: list[dict]) -> list[int]:
        have = {candidate_index(t): t._trial_id for t in study.get_trials(deepcopy=False)}
        return [have[i] for i in range(len(configs))]

    def _trials(self, ctx: _Context) -> list[Any]:
        """Every candidate's trial, in candidate order, from one read of the study (one storage call, however
        many candidates: the steps that hold the sweep's lease read their candidates this way, not one by one,
        since every other worker waits while they run)."""
        by_id = {t._trial_id: t for t in ctx.study.get_trials(deepcopy=False)}
        return [by_id[tid] for tid in ctx.trial_ids]

    def _take_back(self, ctx: _Context, why: str) -> None:
        """Put every candidate trial left RUNNING back to WAITING: its segment is retried on the next run."""
        storage = ctx.study._storage
        for tid in ctx.trial_ids:
            t = storage.get_trial(tid)
            if t.state != TrialState.RUNNING:
                continue
            for s in segments(t):
                if s["status"] == "reserved":
                    # The driver stopping is not the segment's fault: it is noted and counted apart from its
                    # worker's deaths, which alone can fail the candidate.
                    key = budgeted_segment_key(s["k"])
                    storage.set_trial_system_attr(tid, key, interrupted(s, f"attempt {s['attempts']}: {why}"))
            storage.set_trial_state_values(tid, TrialState.WAITING)

    def _write_ledger(self, ctx: _Context) -> None:
        summary = ledger(self._trials(ctx), ctx.budget)
        ctx.study._storage.set_study_system_attr(ctx.study._study_id, BUDGETED_LEDGER_KEY, summary)


class ArtifactStoreNotShared(ValueError):
    """A worker's artifact store lacks a checkpoint another worker recorded: the store is not shared."""


#: Plan settings added after plans were first stored, with the value a plan that lacks them was run with.
_PLAN_DEFAULTS: dict[str, Any] = {"replan": False, "schedules": None}


class _Context:
    """What one call of :meth:`BudgetedHalving.run` works with."""

    def __init__(self, study: optuna.Study, trial_ids: list[int], planned: list[float], budget: float,
                 sizes: list[int], shares: list[float], strategy: Strategy, seed: int, lease: Lease,
                 schedules: list[dict[str, Any] | None]) -> None:
        self.study, self.trial_ids, self.planned, self.budget = study, trial_ids, planned, budget
        self.sizes, self.shares, self.strategy, self.seed = sizes, shares, strategy, seed
        self.lease = lease
        #: Each candidate's learning-rate schedule, from the plan's descriptions (``None``: none stated).
        self.schedules: list[Schedule | None] = [None if d is None else schedule_from_dict(d) for d in schedules]
        self.replan = False
        self.store: Any = None
        self.keep_checkpoints = "last"
        #: Whether a worker should stop waiting for the lease (it was told to stop).
        self.stop_requested: Callable[[], bool] = lambda: False
        # Every segment's grant, kept current by the one process that writes grants.
        self.charges: dict[tuple[int, int], float] = {}
        self._attempts_study_id: int | None = None

    def new_attempt(self, trial_id: int, key: str, attempt: int) -> dict[str, int]:
        """The trials of attempt ``attempt`` of segment ``key`` (its outcome's and its heartbeat's, see
        :mod:`sh_scaling.budgeted._attempts`), in the companion study ``<study_name>:attempts``, created the first
        time it is needed; their ids as the segment's record names them."""
        storage = self.study._storage
        if self._attempts_study_id is None:
            name = attempts_study_name(self.study.study_name)
            study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
            self._attempts_study_id = study._study_id
        return new_attempt(storage, self._attempts_study_id, self.study._study_id, trial_id, key, attempt)

    def heartbeats(self) -> dict[int, dict[str, Any]]:
        """The heartbeats of the attempts that may be held now (:func:`~sh_scaling.budgeted._workers.heartbeats`):
        one read."""
        if self._attempts_study_id is None:
            try:
                name = attempts_study_name(self.study.study_name)
                self._attempts_study_id = self.study._storage.get_study_id_from_name(name)
            except KeyError:
                return {}  # no attempt granted yet
        return heartbeats(self.study._storage, self._attempts_study_id)

    def total(self) -> float:
        return math.fsum(self.charges.values())


# ------------------------------------------------------------------------------------------------ helpers
def _configs(candidates: Any) -> list[dict[str, Any]]:
    if hasattr(candidates, "to_dict") and hasattr(candidates, "columns"):
        candidates = candidates.to_dict("records")
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise ValueError(f"candidates must be a sequence of configurations (mappings), got {type(candidates).__name__}")
    if not candidates:
        raise ValueError("candidates is empty: nothing to race")
    configs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, c in enumerate(candidates):
        if not isinstance(c, Mapping):
            raise ValueError(f"candidate {i} is a {type(c).__name__}, not a mapping of settings")
        try:
            config = json.loads(json.dumps({str(k): v for k, v in c.items()}, default=_plain, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"candidate {i} cannot be stored as JSON: {exc}") from None
        key = json.dumps(config, sort_keys=True)
        if key in seen:
            raise ValueError(f"candidates {seen[key]} and {i} are the same configuration {config}: race each once")
        seen[key] = i
        configs.append(config)
    return configs


def _strategy(strategy: Any) -> Strategy:
    """The :class:`~sh_scaling.simulation.Strategy` itself, or the one a name or spec (``"SH+MPL-SE:unseen=reach"``)
    stands for, read by :func:`~sh_scaling.simulation.parse_strategy` (its one-line error naming the spec)."""
    if isinstance(strategy, Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise ValueError(f"strategy {strategy!r}: pass a name from {sorted(STRATEGIES)}, a spec NAME[:KEY=VALUE...] "
                         "or a Strategy")
    return parse_strategy(strategy)


def _schedules(spec: Any, configs: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Each candidate's learning-rate schedule as stored (its ``to_dict()``; ``None``: none), from ``schedule=``:
    ``None``, a :class:`~sh_scaling.schedules.Schedule` or its ``to_dict()`` (every candidate's), or a function
    of the candidate's config returning one of those or ``None``."""
    if spec is None:
        return [None] * len(configs)
    if isinstance(spec, (Schedule, Mapping)):
        try:
            same = as_schedule(spec).to_dict()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"schedule={spec!r} is not a learning-rate schedule: {exc}") from None
        return [same] * len(configs)
    if not callable(spec):
        raise ValueError(f"schedule={spec!r}: pass a Schedule, its to_dict(), or a function of the candidate's "
                         "config returning one (or None)")
    out: list[dict[str, Any] | None] = []
    for i, config in enumerate(configs):
        try:
            value = spec(dict(config))
        except Exception as exc:  # noqa: BLE001 - named, so the user sees which function failed
            raise ValueError(f"schedule raised {type(exc).__name__}: {exc} for candidate {i}") from exc
        if value is not None and not isinstance(value, (Schedule, Mapping)):
            raise ValueError(f"schedule of candidate {i} is {value!r}, not a Schedule, its to_dict() or None")
        try:
            out.append(None if value is None else as_schedule(value).to_dict())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"schedule of candidate {i}, {value!r}, is not a learning-rate schedule: {exc}") from None
    return out


def _named_strategy(described: Mapping[str, Any]) -> Strategy | None:
    """The named strategy, with its ``unseen`` and ``few`` rules, that a plan's description is of (``None``: a
    custom one). The name is a key of :data:`~sh_scaling.simulation.STRATEGIES` or a spec of one with settings
    (``"SH+MPL-SE:unseen=reach"``, as :func:`~sh_scaling.simulation.parse_strategy` names what it makes)."""
    described = _stored_description(described)
    name = described.get("name")
    if not isinstance(name, str):
        return None
    try:
        strat = dataclasses.replace(parse_strategy(name), unseen=described.get("unseen", "last"),
                                    few=described.get("few", "last"))
    except ValueError:  # not a name or spec the library knows, or settings its ranking refuses
        return None
    return strat if _jsonable(_describe(strat)) == _jsonable(described) else None


def _is_param(v: Any) -> bool:
    """A value Optuna can hold as a categorical param (the dashboard then shows it)."""
    return v is None or isinstance(v, (bool, int, float, str))


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy scalars from a DataFrame
        return v.item()
    raise TypeError(f"{v!r} is not JSON-serialisable")


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _per_candidate(name: str, spec: Any, config: dict, i: int, default: float) -> float:
    if spec is None:
        return default
    try:
        value = spec(dict(config)) if callable(spec) else spec
    except Exception as exc:  # noqa: BLE001 - named, so the user sees which function failed
        raise ValueError(f"{name} raised {type(exc).__name__}: {exc} for candidate {i}") from exc
    return _positive(f"{name} of candidate {i}", value)


def _describe(s: Strategy) -> dict[str, Any]:
    """Every setting of a strategy, as the plan stores it: what a restart or a worker must match."""
    described = {"name": s.name, "ranking": s.ranking, "surrogate": _describe_surrogate(s.surrogate),
                 "optimism": s.optimism, "warmup_fraction": s.warmup_fraction, "margin": s.margin}
    if s.unseen != "last":  # only where it is set, so that plans stored before it existed still match
        described["unseen"] = s.unseen
    if s.few != "last":
        described["few"] = s.few
    return described


def _describe_surrogate(surrogate: Any) -> Any:
    """A surrogate as the plan stores it: its name, or a prototype's class and settings (``get_params()``, a
    value JSON cannot hold by its ``to_dict()``, list or ``repr``; an object whose ``repr`` is only its address
    by its class name)."""
    if surrogate is None or isinstance(surrogate, str):
        return surrogate
    params = surrogate.get_params(deep=False) if hasattr(surrogate, "get_params") else {}
    return {"class": type(surrogate).__name__,
            "params": json.loads(json.dumps(params, sort_keys=True, default=_setting))}


def _setting(v: Any) -> Any:
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if hasattr(v, "tolist"):
        return v.tolist()
    text = repr(v)
    return type(v).__name__ if " at 0x" in text else text


def _stored_description(stored: Mapping[str, Any], wanted: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A strategy description read from a plan, in the form :func:`_describe` writes today.

    Plans stored by releases that described a strategy without its ``margin``, and a surrogate prototype by its
    class name alone, are read as follows: the ``margin`` is that of the named strategy or spec the description
    names (the margin that named strategy has); for a custom strategy, whose margin was not recorded, that of the
    strategy asking to join (``wanted``; no margin without one), as those releases compared. A prototype's class
    name matches a prototype of that class."""
    out = dict(stored)
    if "margin" not in out:
        named = None
        if isinstance(out.get("name"), str):
            try:
                named = parse_strategy(out["name"])
            except ValueError:
                named = None
        if named is not None:
            out["margin"] = named.margin
        else:
            out["margin"] = None if wanted is None else wanted.get("margin")
    ours = None if wanted is None else wanted.get("surrogate")
    if isinstance(out.get("surrogate"), str) and isinstance(ours, dict) and ours.get("class") == out["surrogate"]:
        out["surrogate"] = ours
    return out


def _fingerprint(configs: list[dict], planned: list[float]) -> str:
    text = json.dumps([configs, planned], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, sort_keys=True))


def _clean(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsum(charges: dict, extra: float) -> float:
    # Exact summation: the total is the same whatever order the segments are added in, so that "never
    # passes the budget" holds for every reader of the ledger, not only up to rounding.
    return math.fsum([*charges.values(), extra])


def _largest_fitting(charges: dict, budget: float) -> float:
    """The largest grant that keeps the exact total within ``budget``."""
    free = budget - math.fsum(charges.values())
    while free > 0 and _fsum(charges, free) > budget:
        free = math.nextafter(free, 0.0)
    return free


def _default_checkpoint_folder(storage: Any) -> str:
    """``<file>.checkpoints`` next to a journal file or SQLite database; any other storage needs a store given."""
    backend = getattr(storage, "_backend", storage)
    path = getattr(backend, "_file_path", None)  # JournalFileBackend
    engine = getattr(backend, "engine", None)  # RDBStorage
    if path is None and engine is not None and engine.url.get_backend_name() == "sqlite":
        path = engine.url.database if engine.url.database not in (None, "", ":memory:") else None
    if path:
        return f"{os.path.abspath(path)}.checkpoints"
    raise ValueError(
        f"BudgetedHalving needs artifact_store= with storage {_describe_storage(storage)}: checkpoints must go where "
        "every process of the sweep, on any machine and after a reboot, can read them (a FileSystemArtifactStore "
        "on a shared file system, an optuna.artifacts.Boto3ArtifactStore or GCSArtifactStore); only a journal "
        "file or SQLite database has a default (a folder next to it)")


def _beat_of(storage: Any, seg: dict[str, Any]) -> dict[str, Any]:
    """The last heartbeat of a segment's attempt (``{}`` if none)."""
    if seg.get("beat_trial") is None:
        return {}
    return dict(storage.get_trial(int(seg["beat_trial"])).system_attrs.get(BUDGETED_WORKER_KEY) or {})


def _check_version(storage: Any, study_id: int, stored: dict[str, Any], study_name: str) -> None:
    """Refuse a process of another release (:mod:`~sh_scaling.budgeted._compat`), and say so in the study too."""
    try:
        check_joinable(stored, study_name)
    except VersionMismatch as exc:
        record_worker_error(storage, study_id, str(exc))
        raise


#: Tries to open a storage whose first users race to create its tables (see :func:`_connect`).
SCHEMA_TRIES = 10


def _connect(storage: Any, retry_for: float = RETRY_FOR_S) -> Any:
    """The Optuna storage for a URL or storage object, with an error that names a URL that cannot be reached.

    Processes that open a new database at the same moment (the tasks of a job array, each running
    ``sh-scaling start``) race to create Optuna's tables, and all but one fail (on PostgreSQL 15, 7 of 8
    processes started together: a duplicate key in ``pg_type``; optuna/optuna#1092). A loser tries again
    after a short random wait, when the tables are there.

    A server that is there but takes no new connection now (PostgreSQL at ``max_connections``: ``FATAL: sorry,
    too many clients already``; see :func:`~sh_scaling.budgeted._retry.is_server_busy`) is tried again with
    the backoff of every storage call (:class:`~sh_scaling.budgeted._retry.RetryingStorage`: 0.25 s, then
    twice as long each time, at most 30 s) for up to ``retry_for`` seconds (default
    :data:`~sh_scaling.budgeted._retry.RETRY_FOR_S`, 300), with one warning logged (logger
    ``sh_scaling.budgeted``) before each try; then ``ValueError``. Workers started together beyond the
    server's limit so wait for connections to free up instead of failing at once. A server that cannot be
    reached at all (a wrong host or port, a refused connection, a wrong password) is said at once: its URL is
    more likely wrong than the server busy.
    """
    rng = np.random.default_rng()
    waits = backoff(retry_for)
    schema_races = 0
    while True:
        try:
            return optuna.storages.get_storage(storage)
        except Exception as exc:  # noqa: BLE001 - a driver, a database error, a refused connection: one cause
            if _lost_schema_race(exc):
                schema_races += 1
                if schema_races < SCHEMA_TRIES:
                    time.sleep(float(rng.uniform(0.1, 0.5)))
                    continue
            elif is_server_busy(exc):
                wait = next(waits, None)
                if wait is not None:
                    _logger.warning("storage %r takes no new connection (%s); trying again in %.3g s",
                                    _hide_password(storage), _first_line(exc), wait)
                    time.sleep(wait)
                    continue
                _cannot_reach(storage, exc, f" (tried for {retry_for:g} s)")
            _cannot_reach(storage, exc)


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether opening a storage failed because another process was creating the same tables."""
    from sqlalchemy import exc as sa  # optuna requires sqlalchemy

    cause: BaseException | None = exc
    while cause is not None:  # Optuna wraps some (StorageInternalError "during the commit")
        text = str(cause)
        if isinstance(cause, sa.DBAPIError) and ("already exists" in text or "duplicate key" in text):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _cannot_reach(storage: Any, exc: Exception, how: str = "") -> NoReturn:
    """Raise the ``ValueError`` that names the storage (without its password) and the cause."""
    raise ValueError(f"cannot reach storage {_hide_password(storage)!r}{how}: {type(exc).__name__}: "
                     f"{_first_line(exc)}") from exc


def _hide_password(storage: Any) -> Any:
    if isinstance(storage, str) and "@" in storage:
        scheme, _, rest = storage.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return storage


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else ""


def _describe_storage(storage: Any) -> str:
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", None)
    if engine is not None:
        return repr(engine.url.render_as_string(hide_password=True))
    return type(backend).__name__


def _check_shareable(storage: Any, train_fn: Callable[..., Any], artifact_store: Any) -> None:
    """Worker processes need a storage they can reach and a train_fn they can unpickle."""
    if isinstance(storage, InMemoryStorage):
        raise ValueError("n_workers > 1 needs a storage the worker processes share: a JournalStorage file or an RDB "
                         "URL, not the in-memory default")
    try:
        pickle.dumps((train_fn, storage, artifact_store))
    except Exception as exc:  # noqa: BLE001 - any pickling error means the same to the user
        raise ValueError(f"n_workers > 1 runs train_fn in spawned worker processes, so train_fn, the storage and the "
                         f"artifact store must be picklable (a module-level function): {exc}") from exc


def _check_writable(store: Any) -> None:
    """Write and remove a probe, so that a store that cannot take checkpoints fails before any training."""
    probe = f"sh_scaling-probe-{uuid.uuid4().hex}"
    try:
        store.write(probe, BytesIO(b"probe"))
    except Exception as exc:  # noqa: BLE001 - any failure means the same: checkpoints could not be kept
        raise ValueError(f"artifact_store {store!r} is not writable ({type(exc).__name__}: {exc}); checkpoints "
                         "could not be kept, so paused candidates could not resume") from exc
    try:
        store.remove(probe)
    except Exception:  # noqa: BLE001 - a probe left behind is harmless
        pass
