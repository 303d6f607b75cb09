"""replay_study: every curve becomes one trial of a real Optuna study, nothing is lost, metrics are right."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from sh_scaling.curves import generate_synthetic
from sh_scaling.simulation import PrunerSpec, clairvoyant_bound, replay_study, summarize_replay


@pytest.fixture(scope="module")
def curves():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate_synthetic(16, seed=3, name="synthetic")


@pytest.mark.parametrize("spec", ["nop", "sha", "hyperband", "median", "patient", "ours",
                                  PrunerSpec("ours", {"surrogate": "powerlaw", "objective": "best_loss"})])
def test_replay_turns_each_curve_into_one_trial(curves, spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = replay_study(curves, spec, seeds=[1, 2])
    assert set(df.seed) == {1, 2}
    for seed, g in df.groupby("seed"):
        assert sorted(g.curve) == sorted(curves.ids)  # one trial per curve
        spent = 0.0
        for _, row in g.iterrows():
            full = curves.get(row.curve)
            assert 1 <= row.n_reported <= len(full)
            assert row.compute_spent == full.compute[row.n_reported - 1]  # a prefix of the recorded curve
            assert row.best_observed == full.loss[: row.n_reported].min()
            assert (row.state == "COMPLETE") == (row.n_reported == len(full))
            spent += row.compute_spent
        assert g.compute_frac.iloc[0] == pytest.approx(spent / curves.exhaustive_compute)
        if spec == "nop":
            assert g.compute_frac.iloc[0] == pytest.approx(1.0) and g.regret.iloc[0] == 0
    if spec == "ours":
        pruned = df[df.state == "PRUNED"]
        assert len(pruned) and pruned.decision.str.startswith("pruned at rung").all()
        # The decision records: in order of compute, promoted at every rung but a pruned trial's last.
        for _, row in df.iterrows():
            computes = [r["compute"] for r in row.rungs]
            assert computes == sorted(computes) and all(r["compute"] <= row.compute_spent for r in row.rungs)
            verdicts = [r["promoted"] for r in row.rungs]
            assert all(verdicts[:-1]) and (verdicts[-1] is False) == (row.state == "PRUNED") if verdicts else True
        assert df.rungs.map(len).sum() > len(df)
    elif spec != "ours" and isinstance(spec, str):
        assert (df.rungs.map(len) == 0).all()


def test_summary_and_bad_input(curves):
    df = replay_study(curves, "ours", seeds=2)
    s = summarize_replay(df)
    assert s.seeds.iloc[0] == 2 and 0 < s.compute_frac.iloc[0] < 1
    with pytest.raises(ValueError, match="unknown pruner"):
        replay_study(curves, "nonsense")
    with pytest.raises(ValueError, match="order"):
        replay_study(curves, "nop", order="backwards")
    with pytest.raises(ValueError, match="at least 2"):
        replay_study(list(curves)[:1], "nop")


def test_ours_reads_schedules_planned_compute_and_families_from_the_curves():
    import os
    from pathlib import Path

    from sh_scaling.curves import CurveSet, load_multipowerlaw

    env = os.environ.get("SH_SCALING_MULTIPOWERLAW_PATH")
    where = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "multipowerlaw"
    if not (where / "loss_curve_repo").is_dir():
        pytest.skip("multipowerlaw curves not found: set SH_SCALING_MULTIPOWERLAW_PATH or place ../shared/data")
    mpl = load_multipowerlaw(where)
    few = CurveSet([c for c in mpl if c.meta["size"] == "25M"][:5])
    spec = PrunerSpec("ours", {"schedule": "from_curves", "family": "from_curves"})
    df = replay_study(few, spec, seeds=[0])
    assert sorted(df.curve) == sorted(few.ids) and (df.compute_frac <= 1).all()
    from sh_scaling.simulation import make_pruner

    pruner = make_pruner(spec, few)
    assert pruner._schedule({"curve": 0}) == few[0].meta["schedule"]
    assert pruner._max_compute({"curve": 0}) == few[0].meta["max_compute"]
    assert pruner._family({"curve": 0}) == "25M"
    with pytest.raises(ValueError, match="max_compute"):
        make_pruner(PrunerSpec("ours", {"max_compute": 3.0}), few)


def _curve(cid, compute, loss):
    from sh_scaling.curves import Curve

    return Curve(cid, np.asarray(compute, float), np.asarray(loss, float))


def test_clairvoyant_bound_by_hand():
    # Lowest losses 3.0 (at compute 2 of 4), 2.0 (at 10, its end), 2.5 (at 3 of 6); total compute 20.
    curves = [_curve("a", [1, 2, 4], [4.0, 3.0, 3.1]), _curve("b", [5, 10], [2.4, 2.0]),
              _curve("c", [1, 3, 6], [3.0, 2.5, 2.6])]
    df = clairvoyant_bound(curves, seeds=[0], order="given")
    # a beats nothing earlier (2), b beats a (10), c does not beat b (0).
    assert df.compute_frac.iloc[0] == pytest.approx(12 / 20)
    assert df.hindsight_frac.iloc[0] == pytest.approx(10 / 20)
    # Over all 6 orders: b always (rank 1), c half the time (rank 2), a a third of the time (rank 3).
    assert df.expected_frac.iloc[0] == pytest.approx((10 + 3 / 2 + 2 / 3) / 20)
    brute = []
    for perm in itertools.permutations(range(3)):
        brute.append(clairvoyant_bound([curves[i] for i in perm], order="given").compute_frac.iloc[0])
    assert np.mean(brute) == pytest.approx(df.expected_frac.iloc[0])
    with pytest.raises(ValueError, match="order"):
        clairvoyant_bound(curves, order="sideways")
    # A stopped trial still costs its first look (here its second point, at least 30 % of its end).
    looked = clairvoyant_bound(curves, seeds=[0], order="given", min_points=2, min_fraction=0.3)
    assert looked.compute_frac.iloc[0] == pytest.approx((2 + 10 + 3) / 20)  # c is stopped at its 2nd point, 3
    assert looked.hindsight_frac.iloc[0] == pytest.approx((10 + 2 + 3) / 20)
    brute = [clairvoyant_bound([curves[i] for i in perm], order="given", min_points=2, min_fraction=0.3)
             .compute_frac.iloc[0] for perm in itertools.permutations(range(3))]
    assert np.mean(brute) == pytest.approx(looked.expected_frac.iloc[0])
    # With min_improvement 0.25 a trial is trained only if it beats the best trained by more than 25 %: b (2.0)
    # beats a (3.0) by 33 % and is trained, c does not beat b: 12 of 20, as without. At 0.4 b is stopped too
    # (stopped trials cost nothing here) and the regret is a's: (3.0 - 2.0) / 2.0.
    assert clairvoyant_bound(curves, order="given", min_improvement=0.25).compute_frac.iloc[0] == pytest.approx(0.6)
    tolerant = clairvoyant_bound(curves, order="given", min_improvement=0.4)
    assert tolerant.compute_frac.iloc[0] == pytest.approx((2 + 0 + 0) / 20)
    assert tolerant.regret.iloc[0] == pytest.approx(0.5) and np.isnan(tolerant.expected_frac.iloc[0])
    assert df.regret.iloc[0] == 0
    with pytest.raises(ValueError, match="min_improvement"):
        clairvoyant_bound(curves, min_improvement=1.0)
    with pytest.raises(ValueError, match="min_points"):
        clairvoyant_bound(curves, min_points=-1)
    with pytest.raises(ValueError, match="min_fraction"):
        clairvoyant_bound(curves, min_fraction=2.0)


def test_clairvoyant_bound_lies_between_hindsight_and_exhaustive(curves):
    seeds = [0, 1, 2, 3]
    df = clairvoyant_bound(curves, seeds=seeds)
    assert (df.hindsight_frac <= df.compute_frac + 1e-12).all() and (df.compute_frac <= 1).all()
    assert df.expected_frac.nunique() == 1 and df.hindsight_frac.iloc[0] <= df.expected_frac.iloc[0] <= 1
    # Any replay with zero regret trained the best curve to its lowest loss: at least the hindsight bound.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = replay_study(curves, "ours", seeds=seeds)
    zero = run.groupby("seed").first().query("regret == 0")
    assert len(zero) and (zero.compute_frac >= df.hindsight_frac.iloc[0] - 1e-12).all()
