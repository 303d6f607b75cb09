"""Budget-limited successive halving on real training (sh_scaling.BudgetedHalving) and ComputeBudget.

The driver must make exactly the fixed-budget simulator's decisions when it replays recorded curves, keep its
budget, survive bad input, killed workers and a killed driver, and leave no trial RUNNING.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import uuid
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import sh_scaling
from sh_scaling.budgeted import BudgetedHalving, CheckpointError, ComputeBudget, ledger, round_share, segments
from sh_scaling.curves import generate_synthetic, load_routing
from sh_scaling.keys import BUDGETED_FAILED_KEY, BUDGETED_LEDGER_KEY, PRUNED_KEY
from sh_scaling.simulation import allocate

optuna.logging.set_verbosity(optuna.logging.ERROR)

POSTGRES_URL = os.environ.get("SH_SCALING_TEST_POSTGRES_URL")


# ------------------------------------------------------------------------------------------------ helpers
@lru_cache(maxsize=None)
def _synthetic(n: int, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(generate_synthetic(n, seed=seed))


def _checkpoint(i: int, until: float) -> bytes:
    return json.dumps({"i": i, "until": until}).encode()


def _read_checkpoint(path: str | None) -> dict | None:
    return None if path is None else json.loads(Path(path).read_text())


def _reveal(curve, i: int, from_checkpoint: str | None, until: float):
    """A trainer that resumes where its checkpoint says and 'trains' by revealing the recorded points."""
    ckpt = _read_checkpoint(from_checkpoint)
    if ckpt is not None:
        assert ckpt["i"] == i, "handed another candidate's checkpoint"
    start = 0.0 if ckpt is None else ckpt["until"]
    seen = curve.observed_until(until)
    points = [(c, y) for c, y in zip(seen.compute, seen.loss) if c > start * (1 + 1e-9)]
    return points, _checkpoint(i, until)


def _study_attrs(study):
    return study._storage.get_study_system_attrs(study._study_id)


def _no_trial_left_running(study):
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states


def _replay(curves, budget, strategy, **kw):
    by_id = {c.id: (i, c) for i, c in enumerate(curves)}

    def train_fn(config, from_checkpoint, until):
        i, c = by_id[config["run"]]
        return _reveal(c, i, from_checkpoint, until)

    sweep = BudgetedHalving([{"run": c.id} for c in curves], budget, strategy=strategy,
                            max_compute=lambda cfg: by_id[cfg["run"]][1].final_compute, **kw)
    return sweep.run(train_fn)


def _same_as_simulator(curves, budget, strategy, sweep):
    sim = allocate(curves, budget, strategy, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)
    assert sweep.spent_ == pytest.approx(sim.spent, rel=1e-12) and sweep.spent_ <= budget
    assert sweep.best_loss_ == sim.best_loss
    return sim


# ------------------------------------------------------------------ the simulator's decisions, on replay
@pytest.mark.parametrize("set_seed", range(8))
def test_replaying_routing_curves_makes_the_simulators_decisions(routing_csv, set_seed):
    curves_all = _routing(str(routing_csv))
    rng = np.random.default_rng(1000 + set_seed)
    n = int(rng.integers(5, 21))
    curves = [curves_all[int(j)] for j in rng.choice(len(curves_all), size=n, replace=False)]
    budget = float(rng.choice([0.01, 0.03, 0.1, 0.3])) * sum(c.final_compute for c in curves)
    strategy = ["SH+FA", "SH", "SH+PL", "SH+FA"][set_seed % 4]
    sweep = _replay(curves, budget, strategy)
    _same_as_simulator(curves, budget, strategy, sweep)
    _no_trial_left_running(sweep.study_)


@lru_cache(maxsize=None)
def _routing(path):
    return list(load_routing(path))


@pytest.mark.parametrize("set_seed", range(8))
def test_replaying_synthetic_curves_makes_the_simulators_decisions(set_seed):
    rng = np.random.default_rng(2000 + set_seed)
    n = int(rng.integers(5, 21))
    curves = _synthetic(n, 2000 + set_seed)
    budget = float(rng.choice([0.01, 0.03, 0.1, 0.3])) * sum(c.final_compute for c in curves)
    strategy = ["SH+FA", "SH", "SH+PL", "SH+FA"][set_seed % 4]
    eta = [2, 3][set_seed % 2]
    sweep = _replay(curves, budget, strategy, reduction_factor=eta)
    sim = allocate(curves, budget, strategy, reduction_factor=eta, rng=np.random.default_rng(0))
    assert [[curves[i].id for i in alive] for alive in sweep.survivors_] == sim.survivors
    assert sweep.trained_ == pytest.approx([sim.trained[c.id] for c in curves], rel=1e-12)


# ------------------------------------------------------------------ worker processes, one of them killed
def _train_in_worker(config, from_checkpoint, until):
    """Module level, so that spawned workers can unpickle it. Logs every call; SIGKILLs its own process in the
    middle of the second segment of candidate ``config["kill"]``, once."""
    import time

    curves = _synthetic(config["n"], config["seed"])
    i = config["i"]
    log = Path(os.environ["SH_SCALING_TEST_BUDGETED_LOG"])
    ckpt = _read_checkpoint(from_checkpoint)
    call = {"i": i, "from": None if ckpt is None else ckpt["until"], "until": until, "pid": os.getpid()}
    (log / f"call-{uuid.uuid4().hex}.json").write_text(json.dumps(call))
    if i == config["kill"] and ckpt is not None:
        marker = log / "killed"
        if not marker.exists():  # only one process trains a candidate at a time, so this is race-free
            marker.write_text(str(os.getpid()))
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.3)  # training takes time, so the segments of a round overlap in the workers
    return _reveal(curves[i], i, from_checkpoint, until)


N_MP, SEED_MP = 8, 7


def _killed_worker_sweep(storage, study_name, tmp_path, monkeypatch):
    curves = _synthetic(N_MP, SEED_MP)
    budget = 0.2 * sum(c.final_compute for c in curves)
    sim = allocate(curves, budget, "SH+FA", rng=np.random.default_rng(0))
    kill = int(sim.survivors[1][0][len("syn-"):])  # a candidate that has a second segment to be killed in
    assert curves[kill].id == sim.survivors[1][0]
    log = tmp_path / "calls"
    log.mkdir()
    monkeypatch.setenv("SH_SCALING_TEST_BUDGETED_LOG", str(log))
    configs = [{"n": N_MP, "seed": SEED_MP, "i": i, "kill": kill} for i in range(N_MP)]
    sweep = BudgetedHalving(configs, budget, max_compute=lambda c: curves[c["i"]].final_compute, storage=storage,
                            study_name=study_name, artifact_store=optuna.artifacts.FileSystemArtifactStore(
                                str(_mkdir(tmp_path / "checkpoints"))))
    sweep.run(_train_in_worker, n_workers=4)

    assert (log / "killed").exists()
    _same_as_simulator(curves, budget, "SH+FA", sweep)  # the kill changed no decision
    study = sweep.study_
    _no_trial_left_running(study)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    every = [s for t in trials for s in segments(t)]
    assert every and all(s["status"] == "done" for s in every)  # every segment accounted for
    # Nothing counted twice: the ledger is the sum of the compute each candidate was trained to.
    book = ledger(trials, budget)
    assert book["total"] == pytest.approx(sum(sweep.trained_), rel=1e-12) and book["total"] <= budget
    assert book["retries"] == 1 and book["restarts"] == 0 and book["reserved"] == 0
    assert _study_attrs(study)[BUDGETED_LEDGER_KEY]["total"] == pytest.approx(book["total"])
    # The killed segment: two attempts, both resumed from the checkpoint the candidate's first segment left.
    segs = segments(trials[kill])
    second = segs[1]
    assert second["attempts"] == 2 and any("died" in n for n in second["notes"])
    calls = [json.loads(p.read_text()) for p in log.glob("call-*.json")]
    tries = [c for c in calls if c["i"] == kill and c["until"] == second["until"]]
    assert len(tries) == 2 and all(c["from"] == segs[0]["until"] for c in tries)
    assert tries[0]["pid"] != tries[1]["pid"]
    assert len(calls) == len(every) + 1  # one call per segment, plus the killed attempt
    assert len({s["worker"] for s in every}) >= 2  # segments really ran in several processes
    return sweep


def _mkdir(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_four_workers_on_a_journal_file_one_killed_mid_segment(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "sweep.journal")))
    _killed_worker_sweep(storage, "killed-worker", tmp_path, monkeypatch)


@pytest.mark.postgres
def test_four_workers_on_postgres_one_killed_mid_segment(tmp_path, monkeypatch):
    if not POSTGRES_URL:
        pytest.skip("SH_SCALING_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"budgeted-{uuid.uuid4().hex[:8]}"
    try:
        _killed_worker_sweep(POSTGRES_URL, name, tmp_path, monkeypatch)
    finally:
        optuna.delete_study(study_name=name, storage=POSTGRES_URL)
