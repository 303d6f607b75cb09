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
