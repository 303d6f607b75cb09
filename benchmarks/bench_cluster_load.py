"""Many processes on one PostgreSQL study: the pruner path and the budgeted workers, direct and through Optuna's
gRPC storage proxy; latencies, database connections, and no lost report or double claim.

    python benchmarks/bench_cluster_load.py                          # 32 processes, both parts, both routes
    python benchmarks/bench_cluster_load.py --processes 64
    python benchmarks/bench_cluster_load.py --processes 4 --parts pruner --routes direct    # seconds

Needs PostgreSQL: ``--storage URL``, else ``SH_SCALING_TEST_POSTGRES_URL``. Every part starts ``--processes``
fresh interpreters (``spawn``) that meet at a barrier once they have imported everything and connected, so
that all of them run at once; none is staggered. The machine's cores limit the compute, not the connections:
no process trains anything, curves are replayed.

``pruner`` (the pruner path): one study with :class:`sh_scaling.SurrogateHalvingPruner`; each process runs
``study.optimize`` for ``--trials`` trials, each replaying one of ``2 x --processes`` synthetic learning curves
(:func:`sh_scaling.curves.generate_synthetic`, ``--points`` evaluations each) with :func:`sh_scaling.report`
and ``trial.should_prune()``. Every call is timed in its process; a call is *deciding* when the pruner wrote a
rung decision during it (its writes of rung records are counted), else *non-deciding* (between rungs: a read
of the trial, nothing fitted). A process's first deciding call is shown apart: it imports the surrogates'
stack (scipy.optimize, scikit-learn, pandas), which every process pays once. Each process logs every report it made; afterwards every logged report must be
in the storage with its compute and loss, the storage must hold no report that was not logged, and no trial
may be left RUNNING.

``workers`` (the budgeted workers): ``BudgetedHalving(...).start()`` with ``2 x --processes`` candidates
(the same kind of replayed curves, a budget of 20 % of training all of them, reduction factor 2), then each
process runs ``BudgetedHalving.join(...).work(train)``, where ``train`` sleeps ``--seconds`` and returns the
curve's points up to the granted compute. The claim (the state change WAITING to RUNNING that only one process
can win: ``set_trial_state_values``) is timed in each process, claims won and lost apart; a claim won whose
segment was no longer to be trained (another worker trained it since the scan that picked it) gives the trial
back untrained, and is counted with the reason the worker saw. Each process logs
every segment (candidate, from, to) it trains; afterwards no segment may be trained twice, the segment records
must all be done, the ledger must equal the compute trained and stay within the budget, every worker must exit
0, and no trial (nor the lease's) may be left RUNNING.

Routes (``--routes``): ``direct`` (every process has its own ``RDBStorage`` on the URL) and ``grpc`` (one
process runs :func:`optuna.storages.run_grpc_proxy_server` in front of the URL's storage, with
``--proxy-threads`` threads; every worker talks to it with :class:`optuna.storages.GrpcStorageProxy`; needs
``grpcio`` and ``protobuf``).

Every call is timed by the wall clock and by the CPU time of its thread (``time.thread_time``: what the call
computed in its own process); the rest of its wall time it waited for the database, the proxy, or a core (with
more processes than cores, mostly a core: the load average is sampled too). While a part runs, the
connections to the database are sampled every 0.1 s from ``pg_stat_activity``: those of the worker processes
and of the proxy (told apart by their ``application_name``), and the server's total, against its
``max_connections``. A process that cannot set up (e.g. the server refuses a connection) breaks the start
barrier, so that the others stop instead of waiting; its error is printed with the checks.

Prints a table (one row per part and route) and writes ``<out>/cluster_load/summary.csv``, ``summary.md``,
``calls.csv`` (every timed call) and ``latency.png`` (the distribution of each latency, and the connections
over time). Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

#: Seconds a process may wait at the barrier for the others to start (32 interpreters importing optuna,
#: scipy and scikit-learn on 2 busy cores take about a minute).
BARRIER_S = 600.0
#: Seconds between two samples of the database's connections.
SAMPLE_S = 0.1
#: ``application_name`` of the workers' and the proxy's connections, so that the sampler counts theirs only
#: (not the benchmark's own, nor other users' of the server).
WORKER_APP, PROXY_APP = "sh-load-worker", "sh-load-proxy"
#: Relative tolerance of two computes that must be the same number (float sums of the ledger).
RTOL = 1e-9


# ------------------------------------------------------------------------------------------------ shared
@functools.lru_cache(maxsize=None)
def _curves(n: int, points: int, seed: int = 7) -> list[Any]:
    """``n`` synthetic learning curves, each thinned to ``points`` of its evaluations, evenly spread over them."""
    import numpy as np

    from sh_scaling.curves import Curve, generate_synthetic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = list(generate_synthetic(n, seed=seed))
    out = []
    for c in full:
        idx = np.unique(np.linspace(0, len(c.compute) - 1, min(points, len(c.compute))).round().astype(int))
        out.append(Curve.from_arrays(c.id, c.compute[idx], c.loss[idx], meta=c.meta))
    return out


def _named(url: str, app: str) -> str:
    """The URL with an ``application_name`` that ``pg_stat_activity`` shows for its connections."""
    from sqlalchemy.engine import make_url

    return make_url(url).update_query_dict({"application_name": app}).render_as_string(hide_password=False)


def _worker_storage(route: dict[str, Any]) -> Any:
    """This process's storage: its own RDB storage on the URL, or a client of the gRPC proxy."""
    import optuna

    if route["kind"] == "grpc":
        storage = optuna.storages.GrpcStorageProxy(host=route["host"], port=route["port"])
        storage.wait_server_ready(timeout=60)
        return storage
    url: Any = _named(route["url"], WORKER_APP)
    if route.get("pool_size"):
        # Optuna's RDBStorage keeps 2 connections open per process (its set-up checks out a second one, and
        # SQLAlchemy's default pool keeps up to 5); with pool_size=1 one stays open and any other is closed
        # when returned.
        url = optuna.storages.RDBStorage(url, engine_kwargs={"pool_size": route["pool_size"]})
    return optuna.storages.get_storage(url)


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _proxy_main(url: str, port: int, threads: int) -> None:
    """The gRPC proxy process: Optuna's server in front of the URL's (cached) RDB storage."""
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.get_storage(_named(url, PROXY_APP))
    optuna.storages.run_grpc_proxy_server(storage, host="localhost", port=port,
                                          thread_pool=ThreadPoolExecutor(max_workers=threads))


