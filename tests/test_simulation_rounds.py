import numpy as np
import pandas as pd
import pytest

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.simulation import MIN_ORACLE_GAIN, allocate, oracle_share, round_table, simulate, summarize


def _crossing_set():
    """Two small models that lead early, a big one that wins late (it crosses them at compute 16), a flat one."""
    c = np.geomspace(1, 1000, 30)
    return CurveSet([
        Curve.from_arrays("small", c, 2.0 + 2.0 * c ** -0.5),
        Curve.from_arrays("small2", c, 2.05 + 2.0 * c ** -0.5),
        Curve.from_arrays("big", c, 1.0 + 6.0 * c ** -0.5),
        Curve.from_arrays("bad", c, np.full(30, 5.0)),
    ])


def test_round_records_follow_the_rounds_and_the_budget():
    cands = _crossing_set()
    res = allocate(cands, 80.0, "SH+FA")
    assert [r.ids for r in res.rounds] == res.survivors
    for rec, after in zip(res.rounds, res.survivors[1:]):
        assert [i for i, k in zip(rec.ids, rec.kept) if k] == after
        assert rec.score is not None and rec.score.shape == (len(rec.ids),)
        assert np.all(rec.target >= rec.trained)
    last = res.rounds[-1]
    assert last.score is None and last.kept.all() and np.array_equal(last.target, last.trained)
    assert sum(r.given for r in res.rounds) == pytest.approx(res.spent)
    assert res.budget == 80.0 and all(r.given <= r.offered * (1 + 1e-12) for r in res.rounds)
    assert allocate(cands, 80.0, "UA").rounds == []


def test_round_table_names_the_candidate_the_oracle_keeps_and_sh_drops():
    cands = _crossing_set()
    table = round_table(allocate(cands, 80.0, "SH"), cands)
    first = table[table["round"] == 0].set_index("candidate")
    # SH keeps the two small models on their observed losses; the oracle keeps the big one, which reaches
    # 1 + 6 / sqrt(30) at compute 30, and SH believed its loss at compute 10 instead: too pessimistic.
    assert first.at["big", "wrong_drop"] and first.at["big", "outcome_rank"] == 1
    assert first.at["big", "outcome"] == pytest.approx(cands[2].best_loss_at(30.0)[0])
    assert first.at["big", "forecast_error"] == pytest.approx(first.at["big", "loss"] / first.at["big", "outcome"] - 1)
    assert first.at["big", "forecast_error"] > 0.3
    assert first.wrong_keep.sum() == first.wrong_drop.sum() == 1
    assert first.at["big", "stage"] == pytest.approx(10.0 / 1000.0)
    assert not first.at["bad", "wrong_drop"] and first.at["bad", "dropped"]
    oracle = round_table(allocate(cands, 80.0, "SH+oracle"), cands)
    assert not oracle.wrong_drop.any() and not oracle.wrong_keep.any()
    with pytest.raises(ValueError, match="not among the curves"):
        round_table(allocate(cands, 80.0, "SH"), CurveSet(list(cands)[:2]))
    assert round_table(allocate(cands, 80.0, "UA"), cands).empty


def test_oracle_share_is_the_ratio_of_paired_means_with_a_delta_method_interval():
    share, lo, hi = oracle_share(np.array([0.01, 0.02, 0.03]), np.array([0.02, 0.04, 0.06]))
    assert (share, lo, hi) == pytest.approx((0.5, 0.5, 0.5))  # exactly proportional: no spread
    rng = np.random.default_rng(0)
    y = rng.uniform(0.0, 0.04, 40)
    x = 0.6 * y + rng.normal(0, 0.004, 40)
    share, lo, hi = oracle_share(x, y)
    assert share == pytest.approx(x.mean() / y.mean())
    d = x - share * y
    assert hi - share == pytest.approx(share - lo) == pytest.approx(1.96 * d.std(ddof=1) / np.sqrt(40) / y.mean())
    assert lo < 0.6 < hi
    # The oracle gains less than 0.5 %: nothing to share.
    assert np.isnan(oracle_share(np.array([0.001, 0.002]), np.full(2, 0.9 * MIN_ORACLE_GAIN))).all()
    one = oracle_share(np.array([0.01]), np.array([0.02]))
    assert one[0] == pytest.approx(0.5) and np.isnan(one[1:]).all()
    with pytest.raises(ValueError, match="paired"):
        oracle_share(np.zeros(2), np.zeros(3))


def test_summarize_reports_the_share_of_the_oracle_gain_where_it_gains_enough():
    # Larger models start higher and end lower: the curves cross, and ranking by observed loss drops the winners.
    c = np.geomspace(1, 1000, 30)
    rng = np.random.default_rng(0)
    curves = [Curve.from_arrays(i, c, (2 - 0.1 * i + (1 + 0.8 * i) * c ** -0.5) * np.exp(rng.normal(0, 0.003, 30)))
              for i in range(12)]
    df = simulate(CurveSet(curves), candidates=(6,), budgets=(0.1,), strategies=("SH", "SH+PL", "SH+oracle"),
                  repeats=6, progress=False)
    s = summarize(df).set_index("strategy")
    ri = df.pivot_table(index="repeat", columns="strategy", values="ri_vs_sh")
    assert ri["SH+oracle"].mean() >= MIN_ORACLE_GAIN  # the set is built so that there is a gain to share
    assert s.at["SH+PL", "oracle_share"] == pytest.approx(ri["SH+PL"].mean() / ri["SH+oracle"].mean())
    assert s.at["SH+oracle", "oracle_share"] == pytest.approx(1.0) and s.at["SH", "oracle_share"] == 0
    assert s.at["SH+PL", "oracle_share_lo"] <= s.at["SH+PL", "oracle_share"] <= s.at["SH+PL", "oracle_share_hi"]
    no_oracle = summarize(df[df.strategy != "SH+oracle"])
    assert no_oracle.oracle_share.isna().all()


def test_stage_margin_widens_the_forecast_of_a_survivor_early_in_its_run():
    from sh_scaling.halving import STAGE_MARGINS, at_stage
    from sh_scaling.simulation import STRATEGIES, RoundInputs, Strategy, round_scores

    # Two survivors forecast to the same loss: one at 5 % of its run, one at 80 %.
    inputs = RoundInputs(start=np.array([10.0, 10.0]), loss=np.array([3.0, 3.0]), target=np.array([40.0, 40.0]),
                         mean=np.array([2.5, 2.5]), std=np.zeros(2), fallback=np.zeros(2, bool),
                         anchors=(np.empty(0), np.empty(0), np.empty(0, int)), stage=np.array([0.05, 0.8]))
    plain = round_scores(STRATEGIES["SH+PL"], inputs)
    widened = round_scores(STRATEGIES["SH+PL-SE"], inputs)
    assert plain[0] == plain[1] == pytest.approx(2.5)
    margin = at_stage(STAGE_MARGINS[0.9]["own"], np.array([0.05, 0.8]))
    assert widened == pytest.approx(2.5 * np.exp(-margin))
    assert widened[0] < widened[1]  # the early forecast is the less certain: the early survivor ranks first
    fa = round_scores(STRATEGIES["SH+FA-SE"], inputs)
    assert fa[0] < fa[1] and round_scores(STRATEGIES["SH+FA"], inputs)[0] == pytest.approx(
        round_scores(STRATEGIES["SH+FA"], inputs)[1])
    with pytest.raises(ValueError, match="measured coverage"):
        Strategy("x", "forecast", "powerlaw", margin=0.7)
    with pytest.raises(ValueError, match="widens forecasts"):
        Strategy("x", "observed", margin=0.9)
