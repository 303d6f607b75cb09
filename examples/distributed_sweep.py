"""Many workers on one study: N processes share a sweep through a journal file (default) or any storage URL.

Every worker builds its own sampler and pruner; everything they share lives in the study's storage (the
pruner's rung decisions and each report's compute are trial attributes), so the workers can equally be on
other machines pointed at the same PostgreSQL database.

The "training" is the Chinchilla stand-in of ``examples/pruner_quickstart.py`` (loss after D tokens of an
N-parameter model, Hoffmann et al. 2022, with noise), slowed down a little per evaluation so that workers
interleave as real ones do. Replace ``objective`` with your training run.

Run::

    python examples/distributed_sweep.py --workers 4 --trials 64
    python examples/distributed_sweep.py --workers 4 --storage postgresql+psycopg2://user:pw@host/db

and watch it live (``pip install optuna-dashboard``)::

    optuna-dashboard results/distributed_sweep.journal            # the default journal file
    optuna-dashboard postgresql+psycopg2://user:pw@host/db         # or the storage URL you gave

The script ends by checking that every trial is accounted for: as many trials as asked for, each complete or
pruned (none left running), and every reported loss with its compute. It exits with status 1 otherwise.
Ctrl-C stops every worker; the trials they were running are marked failed (exit status 130). A worker stopped
with SIGTERM does the same. A worker killed outright (SIGKILL, a lost machine) cannot: with an RDB storage the
others fail its trial after the heartbeat grace period (20 s here).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.constants import HOFFMANN_2022
from sh_scaling.pruning import reported_compute

N_EVALS = 16
DEFAULT_JOURNAL = Path("results/distributed_sweep.journal")


def storage_from(spec: str) -> optuna.storages.BaseStorage:
    """A storage from a URL (``postgresql://...``, ``mysql://...``, ``sqlite:///...``) or a journal file path."""
    if "://" in spec:
        # Heartbeats: a worker that dies mid-trial has its trial failed by the others after the grace period.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(spec, heartbeat_interval=5, grace_period=20)
    path = Path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def max_compute(params: dict) -> float:
    """Training compute the configuration is meant to reach: 6 N D (Kaplan et al. 2020)."""
    return 6.0 * params["n_params"] * params["tokens"]


def objective(trial: optuna.Trial, delay: float) -> float:
    n_params = trial.suggest_float("n_params", 1e7, 1e9, log=True)
    tokens = trial.suggest_float("tokens", 1e8, 2e10, log=True)
    trial.set_user_attr("worker_pid", mp.current_process().pid)
    rng = np.random.default_rng(trial.number)
    k = HOFFMANN_2022
    loss = float("nan")
    for seen in np.geomspace(tokens / 50, tokens, N_EVALS):
        time.sleep(delay)  # stands in for training up to `seen` tokens
        loss = (k.E + k.A / n_params**k.alpha + k.B / seen**k.beta) * float(np.exp(rng.normal(0, 0.003)))
        sh_scaling.report(trial, loss, compute=6.0 * n_params * seen)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def worker(storage_spec: str, study_name: str, n_trials: int, seed: int, delay: float) -> None:
    # A worker stopped with SIGTERM (a job scheduler, `kill`) ends like one stopped with Ctrl-C: study.optimize
    # marks its running trial failed before the process exits, so no trial is left RUNNING.
    signal.signal(signal.SIGTERM, _interrupt)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage_from(storage_spec),
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=8),
        pruner=sh_scaling.SurrogateHalvingPruner(max_compute=max_compute, min_compute=1e16),
    )
    try:
        study.optimize(lambda t: objective(t, delay), n_trials=n_trials)
    except KeyboardInterrupt:
        sys.exit(130)


def account(study: optuna.Study, expected: int, interrupted: bool = False) -> list[str]:
    """What is wrong with the study's bookkeeping (empty when every trial is accounted for).

    After an interruption the trials that were running must be failed, never left running.
    """
    trials = study.get_trials(deepcopy=False)
    problems = []
    if len(trials) != expected:
        problems.append(f"{len(trials)} trials in the study, {expected} expected")
    finished = (TrialState.COMPLETE, TrialState.PRUNED) + ((TrialState.FAIL,) if interrupted else ())
    for t in trials:
        if t.state not in finished:
            problems.append(f"trial {t.number} is {t.state.name}")
        compute = reported_compute(t)
        missing = [s for s in t.intermediate_values if s not in compute]
        if missing:
            problems.append(f"trial {t.number}: steps {missing} have no compute")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--trials", type=int, default=64, help="trials in all, split between workers")
    parser.add_argument("--storage", default=str(DEFAULT_JOURNAL),
                        help=f"storage URL or journal file path (default {DEFAULT_JOURNAL})")
    parser.add_argument("--study-name", default=None, help="default: a new name per run")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per evaluation (simulated training)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.trials < args.workers:
        parser.error(f"--trials ({args.trials}) must be at least --workers ({args.workers})")

    name = args.study_name or f"distributed-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    study = optuna.create_study(study_name=name, storage=storage_from(args.storage))
    shares = [args.trials // args.workers + (i < args.trials % args.workers) for i in range(args.workers)]
    print(f"study {name!r} on {args.storage}: {args.workers} workers, {args.trials} trials")
    print(f"watch it: optuna-dashboard {args.storage}")

    ctx = mp.get_context("spawn")  # fresh interpreters, as on separate machines
    procs = [ctx.Process(target=worker, args=(args.storage, name, n, seed, args.delay))
             for seed, n in enumerate(shares)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    interrupted = False
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers too (one process group): each fails its running trial and exits.
        for p in procs:
            p.join()
        print("interrupted: the trials that were running are marked failed")
        interrupted = True
        args.trials = len(study.get_trials(deepcopy=False))  # account for what was started
    seconds = time.perf_counter() - t0

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    pids = {t.user_attrs.get("worker_pid") for t in trials}
    spent = sum(max(reported_compute(t).values()) for t in trials if t.intermediate_values)
    exhaustive = sum(max_compute(t.params) for t in trials if t.params)
    print(f"{len(trials)} trials in {seconds:.1f} s from {len(pids)} worker processes: "
          f"{states.count(TrialState.COMPLETE)} complete, {states.count(TrialState.PRUNED)} pruned, "
          f"{states.count(TrialState.FAIL)} failed, {states.count(TrialState.RUNNING)} running")
    if exhaustive:
        print(f"compute spent {spent:.3g} FLOPs = {spent / exhaustive:.0%} of training every trial to its end")
    print(f"worker exit codes: {[p.exitcode for p in procs]}")
    problems = account(study, args.trials, interrupted)
    ok_exit = (0, 130) if interrupted else (0,)
    problems += [f"worker {i} exited with {p.exitcode}" for i, p in enumerate(procs) if p.exitcode not in ok_exit]
    if problems:
        print("NOT accounted for:\n  " + "\n  ".join(problems))
        return 1
    print("every trial accounted for")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