class Connections:
    """Samples the connections of the worker processes and of the proxy (``pg_stat_activity``, told apart by
    their ``application_name``), and the server's, in a thread while a part runs."""

    def __init__(self, url: str) -> None:
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        # Autocommit: PostgreSQL keeps one snapshot of pg_stat_activity per transaction.
        self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.max_connections = int(self._conn.exec_driver_sql("SHOW max_connections").scalar_one())
        self.samples: list[tuple[float, int, int, float]] = []  # (time, workers' and proxy's, server's, load)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> tuple[int, int]:
        row = self._conn.exec_driver_sql(
            "SELECT count(*) FILTER (WHERE datname = current_database() AND application_name IN "
            f"('{WORKER_APP}', '{PROXY_APP}')), count(*) FILTER (WHERE backend_type = 'client backend') "
            "FROM pg_stat_activity").one()
        return int(row[0]), int(row[1])

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            mine, total = self._sample()
            self.samples.append((time.monotonic(), mine, total, os.getloadavg()[0]))

    def now(self) -> int:
        return self._sample()[0]

    def __enter__(self) -> Connections:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()
        self._engine.dispose()

    def peak(self) -> tuple[int, int]:
        return (max((s[1] for s in self.samples), default=0), max((s[2] for s in self.samples), default=0))


