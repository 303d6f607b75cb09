"""How far a sweep passes its ``ComputeBudget`` with 1, 4 and 8 trials running at once.

Each round is a fresh study whose objective trains a model of one of three sizes (planned compute 1, 2 or 4,
chosen by a seeded sampler), reporting 5 evaluations at equal shares of its plan, each taking time in
proportion to the compute (10 ms per unit). The pruner is a seeded coin: a third of the trials stop after
their second evaluation, so that some budget is given back. The budget is five trials' planned compute (5 x
the mean plan, 11.67). Two usages:

* ``callback``: ``study.optimize(..., callbacks=[budget])`` only, the usage of earlier releases (the trial's
  plan is known to the callback through ``ComputeBudget(max_compute=...)``);
* ``reserve``: the same plus ``budget.reserve(trial)`` at the start of the objective.

Trials run as threads (``n_jobs``, in-memory storage) or as worker processes (one trial at a time each) on a
journal file, on SQLite, and on PostgreSQL when ``SH_SCALING_TEST_POSTGRES_URL`` is set; the processes meet at
a barrier before ``study.optimize``, so that their first trials start together. Per round it counts:

* ``overshoot``: spent / budget - 1, where spent is the compute every trial reported (negative: under budget);
* ``refused``: trials that ``reserve`` pruned before they trained; ``trials``: trials started;
* ``running``: trials left RUNNING; ``bad_exits``: worker processes that did not exit 0 in time; ``stopped``:
  whether every worker's ``study.optimize`` stopped before its ``n_trials`` (100) ran out.

    python benchmarks/bench_compute_budget.py                      # 3 seeds, both usages, threads and processes
    python benchmarks/bench_compute_budget.py --seeds 5 --kinds threads journal --usages reserve

The ``callback`` rows measure what the earlier callback does: its rule is unchanged for trials that reserve
nothing (run them against an older checkout with ``--usages callback`` to see the same numbers).
Writes ``results/compute_budget/rounds.csv`` and ``summary.csv``/``summary.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd

import sh_scaling
from sh_scaling import keys
from sh_scaling.benchmarking import output_dir, write_summary
from sh_scaling.pruning import reported_compute

# Read through getattr so that the callback rows also run against releases that had no reservations.
_RESERVATION = getattr(keys, "BUDGET_RESERVATION_KEY", "sh_scaling:budget:reservation")

SIZES = (1.0, 2.0, 4.0)
BUDGET = 5 * sum(SIZES) / len(SIZES)
N_EVALS = 5
EVAL_S_PER_UNIT = 0.01
PRUNE_AT, PRUNE_P = 2, 1 / 3
N_TRIALS = 100
_TIMEOUT_S = 180


def _planned(params: dict) -> float:
    return float(params["size"])


def make_objective(budget: sh_scaling.ComputeBudget, usage: str):
    def objective(trial: optuna.Trial) -> float:
        size = trial.suggest_categorical("size", SIZES)
        draw = trial.suggest_float("prune_draw", 0.0, 1.0)
        if usage == "reserve":
            budget.reserve(trial)
        for k in range(1, N_EVALS + 1):
            time.sleep(EVAL_S_PER_UNIT * size)
            sh_scaling.report(trial, 1.0 / (size * k), compute=size * k / N_EVALS, max_compute=size)
            if k == PRUNE_AT and draw < PRUNE_P:
                raise optuna.TrialPruned()
        return 1.0 / size

    return objective


def _storage(kind: str, where: str) -> optuna.storages.BaseStorage | str:
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(where))
    return where  # an RDB URL


def _study(kind: str, where: str, name: str, seed: int) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=_storage(kind, where),
                             sampler=optuna.samplers.RandomSampler(seed))


def _worker(kind: str, where: str, name: str, usage: str, seed: int, barrier) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(kind, where, name, seed)
    budget = sh_scaling.ComputeBudget(BUDGET, max_compute=_planned)
    objective, ran = make_objective(budget, usage), []

    def counted(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return objective(trial)

    barrier.wait(timeout=_TIMEOUT_S)
    study.optimize(counted, n_trials=N_TRIALS, callbacks=[budget])
    sys.exit(0 if len(ran) < N_TRIALS else 3)  # 3: this worker's study.optimize did not stop


def count(study: optuna.Study) -> dict:
    """spent, overshoot, trials, refused and running of a finished round's study."""
    trials = study.get_trials(deepcopy=False)
    spent = sum(max(reported_compute(t).values(), default=0.0) for t in trials)
    refused = sum(1 for t in trials if (t.system_attrs.get(_RESERVATION) or {}).get("state") == "refused")
    return {"spent": spent, "overshoot": spent / BUDGET - 1, "trials": len(trials) - refused, "refused": refused,
            "running": sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)}


