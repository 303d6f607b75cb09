"""replay_study: every curve becomes one trial of a real Optuna study, nothing is lost, metrics are right."""

from __future__ import annotations

import warnings

import pytest

from sh_scaling.curves import generate_synthetic
from sh_scaling.simulation import PrunerSpec, replay_study, summarize_replay


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