def _run_processes(target: Any, args_of: list[tuple], barrier: Any, deadline: float, label: str,
                   progress: Any) -> tuple[list[int | None], float, float]:
    """Start every process, wait for the barrier, then for all of them: (exit codes, t_go, t_end)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=a) for a in args_of]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    print(f"  {label}: {len(procs)} processes started; waiting for all of them to import and connect", flush=True)
    try:
        barrier.wait(timeout=BARRIER_S)
        print(f"  {label}: all {len(procs)} at the barrier after {time.monotonic() - t0:.0f} s; running", flush=True)
    except threading.BrokenBarrierError:
        print(f"  {label}: a process failed to set up (its log says why); the others stop", flush=True)
    t_go = time.monotonic()
    last = t_go
    while any(p.is_alive() for p in procs):
        if time.monotonic() > deadline:
            for p in procs:
                if p.is_alive():
                    p.kill()
            print(f"  {label}: deadline passed; the processes still running were killed", flush=True)
            break
        time.sleep(0.2)
        if time.monotonic() - last >= 10:
            last = time.monotonic()
            alive = sum(p.is_alive() for p in procs)
            print(f"  {label}: {last - t_go:5.0f} s, {alive} processes running, {progress()}", flush=True)
    t_end = time.monotonic()
    for p in procs:
        p.join(10)
    return [p.exitcode for p in procs], t_go, t_end


# ------------------------------------------------------------------------------------------------ checks
def lost_reports(logged: list[list[Any]], trials: dict[int, Any]) -> tuple[int, int, int, int]:
    """How the reports the processes logged (``[trial number, step, compute, loss]``) compare with the trials
    in the storage (by number): ``(logged, missing, different, unlogged)``: reports logged, logged reports
    the storage lacks, logged reports stored with another loss or compute, stored reports nobody logged."""
    from sh_scaling.pruning import reported_compute

    missing = different = 0
    per_trial: Counter[int] = Counter()
    for number, step, compute, loss in logged:
        per_trial[number] += 1
        t = trials.get(number)
        if t is None or step not in t.intermediate_values:
            missing += 1
            continue
        c = reported_compute(t).get(step)
        if t.intermediate_values[step] != loss or c is None or abs(c - compute) > RTOL * abs(compute):
            different += 1
    unlogged = sum(max(0, len(t.intermediate_values) - per_trial[t.number]) for t in trials.values())
    return len(logged), missing, different, unlogged


def trained_twice(trained: list[tuple[int, float, float]]) -> list[tuple[int, float]]:
    """The segments ``(candidate, to compute)`` that more than one training logged (``(candidate, from, to)``)."""
    return [s for s, k in Counter((i, until) for i, _, until in trained).items() if k > 1]


# ------------------------------------------------------------------------------------------ the pruner path
def _failed(log: str, exc: BaseException, barrier: Any) -> None:
    """A process that could not set up: its error in its log, and the barrier broken so that none waits."""
    Path(log).write_text(json.dumps({"error": _why(exc), "setup": True}))
    barrier.abort()


def _why(exc: BaseException) -> str:
    """The error and its first cause (Optuna wraps a refused connection in ``StorageInternalError``)."""
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if root is not exc:
        text += f" (caused by {type(root).__name__}: {' '.join(str(root).split())})"
    return text


def _read_logs(paths: list[Path]) -> tuple[list[dict[str, Any] | None], list[str]]:
    """Each process's log (``None``: it wrote none, or failed to set up) and the errors they logged."""
    logs = [json.loads(p.read_text()) if p.exists() else None for p in paths]
    errors = [lg["error"] for lg in logs if lg and lg.get("error")]
    return [None if lg is None or lg.get("setup") else lg for lg in logs], errors


