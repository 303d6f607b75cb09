"""Worker processes racing at the pruner's first rungs, with the pruner's default settings.

Each round is a fresh study shared by 4 worker processes. Every worker runs 3 trials one after the other, each
of its own model size (12 sizes from 1 to 7.5), reporting ``2.5 + q / size**0.3 + 4 (c / size)**-0.4`` at 12
compute values from ``size`` to ``max_compute = 20 * size``. The four trials of a wave wait for one another
(a barrier) and make their third report at the same moment: with ``min_compute=None`` (the default) that is the
first report a rung can be decided at, and where the pruner of commit 1ff1480 fixed the study's rung grid from
the first arrival's compute, so that workers reading the study at the same moment used different grids.

Per study it counts:

* ``grids``: distinct rung grids behind the records (a record at rung ``k`` with compute ``c`` lies on the
  grid through ``c / rung_factor**k``); must be 1, and ``off_grid`` (records whose compute is not
  :func:`sh_scaling.halving.rung_compute` ``(k)``) must be 0;
* ``running``: trials left RUNNING or WAITING at the end; ``failed``: trials that failed;
* ``missing``: reports the workers made that are not in storage with both their loss and their compute.

    python benchmarks/bench_pruner_race.py              # 20 rounds on a journal file, and on PostgreSQL when
                                                        # SH_SCALING_TEST_POSTGRES_URL is set
    python benchmarks/bench_pruner_race.py --rounds 3

Writes ``results/pruner_race/race.csv`` (one row per round) and ``summary.csv``/``summary.md``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sh_scaling.benchmarking import output_dir, write_summary
from sh_scaling.halving import rung_compute
from sh_scaling.keys import RUNG_PREFIX
from sh_scaling.pruning import SurrogateHalvingPruner, report, reported_compute

N_WORKERS = 4
TRIALS_PER_WORKER = 3
N_REPORTS = 12
#: The report at which the workers meet: the third, the first a rung can be decided at by default.
MEET_AT = 2
RUNG_FACTOR = inspect.signature(SurrogateHalvingPruner).parameters["rung_factor"].default
_TIMEOUT_S = 120


def _max_compute(params: dict) -> float:
    return 20.0 * params["size"]


def _size(worker: int, wave: int) -> float:
    return 2.0 ** ((worker + N_WORKERS * wave) / 4)


def _curve(size: float, quality: float) -> tuple[np.ndarray, np.ndarray]:
    compute = size * np.geomspace(1.0, 20.0, N_REPORTS)
    return compute, 2.5 + quality / size**0.3 + 4.0 * (compute / size) ** -0.4


def _storage(spec: tuple[str, str]) -> optuna.storages.BaseStorage:
    kind, where = spec
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(where))
    return optuna.storages.RDBStorage(where)


def _worker(spec, study_name, worker, seed, barrier, made) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=study_name, storage=_storage(spec),
                              pruner=SurrogateHalvingPruner(max_compute=_max_compute))
    rng = np.random.default_rng(seed)
    for wave in range(TRIALS_PER_WORKER):
        trial = study.ask()
        size = trial.suggest_float("size", _size(worker, wave), _size(worker, wave))
        compute, loss = _curve(size, float(rng.uniform(1.0, 3.0)))
        state = optuna.trial.TrialState.COMPLETE
        for step, (c, value) in enumerate(zip(compute, loss)):
            if step == MEET_AT:
                barrier.wait(timeout=_TIMEOUT_S)
            report(trial, float(value), compute=float(c))
            with made.get_lock():
                made.value += 1
            if trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, float(loss[-1]) if state == optuna.trial.TrialState.COMPLETE else None, state=state)


def check_study(study: optuna.Study, reports_made: int) -> dict:
    """The counts of the module docstring for one finished study."""
    trials = study.get_trials(deepcopy=False)
    anchors, off_grid, decisions, stored = set(), 0, 0, 0
    for t in trials:
        for key, rec in t.system_attrs.items():
            if not key.startswith(RUNG_PREFIX):
                continue
            k = int(key[len(RUNG_PREFIX):])
            decisions += 1
            anchors.add(float(f"{rec['compute'] / RUNG_FACTOR**k:.9g}"))
            off_grid += not math.isclose(rec["compute"], rung_compute(k, RUNG_FACTOR), rel_tol=1e-9)
        compute = reported_compute(t)
        stored += sum(1 for s in t.intermediate_values if s in compute)
    states = [t.state for t in trials]
    return {
        "trials": len(trials),
        "decisions": decisions,
        "grids": len(anchors),
        "off_grid": off_grid,
        "running": sum(s in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) for s in states),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "missing": reports_made - stored,
    }


def run_round(kind: str, where: str, seed: int) -> dict:
    """One round on a fresh study: ``kind`` is ``"journal"`` (``where``: a directory) or ``"postgres"``
    (``where``: the URL). Returns the counts, the wall time and the workers' exit codes."""
    name = f"race-{seed}-{uuid.uuid4().hex[:8]}"
    spec = ("journal", str(Path(where) / f"{name}.log")) if kind == "journal" else ("rdb", where)
    optuna.create_study(study_name=name, storage=_storage(spec))
    ctx = multiprocessing.get_context("fork")
    barrier, made = ctx.Barrier(N_WORKERS), ctx.Value("i", 0)
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(spec, name, w, 1000 * seed + w, barrier, made))
             for w in range(N_WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=_TIMEOUT_S)
        if p.exitcode is None:  # a worker stuck: stop it, and it shows as a bad exit code
            p.kill()
            p.join()
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=_storage(spec))
    row = {"storage": kind, "round": seed, **check_study(study, made.value), "wall_s": wall,
           "bad_exits": sum(p.exitcode != 0 for p in procs)}
    if kind == "postgres":
        optuna.delete_study(study_name=name, storage=_storage(spec))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", default="pruner_race")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("journal", tmp)] + ([("postgres", url)] if url else [])
        for kind, where in targets:
            for r in range(args.rounds):
                rows.append(run_round(kind, where, r))
                print(f"{kind} round {r}: {rows[-1]}", file=sys.stderr)
    if not url:
        print("PostgreSQL skipped: SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run shows how to start a server)")
    df = pd.DataFrame(rows)
    out = output_dir(args.out)
    df.to_csv(out / "race.csv", index=False)
    summary = df.groupby("storage", sort=False).agg(
        rounds=("round", "size"),
        trials=("trials", "sum"),
        decisions=("decisions", "sum"),
        max_grids_per_study=("grids", "max"),
        off_grid=("off_grid", "sum"),
        running=("running", "sum"),
        failed=("failed", "sum"),
        pruned=("pruned", "sum"),
        missing_reports=("missing", "sum"),
        bad_exits=("bad_exits", "sum"),
        median_round_s=("wall_s", "median"),
    ).reset_index()
    print(write_summary(summary, out, notes=[
        f"{N_WORKERS} workers x {TRIALS_PER_WORKER} trials per round, default pruner settings "
        f"(rung_factor {RUNG_FACTOR}, min_compute None), third reports made together.",
    ]))
    ok = (summary.max_grids_per_study <= 1).all() and not summary[
        ["off_grid", "running", "failed", "missing_reports", "bad_exits"]].to_numpy().any()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