def run_round(usage: str, kind: str, where: str, parallel: int, seed: int) -> dict:
    """One round on a fresh study. ``kind``: ``"threads"`` (in-memory, ``n_jobs=parallel``), or ``"journal"``
    (``where``: a directory), ``"sqlite"`` (``where``: a directory) or ``"postgres"`` (``where``: the URL),
    each with ``parallel`` worker processes."""
    name = f"budget-{usage}-{parallel}-{seed}-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    if kind == "threads":
        study = optuna.create_study(study_name=name, sampler=optuna.samplers.RandomSampler(seed))
        budget = sh_scaling.ComputeBudget(BUDGET, max_compute=_planned)
        study.optimize(make_objective(budget, usage), n_trials=N_TRIALS, n_jobs=parallel, callbacks=[budget])
        row = {**count(study), "bad_exits": 0, "stopped": len(study.trials) < N_TRIALS}
    else:
        if kind == "journal":
            where = str(Path(where) / f"{name}.log")
        elif kind == "sqlite":
            where = f"sqlite:///{Path(where) / name}.db"
        optuna.create_study(study_name=name, storage=_storage(kind, where))
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(parallel)
        procs = [ctx.Process(target=_worker, args=(kind, where, name, usage, 1000 * seed + w, barrier))
                 for w in range(parallel)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=_TIMEOUT_S)
            if p.exitcode is None:  # a worker stuck: stop it, and it shows as a bad exit
                p.kill()
                p.join()
        study = optuna.load_study(study_name=name, storage=_storage(kind, where))
        row = {**count(study), "bad_exits": sum(p.exitcode not in (0, 3) for p in procs),
               "stopped": all(p.exitcode == 0 for p in procs)}
        if kind == "postgres":
            optuna.delete_study(study_name=name, storage=where)
    return {"usage": usage, "kind": kind, "parallel": parallel, "seed": seed, **row,
            "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--usages", nargs="+", default=["callback", "reserve"], choices=["callback", "reserve"])
    ap.add_argument("--kinds", nargs="+", default=["threads", "journal", "sqlite", "postgres"],
                    choices=["threads", "journal", "sqlite", "postgres"])
    ap.add_argument("--out", default="compute_budget")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
    kinds = [k for k in args.kinds if k != "postgres" or url]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            for usage in args.usages:
                for parallel in args.parallel:
                    for seed in range(args.seeds):
                        rows.append(run_round(usage, kind, url if kind == "postgres" else tmp, parallel, seed))
                        print(f"{rows[-1]}", file=sys.stderr)
    if "postgres" in args.kinds and not url:
        print("PostgreSQL skipped: SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run shows how to start a server)")
    df = pd.DataFrame(rows)
    out = output_dir(args.out)
    df.to_csv(out / "rounds.csv", index=False)
    summary = df.groupby(["kind", "parallel", "usage"], sort=False).agg(
        seeds=("seed", "size"),
        mean_overshoot=("overshoot", "mean"),
        max_overshoot=("overshoot", "max"),
        trials=("trials", "sum"),
        refused=("refused", "sum"),
        running=("running", "sum"),
        bad_exits=("bad_exits", "sum"),
        all_stopped=("stopped", "all"),
        median_round_s=("wall_s", "median"),
    ).reset_index()
    print(write_summary(summary, out, notes=[
        f"Budget {BUDGET:.4g} = five trials' mean planned compute (plans {', '.join(f'{s:g}' for s in SIZES)}); "
        f"overshoot = spent / budget - 1 (negative: under budget); max over {args.seeds} seeds.",
    ]))
    reserved = summary[summary.usage == "reserve"]
    ok = (reserved.max_overshoot <= 1e-9).all() and not summary[["running", "bad_exits"]].to_numpy().any()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
