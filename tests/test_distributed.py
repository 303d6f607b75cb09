"""The pruner across processes: JournalStorage (one machine) and RDBStorage on PostgreSQL (many machines).

Tests that need PostgreSQL read ``SH_SCALING_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it) and
are skipped without it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
import uuid

import numpy as np
import optuna
import pytest

from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.keys import PRUNED_KEY, rung_key
from sh_scaling.pruning import reported_compute
from sh_scaling.surrogates import MIN_POINTS
from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.ERROR)

POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")
N_WORKERS = 4
TRIALS_PER_WORKER = 6
SETTINGS = dict(min_compute=3.0, reduction_factor=3, rung_factor=1.5, decision_start=0.05)
N_EVALS = 15


def _target(params):
    return params["size"] * 100.0


def _pruner():
    return SurrogateHalvingPruner(LogLinear(std=0.03), max_compute=_target, **SETTINGS)


def _curve(params):
    size, quality = params["size"], params["quality"]
    compute = size * np.geomspace(1.0, 100.0, N_EVALS)
    loss = 1.5 + quality / size**0.3 + 4.0 * (compute / size) ** -0.4
    return compute, loss


def _objective(trial):
    params = {"size": trial.suggest_float("size", 1.0, 30.0, log=True),
              "quality": trial.suggest_float("quality", 1.0, 3.0)}
    compute, loss = _curve(params)
    for c, value in zip(compute, loss):
        report(trial, float(value), compute=float(c))
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(loss[-1])


def _storage(spec):
    """``("journal", path)`` or ``("rdb", url, grace_period)``: a short grace period fails a killed worker's trial
    quickly, but on a loaded machine it can also fail a live worker whose heartbeat thread is late, so only the
    killed-worker test uses one."""
    kind, where = spec[:2]
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(where))
    return optuna.storages.RDBStorage(where, heartbeat_interval=1, grace_period=spec[2])


def _worker(spec, study_name, seed):
    study = optuna.load_study(study_name=study_name, storage=_storage(spec), pruner=_pruner(),
                              sampler=optuna.samplers.RandomSampler(seed))
    study.optimize(_objective, n_trials=TRIALS_PER_WORKER)


def _killed_worker(spec, study_name):
    """Runs one trial and dies (SIGKILL) in the middle of it, as a preempted machine would."""

    def dying(trial):
        params = {"size": trial.suggest_float("size", 1.0, 30.0, log=True),
                  "quality": trial.suggest_float("quality", 1.0, 3.0)}
        compute, loss = _curve(params)
        for c, value in list(zip(compute, loss))[:4]:
            report(trial, float(value), compute=float(c))
            trial.should_prune()
        time.sleep(1.5)  # let a heartbeat reach the storage
        os.kill(os.getpid(), signal.SIGKILL)

    study = optuna.load_study(study_name=study_name, storage=_storage(spec), pruner=_pruner())
    study.optimize(dying, n_trials=1)


def _run_workers(spec, study_name, n=N_WORKERS):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(spec, study_name, seed)) for seed in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"


def _eligible_rungs(compute, target):
    """The rungs the pruner must have decided for a trial that reported ``compute`` (its own rule)."""
    spacing = SETTINGS["rung_factor"]
    out = []
    k = math.ceil(math.log(SETTINGS["min_compute"]) / math.log(spacing) - 1e-9)  # rungs sit at spacing**k
    while True:
        r = spacing**k
        if r > compute[-1] * (1 + 1e-9) or r >= target * (1 - 1e-9):
            return out
        if r >= SETTINGS["decision_start"] * target and np.count_nonzero(compute < r * (1 - 1e-9)) + 1 >= MIN_POINTS:
            out.append(k)
        k += 1


def _check_study(study, n_expected, allow_failed=0):
    """No trial lost or stuck, every report and every rung decision recorded, each decision follows the rule."""
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_expected
    states = [t.state for t in trials]
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    assert states.count(optuna.trial.TrialState.FAIL) == allow_failed
    n_pruned = 0
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL:
            continue
        steps = sorted(t.intermediate_values)
        assert steps == list(range(len(steps)))
        compute = np.array([reported_compute(t)[s] for s in steps])
        expected_c, expected_l = _curve(t.params)
        assert np.allclose(compute, expected_c[: len(steps)])
        assert np.allclose([t.intermediate_values[s] for s in steps], expected_l[: len(steps)])
        records = {k: t.system_attrs[rung_key(k)] for k in range(-5, 40) if rung_key(k) in t.system_attrs}
        assert sorted(records) == _eligible_rungs(compute, _target(t.params))
        for rec in records.values():
            if "rank" in rec:
                could_lower = rec.get("ranking") == "frontier" and rec["score"] is not None and rec["score"] < 0
                assert rec["promoted"] == (rec["rank"] <= rec["quota"] or could_lower)
                assert rec["quota"] == math.ceil(rec["n_competitors"] / SETTINGS["reduction_factor"])
        if t.state == optuna.trial.TrialState.PRUNED:
            n_pruned += 1
            last = max(records)
            assert not records[last]["promoted"] and PRUNED_KEY in t.system_attrs
            assert all(rec["promoted"] for k, rec in records.items() if k != last)
            assert len(steps) == len(expected_c) or compute[-1] >= records[last]["compute"]
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE and len(steps) == N_EVALS
            assert all(rec["promoted"] for rec in records.values()) and PRUNED_KEY not in t.system_attrs
    return n_pruned


def test_single_process_reference():
    study = optuna.create_study(pruner=_pruner(), sampler=optuna.samplers.RandomSampler(0))
    study.optimize(_objective, n_trials=N_WORKERS * TRIALS_PER_WORKER)
    assert _check_study(study, N_WORKERS * TRIALS_PER_WORKER) > 0


def test_journal_file_storage_four_processes(tmp_path):
    spec = ("journal", str(tmp_path / "journal.log"))
    name = "sh-journal"
    optuna.create_study(study_name=name, storage=_storage(spec))
    _run_workers(spec, name)
    study = optuna.load_study(study_name=name, storage=_storage(spec))
    assert _check_study(study, N_WORKERS * TRIALS_PER_WORKER) > 0


@pytest.fixture
def postgres_study_name():
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"sh-pg-{uuid.uuid4().hex[:8]}"
    yield name
    optuna.delete_study(study_name=name, storage=POSTGRES_URL)


@pytest.mark.postgres
def test_postgres_four_processes(postgres_study_name):
    spec = ("rdb", POSTGRES_URL, 60)
    optuna.create_study(study_name=postgres_study_name, storage=_storage(spec))
    _run_workers(spec, postgres_study_name)
    study = optuna.load_study(study_name=postgres_study_name, storage=_storage(spec))
    assert _check_study(study, N_WORKERS * TRIALS_PER_WORKER) > 0


@pytest.mark.postgres
def test_postgres_killed_worker_is_failed_by_heartbeat(postgres_study_name):
    spec = ("rdb", POSTGRES_URL, 5)
    optuna.create_study(study_name=postgres_study_name, storage=_storage(spec))
    ctx = multiprocessing.get_context("fork")
    doomed = ctx.Process(target=_killed_worker, args=(spec, postgres_study_name))
    doomed.start()
    doomed.join(timeout=60)
    assert doomed.exitcode == -signal.SIGKILL
    study = optuna.load_study(study_name=postgres_study_name, storage=_storage(spec))
    stuck = study.get_trials(deepcopy=False)
    assert [t.state for t in stuck] == [optuna.trial.TrialState.RUNNING]
    time.sleep(6)  # past the grace period: the next worker's optimize() fails the stale trial
    _run_workers(spec, postgres_study_name, n=2)
    study = optuna.load_study(study_name=postgres_study_name, storage=_storage(spec))
    _check_study(study, 1 + 2 * TRIALS_PER_WORKER, allow_failed=1)
    killed = study.get_trials(deepcopy=False)[0]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert len(killed.intermediate_values) == 4  # its reports are kept