def _pruner_worker(route: dict[str, Any], study_name: str, n_trials: int, seed: int, n_curves: int, points: int,
                   log: str, barrier: Any) -> None:
    import optuna

    import sh_scaling
    from sh_scaling.keys import RUNG_PREFIX

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    curves = _curves(n_curves, points)
    try:
        storage = _worker_storage(route)
    except BaseException as exc:
        _failed(log, exc, barrier)
        raise
    decisions = [0]
    write = storage.set_trial_system_attr

    def counted(trial_id: int, key: str, value: Any) -> None:  # counts the pruner's rung decisions
        if key.startswith(RUNG_PREFIX):
            decisions[0] += 1
        write(trial_id, key, value)

    storage.set_trial_system_attr = counted
    pruner = sh_scaling.SurrogateHalvingPruner(max_compute=lambda p: float(curves[p["curve"]].final_compute))
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner,
                              sampler=optuna.samplers.RandomSampler(seed=seed))
    reports: list[list[Any]] = []
    calls: list[list[Any]] = []

    def objective(trial: optuna.Trial) -> float:
        c = curves[trial.suggest_int("curve", 0, n_curves - 1)]
        loss = float("nan")
        for compute, loss in zip(c.compute.tolist(), c.loss.tolist()):
            t, cpu = time.perf_counter(), time.thread_time()
            step = sh_scaling.report(trial, loss, compute=compute)
            calls.append(["report", time.perf_counter() - t, False, time.thread_time() - cpu, False])
            reports.append([trial.number, step, compute, loss])
            before = decisions[0]
            t, cpu = time.perf_counter(), time.thread_time()
            pruned = trial.should_prune()
            decided = decisions[0] > before
            # The first decision in a process imports the surrogates' stack (scipy.optimize, scikit-learn,
            # pandas: about 1,200 modules), so it is kept apart.
            first = decided and not any(c[0] == "should_prune" and c[2] for c in calls)
            calls.append(["should_prune", time.perf_counter() - t, decided, time.thread_time() - cpu, first])
            if pruned:
                raise optuna.TrialPruned()
        return loss

    barrier.wait(timeout=BARRIER_S)
    t0 = time.monotonic()
    error = None
    try:
        study.optimize(objective, n_trials=n_trials)
    except BaseException as exc:
        error = _why(exc)
        raise
    finally:
        Path(log).write_text(json.dumps({"reports": reports, "calls": calls, "start": t0, "end": time.monotonic(),
                                         "error": error}))


def _pruner_part(route: dict[str, Any], args: argparse.Namespace, own: Any, root: Path,
                 conns: Connections) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    n = args.processes
    name = f"load-pruner-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=own)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    logs = [root / f"pruner-{route['kind']}-{k}.json" for k in range(n)]
    argv = [(route, name, args.trials, k, 2 * n, args.points, str(logs[k]), barrier) for k in range(n)]

    def progress() -> str:
        counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
        return f"{conns.now()} connections, trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))

    codes, t_go, t_end = _run_processes(_pruner_worker, argv, barrier, time.monotonic() + args.deadline,
                                        f"pruner/{route['kind']}", progress)
    window = [s for s in conns.samples if t_go <= s[0] <= t_end]
    logged, errors = _read_logs(logs)
    trials = {t.number: t for t in study.get_trials()}
    n_logged, missing, wrong, extra = lost_reports([r for log in logged if log for r in log["reports"]], trials)
    states = Counter(t.state.name for t in trials.values())
    calls = [c for log in logged if log for c in log["calls"]]
    ok_procs = sum(c == 0 for c in codes)
    concurrent = all(log is not None for log in logged) and max(lg["start"] for lg in logged) < min(
        lg["end"] for lg in logged)
    checks = {
        "processes exited 0": (ok_procs == n, f"{ok_procs} of {n}" + (
            f"; {len(errors)} failed, e.g. {errors[0][:300]}" if errors else "")),
        "all ran at once": (concurrent, "the last started before the first finished" if concurrent else "no"),
        "no lost report": (missing == 0 and wrong == 0 and extra == 0 and n_logged > 0,
                           f"{n_logged} reports logged, {missing} missing, {wrong} with another loss or "
                           f"compute, {extra} in the storage not logged"),
        "no trial left RUNNING": (states.get("RUNNING", 0) == 0 and states.get("WAITING", 0) == 0
                                  and len(trials) == n * args.trials,
                                  f"{len(trials)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))),
    }
    optuna.delete_study(study_name=name, storage=own)
    return {"calls": calls, "checks": checks, "window": window, "seconds": t_end - t_go,
            "rows": _rows(calls, ("should_prune", "report"))}


# ------------------------------------------------------------------------------------------ the budgeted workers
_TRAINED: list[list[Any]] = []


def _train(config: dict[str, Any], from_checkpoint: str | None, until_compute: float) -> tuple[list, bytes]:
    """Replays candidate ``config["i"]``'s curve from its checkpoint to ``until_compute``; logs the segment."""
    start = 0.0 if from_checkpoint is None else float(json.loads(Path(from_checkpoint).read_text())["until"])
    time.sleep(config["seconds"])
    seen = _curves(config["n"], config["points"])[config["i"]].observed_until(until_compute)
    points = [(float(c), float(y)) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + RTOL)]
    _TRAINED.append([int(config["i"]), start, float(until_compute)])
    return points, json.dumps({"i": config["i"], "until": until_compute}).encode()


