"""clairvoyant_bound with many workers: worked by hand, and never above what a zero-regret pruner that knows
every started trial's whole curve spends in a real replay."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.simulation import PRUNERS, PrunerSpec, clairvoyant_bound, replay_study


def _curve(cid, compute, loss):
    return Curve(cid, np.asarray(compute, float), np.asarray(loss, float))


#: In this order: r, the first record, at its lowest loss only at its end; x and y, worse than r; w, the best.
#: Times are compute (throughput 1); each trial's first look is its first point. Total compute 28.
HAND = [_curve("r", [1, 3, 5, 7, 8], [3.0, 2.8, 2.6, 2.4, 2.2]), _curve("x", [2, 4], [3.0, 2.9]),
        _curve("y", [2.5, 6], [2.8, 2.5]), _curve("w", [1, 10], [2.5, 2.0])]


class _Oracle(optuna.pruners.BasePruner):
    """Zero regret whatever comes later, knowing the whole curve of every trial started: from a trial's
    ``min_points``-th report on, stops it once it has reached its lowest loss or a started trial beats it
    (ties: the earlier trial wins)."""

    def __init__(self, curves, min_points=1):
        self.best = [float(np.min(c.loss)) for c in curves]
        self.at = [int(np.argmin(c.loss)) for c in curves]
        self.min_points = min_points

    def prune(self, study, trial):
        i, k = trial.params["curve"], len(trial.intermediate_values)
        if k < self.min_points:
            return False
        if k - 1 >= self.at[i]:
            return True
        return any(self.best[t.params["curve"]] < self.best[i]
                   or (self.best[t.params["curve"]] == self.best[i] and t.number < trial.number)
                   for t in study.get_trials(deepcopy=False)
                   if t.number != trial.number and t.state != optuna.trial.TrialState.WAITING)


@pytest.fixture
def oracle(monkeypatch):
    monkeypatch.setitem(PRUNERS, "oracle", lambda curves, min_points=1: _Oracle(curves, min_points))
    return "oracle"


@pytest.mark.parametrize("k, compute, makespan, exhaustive", [
    # One worker: r trained to its end (8), x and y to their first looks (2, 2.5), w to its end (10).
    (1, 22.5, 22.5, 28),
    # Two: w starts once x and y have ended on the other worker, at 2 + 2.5 = 4.5; r is stopped at its first
    # report after that, at 5. The sweep: w cannot start before the shorter of x, y has ended, 2.5 + 10.
    (2, 5 + 2 + 2.5 + 10, 12.5, 18),
    # Three: x, y start beside r; w starts once one of them has ended (the sooner, x, at 2); r is stopped at
    # 3, its first report after 2. The sweep: w starts at 2 at the soonest and takes 10.
    (3, 3 + 2 + 2.5 + 10, 12, 14),
    # Four: all start at once; r is stopped at its first look, 1.
    (4, 1 + 2 + 2.5 + 10, 10, 10),
])
def test_bound_by_hand_and_met_by_the_oracle(oracle, k, compute, makespan, exhaustive):
    b = clairvoyant_bound(HAND, order="given", min_points=1, n_workers=k)
    assert b.compute_frac.iloc[0] == pytest.approx(compute / 28)
    assert b.makespan.iloc[0] == pytest.approx(makespan) and b.exhaustive_makespan.iloc[0] == exhaustive
    assert b.makespan_frac.iloc[0] == pytest.approx(makespan / exhaustive) and b.n_workers.iloc[0] == k
    assert b.hindsight_frac.iloc[0] == pytest.approx((10 + 1 + 2 + 2.5) / 28) and b.regret.iloc[0] == 0
    assert np.isnan(b.expected_frac.iloc[0]) == (k > 1)
    df = replay_study(HAND, oracle, order="given", n_workers=k)
    assert df.regret.iloc[0] == 0 and df.compute_frac.iloc[0] == pytest.approx(compute / 28)  # the bound is met
    assert df.makespan.iloc[0] >= makespan and df.exhaustive_makespan.iloc[0] == exhaustive
    if k in (3, 4):
        assert df.makespan.iloc[0] == makespan  # here both are


def test_one_worker_bound_is_unchanged_by_the_wall_clock_terms():
    curves = [_curve("a", [1, 2, 4], [4.0, 3.0, 3.1]), _curve("b", [5, 10], [2.4, 2.0]),
              _curve("c", [1, 3, 6], [3.0, 2.5, 2.6])]
    one = clairvoyant_bound(curves, order="given", seeds=4)
    assert list(one.compute_frac) == list(clairvoyant_bound(curves, order="given", seeds=4, n_workers=1).compute_frac)
    # With one worker the wall-clock bound is the compute bound in units of time.
    assert np.allclose(one.makespan_frac, one.compute_frac)
    # Twice as slow a trial b: its time, not its compute, doubles.
    slow = clairvoyant_bound(curves, order="given", duration=lambda c, x: 2 * x if c.id == "b" else x)
    assert slow.compute_frac.iloc[0] == one.compute_frac.iloc[0] and slow.makespan.iloc[0] == 2 + 20


def test_records_with_no_look_cost_their_first_report():
    # Defaults (no first look): with two workers each record but the best stops at its first report.
    b = clairvoyant_bound(HAND, order="given", n_workers=2)
    assert b.compute_frac.iloc[0] == pytest.approx((1 + 10) / 28) == b.hindsight_frac.iloc[0] + 1 / 28


def test_bad_settings(oracle):
    with pytest.raises(ValueError, match="n_workers=0"):
        clairvoyant_bound(HAND, n_workers=0)
    with pytest.raises(ValueError, match="one-worker"):
        clairvoyant_bound(HAND, n_workers=2, min_improvement=0.1)
    with pytest.raises(ValueError, match="curve 'x', compute 2\\) returned 0"):
        clairvoyant_bound(HAND, duration=lambda c, x: 0.0 if c.id == "x" else x)


def _random_curves(rng, n):
    """Small curves with integer computes and losses on a coarse grid: many ties in time and in loss."""
    out = []
    for i in range(n):
        m = int(rng.integers(1, 6))
        out.append(_curve(f"c{i}", np.cumsum(rng.integers(1, 4, size=m)), np.round(rng.uniform(2, 3, size=m), 1)))
    return CurveSet(out)


@pytest.mark.parametrize("case", range(12))
def test_no_zero_regret_oracle_spends_less(oracle, case):
    rng = np.random.default_rng(case)
    cs = _random_curves(rng, int(rng.integers(3, 8)))
    look = int(rng.integers(1, 3))
    speed = {c.id: float(rng.choice([0.5, 1.0, 2.0])) for c in cs}

    def duration(c, x):
        return speed[c.id] * x

    seeds = [0, 1, 2]
    for k in (1, 2, 3, 5):
        bound = clairvoyant_bound(cs, seeds=seeds, n_workers=k, min_points=look, duration=duration)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = replay_study(cs, PrunerSpec(oracle, {"min_points": look}), seeds=seeds, n_workers=k,
                              duration=duration)
        per_seed = df.groupby("seed").first()
        assert (per_seed.regret == 0).all()
        assert (per_seed.compute_frac.to_numpy() >= bound.compute_frac.to_numpy() - 1e-12).all()
        assert (per_seed.makespan.to_numpy() >= bound.makespan.to_numpy() - 1e-12).all()
        assert np.allclose(per_seed.exhaustive_makespan, bound.exhaustive_makespan)
        if k == 1 and look == 1:  # met with one worker (a record's lowest loss then never comes before its look)
            assert np.allclose(per_seed.compute_frac, bound.compute_frac)