def _budgeted_worker(route: dict[str, Any], study_name: str, artifacts: str, log: str, barrier: Any) -> None:
    import optuna
    from optuna.trial import TrialState

    import sh_scaling

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    try:
        storage = _worker_storage(route)
    except BaseException as exc:
        _failed(log, exc, barrier)
        raise
    claims: list[list[Any]] = []
    change = storage.set_trial_state_values

    def timed(trial_id: int, state: TrialState, values: Any = None) -> bool:  # times every claim
        t, cpu = time.perf_counter(), time.thread_time()
        won = change(trial_id, state, values)
        if state == TrialState.RUNNING:
            claims.append([trial_id, bool(won), time.perf_counter() - t, time.thread_time() - cpu])
        return won

    storage.set_trial_state_values = timed
    untrained: list[list[Any]] = []  # claims won that gave the trial back untrained: [trial id, reason]
    from sh_scaling.budgeted import _driver

    run_beating = _driver.run_beating

    def logged_run(study: Any, store: Any, train_fn: Any, task: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        outcome = run_beating(study, store, train_fn, task, *args, **kwargs)
        if outcome["status"] == "stale" and "in another process" not in outcome["reason"]:  # a claim won
            untrained.append([task.trial_id, outcome["reason"]])
        return outcome

    _driver.run_beating = logged_run
    sweep = sh_scaling.BudgetedHalving.join(storage, study_name,
                                            artifact_store=optuna.artifacts.FileSystemArtifactStore(artifacts))
    barrier.wait(timeout=BARRIER_S)
    t0 = time.monotonic()
    error = None
    try:
        sweep.work(_train)
    except BaseException as exc:
        error = _why(exc)
        raise
    finally:
        Path(log).write_text(json.dumps({"claims": claims, "trained": _TRAINED, "untrained": untrained,
                                         "start": t0,
                                         "end": time.monotonic(), "end_wall": time.time(), "error": error}))


def _workers_part(route: dict[str, Any], args: argparse.Namespace, own: Any, root: Path,
                  conns: Connections) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    import sh_scaling
    from sh_scaling.budgeted import ledger, segments

    n = args.processes
    n_cand = 2 * n
    curves = _curves(n_cand, args.points)
    budget = 0.2 * math.fsum(float(c.final_compute) for c in curves)
    name = f"load-workers-{uuid.uuid4().hex[:8]}"
    artifacts = root / f"checkpoints-{route['kind']}"
    artifacts.mkdir()
    configs = [{"n": n_cand, "points": args.points, "i": i, "seconds": args.seconds} for i in range(n_cand)]
    sweep = sh_scaling.BudgetedHalving(configs, budget, max_compute=lambda c: float(curves[c["i"]].final_compute),
                                       storage=own, study_name=name, strategy=args.strategy,
                                       artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifacts)))
    sweep.start()
    storage = own
    study = optuna.load_study(study_name=name, storage=storage)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    logs = [root / f"workers-{route['kind']}-{k}.json" for k in range(n)]
    argv = [(route, name, str(artifacts), str(logs[k]), barrier) for k in range(n)]

    def progress() -> str:
        book = ledger(study.get_trials(deepcopy=False), budget)
        return f"{conns.now()} connections, {book['segments']} segments granted, ledger {book['total'] / budget:.0%}"

    codes, t_go, t_end = _run_processes(_budgeted_worker, argv, barrier, time.monotonic() + args.deadline,
                                        f"workers/{route['kind']}", progress)
    t_end_wall = time.time() - (time.monotonic() - t_end)
    window = [s for s in conns.samples if t_go <= s[0] <= t_end]
    logged, errors = _read_logs(logs)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    ids = {t._trial_id for t in trials}
    trained = [tuple(s) for log in logged if log for s in log["trained"]]
    twice = trained_twice(trained)
    records = [s for t in trials for s in segments(t)]
    book = ledger(trials, budget)
    spent = math.fsum(until - start for _, start, until in trained)
    reached: dict[int, float] = {}
    for i, _, until in trained:
        reached[i] = max(reached.get(i, 0.0), until)
    result = sweep.work(_train)  # the sweep is finished: this returns its results at once
    same_compute = all(abs(reached.get(i, 0.0) - c) <= RTOL * max(c, 1.0) for i, c in enumerate(result.trained_))
    driver = optuna.load_study(study_name=f"{name}:driver", storage=storage).get_trials()
    states = Counter(t.state.name for t in trials)
    calls = [["claim won" if won else "claim lost", s, False, cpu, False] for log in logged if log
             for tid, won, s, cpu in log["claims"] if tid in ids]
    lease = [["lease", s, False, cpu, False] for log in logged if log for tid, won, s, cpu in log["claims"]
             if tid not in ids and won]
    ok_procs = sum(c == 0 for c in codes)
    concurrent = all(log is not None for log in logged) and max(lg["start"] for lg in logged) < min(
        lg["end"] for lg in logged)
    won = sum(c[0] == "claim won" for c in calls)
    # A claim won that trains nothing: the worker's pick from its scan was trained and given back by another
    # worker before it claimed it (the trial was WAITING again, its segment done), so it gives the trial back.
    untrained = Counter(re.sub(r"segment \S+ ", "segment ", reason) for log in logged if log
                        for _, reason in log.get("untrained", []))
    checks = {
        "processes exited 0": (ok_procs == n, f"{ok_procs} of {n}" + (
            f"; {len(errors)} failed, e.g. {errors[0][:300]}" if errors else "")),
        "all ran at once": (concurrent, "the last started before the first finished" if concurrent else "no"),
        "no double claim": (not twice and len(trained) == len(records) and all(s["status"] == "done" for s in records)
                            and len(trained) > 0,
                            f"{len(trained)} segments trained, {len(twice)} twice, {len(records)} records, "
                            f"{sum(s['status'] == 'done' for s in records)} done; {won} claims won, "
                            f"{sum(untrained.values())} of them gave the trial back untrained"
                            + "".join(f" ({v}: {k})" for k, v in sorted(untrained.items()))),
        "ledger = compute trained <= budget": (
            abs(book["total"] - spent) <= RTOL * budget and book["total"] <= budget * (1 + RTOL) and same_compute,
            f"ledger {book['total']:.6g}, trained {spent:.6g}, budget {budget:.6g}; "
            f"per candidate {'=' if same_compute else '!='} the sweep's result"),
        "no trial left RUNNING": (states.get("RUNNING", 0) == 0 and states.get("WAITING", 0) == 0
                                  and all(t.state != TrialState.RUNNING for t in driver),
                                  f"{len(trials)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
                                  + f"; lease trials {len(driver)}, none RUNNING"),
    }
    # The final close: the last hold of the sweep's lease, from its claim (RUNNING) to the sweep finished (COMPLETE),
    # while every other worker waits for the lease and then finds the sweep finished.
    final = next((t for t in driver if t.state == TrialState.COMPLETE), None)
    began, ended = (final.datetime_start, final.datetime_complete) if final is not None else (None, None)
    close_s = (ended - began).total_seconds() if began is not None and ended is not None else math.nan
    closed = ended.timestamp() if ended is not None else math.nan  # the storage's clock: this machine's
    returned = max((lg.get("end_wall", math.nan) for lg in logged if lg), default=math.nan)
    # The last grant, after which the ledger stays at its last value (recorded to the second).
    granted = max((datetime.fromisoformat(str(s["reserved_at"])).timestamp() for s in records
                   if s.get("reserved_at")), default=math.nan)
    print(f"  workers/{route['kind']}: the last grant (the ledger at its last value) came "
          f"{closed - close_s - granted:.0f} s (to the second) before the final close, which held the lease "
          f"{close_s:.2f} s ({n_cand} candidates); every work() returned {returned - closed:.1f} s and every "
          f"process exited {t_end_wall - closed:.1f} s after it", flush=True)
    optuna.delete_study(study_name=f"{name}:driver", storage=own)
    optuna.delete_study(study_name=f"{name}:attempts", storage=own)
    optuna.delete_study(study_name=name, storage=own)
    return {"calls": calls + lease, "checks": checks, "window": window, "seconds": t_end - t_go,
            "final_close_s": close_s, "rows": _rows(calls + lease, ("claim won", "claim lost", "lease"))}


# ------------------------------------------------------------------------------------------------ report
def _rows(calls: list[list[Any]], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for kind in kinds:
        groups = [("", [c for c in calls if c[0] == kind])]
        if kind == "should_prune":
            groups = [("all", [c for c in calls if c[0] == kind]),
                      ("deciding, the process's first", [c for c in calls if c[0] == kind and c[4]]),
                      ("deciding, later", [c for c in calls if c[0] == kind and c[2] and not c[4]]),
                      ("non-deciding", [c for c in calls if c[0] == kind and not c[2]])]
        for sub, chosen in groups:
            values = [c[1] for c in chosen]
            rows.append({"call": f"{kind} ({sub})" if sub else kind, "n": len(values),
                         "p50_ms": 1e3 * _percentile(values, 50), "p95_ms": 1e3 * _percentile(values, 95),
                         "max_ms": 1e3 * max(values) if values else float("nan"),
                         "cpu_p50_ms": 1e3 * _percentile([c[3] for c in chosen], 50)})
    return rows


def _plot(results: dict[tuple[str, str], dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    styles = {"direct": "-", "grpc": "--"}
    for (part, route), res in results.items():
        kinds = {"pruner": [("should_prune", True), ("should_prune", False), ("report", None)],  # all deciding calls
                 "workers": [("claim won", None), ("claim lost", None)]}[part]
        for kind, deciding in kinds:
            vals = np.sort([c[1] for c in res["calls"] if c[0] == kind and (deciding is None or c[2] == deciding)])
            if vals.size == 0:
                continue
            label = kind + ("" if deciding is None else (" (deciding)" if deciding else " (non-deciding)"))
            ax = axes[0] if part == "pruner" else axes[1]
            ax.plot(1e3 * vals, np.arange(1, vals.size + 1) / vals.size, styles.get(route, ":"), label=f"{label}, {route}")
        if res["window"]:
            t0 = res["window"][0][0]
            axes[2].plot([s[0] - t0 for s in res["window"]], [s[1] for s in res["window"]], styles.get(route, ":"),
                         label=f"{part}, {route}")
    for ax, title in zip(axes[:2], ("pruner path", "budgeted workers")):
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of calls")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[2].set_xlabel("seconds since all processes started")
    axes[2].set_ylabel("connections to the database")
    axes[2].set_title("database connections")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=32, help="processes at once (default 32)")
    parser.add_argument("--parts", nargs="+", choices=["pruner", "workers"], default=["pruner", "workers"],
                        help="which parts to run (default both)")
    parser.add_argument("--routes", nargs="+", choices=["direct", "grpc"], default=["direct", "grpc"],
                        help="each process on its own RDB storage, and/or through one gRPC proxy (default both)")
    parser.add_argument("--trials", type=int, default=3, help="trials per process in the pruner part (default 3)")
    parser.add_argument("--points", type=int, default=15, help="evaluations per replayed curve (default 15)")
    parser.add_argument("--seconds", type=float, default=0.2, help="seconds a segment trains (default 0.2)")
    parser.add_argument("--strategy", default="SH+FA", help="the budgeted sweep's strategy (default SH+FA)")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="pool_size of each direct process's SQLAlchemy engine (default: Optuna's, 5); 1 keeps "
                             "one connection per process open")
    parser.add_argument("--proxy-threads", type=int, default=10,
                        help="threads of the gRPC proxy (default 10, Optuna's default)")
    parser.add_argument("--storage", default=os.environ.get("SH_SCALING_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: SH_SCALING_TEST_POSTGRES_URL)")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds one part may run (default 1200)")
    parser.add_argument("--out", default="results", help="results folder (default results)")
    args = parser.parse_args(argv)
    if not args.storage or not args.storage.startswith("postgresql"):
        parser.error("a PostgreSQL URL is needed: --storage or SH_SCALING_TEST_POSTGRES_URL")
    if args.processes < 1 or args.trials < 1 or args.points < 4 or args.seconds < 0:
        parser.error("--processes >= 1, --trials >= 1, --points >= 4 and --seconds >= 0 are needed")

    import optuna
    import pandas as pd

    from sh_scaling.benchmarking import output_dir

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = output_dir("cluster_load", args.out)
    root = Path(tempfile.mkdtemp(prefix="cluster-load-"))
    ctx = multiprocessing.get_context("spawn")
    own = optuna.storages.get_storage(_named(args.storage, "sh-load-bench"))  # the benchmark's own storage
    results: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    passed = True
    print(f"{args.processes} processes, parts {' '.join(args.parts)}, routes {' '.join(args.routes)}; logs in {root}",
          flush=True)
    for route_kind in args.routes:
        proxy = None
        route: dict[str, Any] = {"kind": route_kind, "url": args.storage, "pool_size": args.pool_size}
        if route_kind == "grpc":
            route.update(host="localhost", port=_free_port())
            proxy = ctx.Process(target=_proxy_main, args=(args.storage, route["port"], args.proxy_threads))
            proxy.start()
        try:
            for part in args.parts:
                with Connections(args.storage) as conns:
                    idle = conns.now()
                    run = _pruner_part if part == "pruner" else _workers_part
                    res = run(route, args, own, root, conns)
                label = route_kind if route_kind == "grpc" or not args.pool_size else f"direct, pool_size {args.pool_size}"
                results[(part, label)] = res
                peak, server_peak = (max((s[1] for s in res["window"]), default=0),
                                     max((s[2] for s in res["window"]), default=0))
                load = max((s[3] for s in res["window"]), default=float("nan"))
                for r in res["rows"]:
                    rows.append({"part": part, "route": label, "processes": args.processes, **r,
                                 "peak_connections": peak, "connections_before": idle,
                                 "server_peak": server_peak, "max_connections": conns.max_connections,
                                 "load_max": round(load, 1), "cores": os.cpu_count(),
                                 "seconds": round(res["seconds"], 1)})
                for what, (ok, detail) in res["checks"].items():
                    passed &= ok
                print(f"  {part}/{label}: done in {res['seconds']:.0f} s, peak {peak} connections to the "
                      f"database ({idle} before), server {server_peak} of {conns.max_connections}; load average "
                      f"up to {load:.0f} on {os.cpu_count()} cores", flush=True)
        finally:
            if proxy is not None:
                proxy.kill()
                proxy.join(10)

    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    calls = pd.DataFrame([{"part": p, "route": r, "call": c[0], "seconds": c[1], "deciding": c[2], "cpu_seconds": c[3],
                           "first_decision": c[4]}
                          for (p, r), res in results.items() for c in res["calls"]])
    calls.to_csv(out / "calls.csv", index=False)
    _plot(results, out / "latency.png")

    lines = ["| part | route | call | n | p50 ms | p95 ms | max ms | CPU p50 ms | peak connections | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['route']} | {r['call']} | {r['n']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
                     f"| {r['max_ms']:.0f} | {r['cpu_p50_ms']:.1f} | {r['peak_connections']} | {r['seconds']:.0f} |")
    lines += ["", "| part | route | check | result | measured |", "|---|---|---|---|---|"]
    for (part, route_kind), res in results.items():
        for what, (ok, detail) in res["checks"].items():
            lines.append(f"| {part} | {route_kind} | {what} | {'ok' if ok else 'FAIL'} | {detail} |")
    text = "\n".join(lines)
    (out / "summary.md").write_text(f"{args.processes} processes\n\n{text}\n")
    print()
    print(text)
    print(f"\nwrote {out}/ (summary.csv, summary.md, calls.csv, latency.png)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
