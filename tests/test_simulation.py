import numpy as np
import pytest

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.simulation import allocate, n_rounds, simulate, summarize


def _crossing_pair():
    """A small model that leads early and a big one that wins late (Chinchilla-like crossing)."""
    c = np.geomspace(1, 1000, 30)
    small = Curve.from_arrays("small", c[:20], 2.0 + 2.0 * c[:20] ** -0.5)
    big = Curve.from_arrays("big", c, 1.0 + 6.0 * c ** -0.5)
    return small, big


def test_rounds():
    assert [n_rounds(k, 2) for k in (1, 2, 5, 8, 10, 20)] == [1, 1, 3, 3, 4, 5]
    assert n_rounds(9, 3) == 2
    with pytest.raises(ValueError, match="reduction_factor"):
        n_rounds(4, 1)


def test_budget_is_never_exceeded_and_ua_splits_evenly():
    rng = np.random.default_rng(0)
    curves = CurveSet(
        Curve.from_arrays(i, np.geomspace(1, 10 ** rng.uniform(2, 3), 20), 1 + rng.uniform(1, 5) * np.geomspace(1, 100, 20) ** -0.3)
        for i in range(10)
    )
    for name in ("UA", "SH", "SH+FA"):
        res = allocate(curves, 0.2 * curves.exhaustive_compute, name)
        assert res.spent <= 0.2 * curves.exhaustive_compute * (1 + 1e-9)
    ua = allocate(curves, 100.0, "UA")
    assert set(ua.trained.values()) == {10.0}


def test_sh_keeps_the_early_leaders_and_forecast_keeps_the_late_winner():
    c = np.geomspace(1, 1000, 30)
    small = Curve.from_arrays("small", c, 2.0 + 2.0 * c ** -0.5)
    small2 = Curve.from_arrays("small2", c, 2.05 + 2.0 * c ** -0.5)
    big = Curve.from_arrays("big", c, 1.0 + 6.0 * c ** -0.5)  # crosses the small ones at c = 16
    bad = Curve.from_arrays("bad", c, np.full(30, 5.0))
    cands = CurveSet([small, small2, big, bad])
    # R = 2 rounds: 4 curves to compute 10 each, then 2 survivors to 30.
    sh = allocate(cands, 80.0, "SH")
    assert sh.survivors == [["small", "small2", "big", "bad"], ["small", "small2"]]
    assert sh.best_loss == pytest.approx(small.best_loss_at(30.0)[0], rel=0.02)

    class LogLogLine:
        def fit(self, c, l):
            self.c, self.l = np.log(c), np.log(l)
            return self

        def predict(self, c, return_std=False):
            # Straight-line extrapolation of the last two points in log-log space.
            slope = (self.l[-1] - self.l[-2]) / (self.c[-1] - self.c[-2])
            m = np.exp(self.l[-1] + slope * (np.log(c) - self.c[-1]))
            return (m, np.zeros_like(m)) if return_std else m

    from sh_scaling.simulation import Strategy

    fc = allocate(cands, 80.0, Strategy("SH+line", "forecast", LogLogLine()))
    assert "big" in fc.survivors[1]
    assert fc.best_loss < sh.best_loss - 0.1


def test_unobserved_curves_do_not_crash_and_ties_are_seeded():
    small, big = _crossing_pair()
    cands = CurveSet([small, big])
    a = allocate(cands, 1e-6, "SH", rng=np.random.default_rng(1))
    assert np.isnan(a.best_loss) and a.spent == pytest.approx(1e-6)


def test_simulate_grid_and_ri(tmp_path):
    rng = np.random.default_rng(0)
    curves = []
    for i in range(12):
        n = 10 ** rng.uniform(0, 2)
        c = np.geomspace(1, 100 * n, 25)
        curves.append(Curve.from_arrays(i, c, 1 + 1 / n ** 0.3 + 3 * (c / n) ** -0.3))
    df = simulate(CurveSet(curves), candidates=(4, 8), budgets=(0.1, 0.3), strategies=("UA", "SH"), repeats=5,
                  progress=False)
    assert len(df) == 2 * 2 * 5 * 2
    assert np.allclose(df[df.strategy == "SH"].ri_vs_sh, 0)
    s = summarize(df)
    assert {"ri_mean", "ri_lo", "ri_hi", "law_area", "savings"} <= set(s.columns)
    assert (s.savings > 0.6).all()


def test_bad_arguments():
    small, big = _crossing_pair()
    with pytest.raises(ValueError, match="budget"):
        allocate(CurveSet([small]), -1.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        allocate(CurveSet([small]), 1.0, "SH+XYZ")
    with pytest.raises(ValueError, match="outside"):
        simulate(CurveSet([small, big]), candidates=(3,), progress=False)


def test_oracle_ranks_by_the_true_future():
    c = np.geomspace(1, 1000, 30)
    cands = CurveSet([
        Curve.from_arrays("small", c, 2.0 + 2.0 * c ** -0.5),
        Curve.from_arrays("small2", c, 2.05 + 2.0 * c ** -0.5),
        Curve.from_arrays("big", c, 1.0 + 6.0 * c ** -0.5),
        Curve.from_arrays("bad", c, np.full(30, 5.0)),
    ])
    res = allocate(cands, 80.0, "SH+oracle")
    assert res.survivors[1][0] == "big"


def test_finished_curves_leave_the_race_but_keep_their_result():
    c = np.geomspace(1, 1000, 30)
    tiny = Curve.from_arrays("tiny", c[:5], 1.5 + 0.0 * c[:5])  # best early, finished after compute 3.6
    a = Curve.from_arrays("a", c, 2.0 + 2.0 * c ** -0.5)
    b = Curve.from_arrays("b", c, 1.0 + 6.0 * c ** -0.5)
    d = Curve.from_arrays("d", c, np.full(30, 5.0))
    res = allocate(CurveSet([tiny, a, b, d]), 80.0, "SH")
    assert "tiny" not in res.survivors[1]
    assert res.best_loss == pytest.approx(1.5)


def test_optimistic_quantile_changes_the_ranking_value():
    from sh_scaling.simulation import Strategy

    class Uncertain:
        def fit(self, c, l):
            self.last, self.n = l[-1], len(c)
            return self

        def predict(self, c, return_std=False):
            m = np.full(len(c), self.last * 0.95)
            return (m, np.full(len(c), 0.5 / self.n)) if return_std else m

    dense = np.geomspace(1, 1000, 30)
    sparse = np.array([2.0, 5.0, 9.0, 100.0, 1000.0])
    cands = CurveSet([
        Curve.from_arrays("dense1", dense, np.full(30, 2.0)),
        Curve.from_arrays("dense2", dense, np.full(30, 2.01)),
        Curve.from_arrays("sparse", sparse, np.full(5, 2.05)),
        Curve.from_arrays("bad", dense, np.full(30, 5.0)),
    ])
    # Round 1 trains each to compute 10: the sparse curve has 3 points, so its forecast is the least certain.
    mean = allocate(cands, 80.0, Strategy("m", "forecast", Uncertain()))
    low = allocate(cands, 80.0, Strategy("q", "forecast", Uncertain(), optimism=0.05))
    assert sorted(mean.survivors[1]) == ["dense1", "dense2"]
    assert sorted(low.survivors[1]) == ["dense1", "sparse"]
    with pytest.raises(ValueError, match="optimism"):
        Strategy("bad", "forecast", Uncertain(), optimism=0.9)


def test_carry_over_spends_what_finished_curves_leave():
    c = np.geomspace(1, 1000, 30)
    short = Curve.from_arrays("short", c[:10], 3.0 + c[:10] ** -0.5)  # ends at compute ~8.5
    long = Curve.from_arrays("long", c, 2.0 + 3.0 * c ** -0.5)
    cands = CurveSet([short, long])
    plain = allocate(cands, 100.0, "UA")
    carried = allocate(cands, 100.0, "UA", carry_over=True)
    assert plain.spent == pytest.approx(short.final_compute + 50.0)
    assert carried.spent == pytest.approx(100.0)
    assert carried.trained["long"] == pytest.approx(100.0 - short.final_compute)


def test_warmup_points_are_left_out_of_fits():
    from sh_scaling.simulation import Strategy

    seen = []

    class Recorder:
        def fit(self, c, l):
            seen.append(np.asarray(c).min())
            return self

        def predict(self, c, return_std=False):
            m = np.full(len(c), 2.0)
            return (m, np.zeros(len(c))) if return_std else m

    c = np.geomspace(1, 1000, 30)
    cands = CurveSet([Curve.from_arrays(i, c, 2.0 + k * c ** -0.3) for i, k in enumerate((1.0, 1.1, 1.2, 1.3))])
    allocate(cands, 800.0, Strategy("w", "forecast", Recorder(), warmup_fraction=0.01))
    assert seen and min(seen) >= 10.0  # 1 % of the planned compute 1000
    with pytest.raises(ValueError, match="warmup_fraction"):
        Strategy("bad", "forecast", Recorder(), warmup_fraction=1.0)


def test_schedule_aware_strategies_forecast_each_curve_under_its_own_schedule():
    from pathlib import Path

    from sh_scaling.curves import load_multipowerlaw
    from sh_scaling.simulation import STRATEGIES, round_inputs
    from sh_scaling.surrogates import MultiPowerLawSurrogate, forecast

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "multipowerlaw"
    if not (path / "loss_curve_repo").is_dir():
        pytest.skip("multipowerlaw curves not found beside the repository")
    curves = [c for c in load_multipowerlaw(path) if c.meta["size"] == "100M"][:4]
    strategy = STRATEGIES["SH+FA-MPL"]
    trained = {c.id: 0.3 * c.final_compute for c in curves}
    targets = np.array([c.final_compute for c in curves])
    inputs = round_inputs(strategy, curves, trained, targets, [])
    for i, c in enumerate(curves):
        o = c.observed_until(trained[c.id])
        keep = o.compute >= strategy.warmup_fraction * c.final_compute
        proto = MultiPowerLawSurrogate(schedule=c.meta["schedule"], max_compute=c.meta["max_compute"])
        alone = forecast(proto, [(o.compute[keep], o.loss[keep])], [targets[i]])
        assert inputs.mean[i] == pytest.approx(alone.mean[0]) and not inputs.fallback[i]
    # The fixed-budget driver runs with it end to end.
    res = allocate(curves, 0.3 * sum(c.final_compute for c in curves), "SH+FA-MPL")
    assert res.n_fallbacks == 0 and np.isfinite(res.best_loss)


def test_keep_unseen_keeps_candidates_not_evaluated_yet_while_they_can_be():
    c = np.geomspace(1.0, 100.0, 30)
    # Small models evaluated from the start; large, better ones evaluated only from compute 20 on (after a
    # warm-up); one large model whose evaluations start beyond anything the budget can reach.
    small = [Curve(f"small{i}", c, 3.0 + 0.1 * i + 2.0 * c**-0.3) for i in range(4)]
    late = np.geomspace(20.0, 100.0, 12)
    large = [Curve(f"large{i}", late, 2.0 + 0.1 * i + 2.0 * late**-0.3) for i in range(2)]
    never = Curve("never", np.geomspace(95.0, 100.0, 4), np.full(4, 1.0))
    cands = [*small, *large, never]
    budget = 0.3 * sum(x.final_compute for x in cands)
    for name in ("SH", "SH+PL"):
        plain = allocate(cands, budget, name, rng=np.random.default_rng(0))
        kept = allocate(cands, budget, name, keep_unseen=True, rng=np.random.default_rng(0))
        # Ranked last, the unseen large models go at the first cut; kept, one of them wins.
        assert not any(i.startswith("large") for i in plain.survivors[1])
        assert {"large0", "large1"} <= set(kept.survivors[1]) and "never" not in kept.survivors[1]
        assert kept.best_loss < plain.best_loss
        assert kept.spent <= budget * (1 + 1e-9)


def _ladder_with_a_late_large_model() -> list[Curve]:
    """Four models planned for 100 to 800, evaluated from 1 % of their runs, each 0.2 better than the last at the
    same compute, and one planned for 1600, better still, evaluated only from 160 (10 % of its run, after a
    warm-up)."""
    out = []
    for k, planned in enumerate((100.0, 200.0, 400.0, 800.0)):
        c = np.geomspace(0.01 * planned, planned, 20)
        out.append(Curve.from_arrays(f"n{int(planned)}", c, 3.0 - 0.2 * k + 5.0 * c ** -0.3))
    c = np.geomspace(160.0, 1600.0, 20)
    return [*out, Curve.from_arrays("n1600", c, 2.2 + 5.0 * c ** -0.3)]


@pytest.mark.parametrize("name", ["SH", "SH+PL", "SH+FA", "SH+MPL"])
def test_an_unseen_candidate_scored_by_the_others_prior_survives_and_wins(name):
    import dataclasses

    from sh_scaling.simulation import STRATEGIES

    cands = _ladder_with_a_late_large_model()
    # Rounds of 5, 3, 2 share 1500 as 100, 166.7, 250 each: n1600 is not evaluated when the first round ends
    # (first point at 160), and is by then 0.2 better per doubling of planned compute than n800 at equal compute.
    runs = {rule: allocate(cands, 1500.0, dataclasses.replace(STRATEGIES[name], unseen=rule),
                           rng=np.random.default_rng(0)) for rule in ("last", "median", "prior", "reach")}
    first = runs["last"].rounds[0]
    assert np.isnan(first.loss[4]) and np.isinf(first.score[4])
    assert "n1600" not in runs["last"].survivors[1]
    # The line through the others' scores against log planned compute puts it first; their median, third of the
    # four unfinished (n100 has finished its run).
    prior = runs["prior"].rounds[0].score
    assert np.argmin(prior) == 4 and runs["prior"].survivors[1][0] == "n1600"
    assert runs["median"].rounds[0].score[4] == pytest.approx(np.median(runs["median"].rounds[0].score[:4]))
    assert "n1600" in runs["median"].survivors[1]
    # The others' first evaluations come at 1 % of their runs; its target, 516.7, is 32 % of its own.
    assert runs["reach"].survivors == runs["median"].survivors
    # Kept, it is evaluated in the second round and is the best at the end: 2.2 + 5 * 516.7**-0.3.
    for rule in ("median", "prior", "reach"):
        assert runs[rule].best_loss == pytest.approx(2.9864, abs=1e-4)
        assert runs[rule].best_loss < runs["last"].best_loss


def test_unseen_scores_fall_back_to_the_median_and_leave_scores_alone_without_a_prior():
    from sh_scaling.simulation import unseen_scores

    unseen = np.array([False, False, True])
    # One planned compute among the scored: no line, the median.
    assert unseen_scores(np.array([1.0, 3.0, np.inf]), unseen, np.array([5.0, 5.0, 50.0]), "prior")[2] == 2.0
    # Nobody scored: nothing to learn from, the scores stand (the tie-break decides, as with "last").
    alone = unseen_scores(np.array([np.inf, np.inf, np.inf]), unseen, np.array([5.0, 6.0, 7.0]), "prior")
    assert np.isinf(alone).all()
    assert np.isinf(unseen_scores(np.array([1.0, 3.0, np.inf]), unseen, None, "last")[2])
    with pytest.raises(ValueError, match="unknown unseen rule 'first'"):
        unseen_scores(np.array([1.0]), np.array([True]), None, "first")


def test_reach_scores_only_the_unseen_candidates_whose_target_reaches_the_others_first_evaluation():
    from sh_scaling.simulation import RoundInputs, Strategy, round_scores

    # Two candidates planned for 100, first evaluated at 10 (10 % of their runs); two unseen, planned for 1000:
    # one whose target is 5 % of its run (the rounds left end before 10 %), one whose target is 20 %.
    inputs = RoundInputs(
        start=np.array([20.0, 20.0, np.nan, np.nan]), loss=np.array([2.0, 3.0, np.nan, np.nan]),
        target=np.array([60.0, 60.0, 50.0, 200.0]), mean=np.array([2.0, 3.0, np.nan, np.nan]),
        std=np.zeros(4), fallback=np.array([True, True, True, True]),
        anchors=(np.array([10.0, 20.0, 10.0, 20.0]), np.array([2.5, 2.0, 3.5, 3.0]), np.array([0, 0, 1, 1])),
        planned=np.array([100.0, 100.0, 1000.0, 1000.0]))
    score = round_scores(Strategy("SH", "observed", unseen="reach"), inputs)
    assert score.tolist() == [2.0, 3.0, np.inf, 2.5]
    assert round_scores(Strategy("SH", "observed", unseen="median"), inputs).tolist() == [2.0, 3.0, 2.5, 2.5]


def test_a_strategy_refuses_an_unseen_rule_it_cannot_apply():
    from sh_scaling.simulation import Strategy

    with pytest.raises(ValueError, match="unknown unseen rule 'keep'"):
        Strategy("x", "observed", unseen="keep")
    with pytest.raises(ValueError, match="ranking 'oracle' scores none"):
        Strategy("x", "oracle", unseen="prior")


def _two_short_two_long() -> list[Curve]:
    short = [Curve.from_arrays(f"short{i}", np.geomspace(1.0, 10.0, 10), 3.0 + 0.1 * i + np.geomspace(1.0, 10.0, 10)
                               ** -0.3) for i in range(2)]
    c = np.geomspace(1.0, 1000.0, 30)
    return [*short, *(Curve.from_arrays(f"long{i}", c, 2.0 + 0.1 * i + 2.0 * c ** -0.3) for i in range(2))]


def test_replan_spends_what_finished_candidates_leave_and_forecasts_what_survivors_then_get():
    cands = _two_short_two_long()
    # Rounds of 4 and 2 share 400 as 50 and 100 each. The short runs end at 10 in the first round: 80 unspent.
    plain = allocate(cands, 400.0, "SH+PL", rng=np.random.default_rng(0))
    assert plain.spent == pytest.approx(320.0)
    assert plain.rounds[0].target[2:].tolist() == [150.0, 150.0] and plain.trained["long0"] == 150.0
    # replan gives the second round 100 * 280 / 200 = 140 each and forecasts exactly that.
    replanned = allocate(cands, 400.0, "SH+PL", replan=True, rng=np.random.default_rng(0))
    assert replanned.spent == pytest.approx(400.0)
    assert replanned.rounds[0].target[2:] == pytest.approx([190.0, 190.0])
    assert [replanned.trained[f"long{i}"] for i in range(2)] == pytest.approx([190.0, 190.0])
    assert replanned.best_loss < plain.best_loss
    with pytest.raises(ValueError, match="replan and carry_over"):
        allocate(cands, 400.0, "SH", replan=True, carry_over=True)


def test_replan_splits_the_last_rounds_budget_among_survivors_that_can_use_it():
    from sh_scaling.halving import replanned_shares, water_fill

    # One round (two candidates): 200 each, but short0 ends at 10; long0 takes the other 190.
    cands = [_two_short_two_long()[0], _two_short_two_long()[2]]
    res = allocate(cands, 400.0, "SH", replan=True, rng=np.random.default_rng(0))
    assert res.trained == pytest.approx({"short0": 10.0, "long0": 390.0})
    assert water_fill(9.0, np.array([1.0, 10.0, 10.0])).tolist() == [1.0, 4.0, 4.0]
    assert replanned_shares([50.0, 100.0], [4, 2], 1, 280.0) == pytest.approx([140.0])


# ------------------------------------------------------------------------------------------------ bad input
def _late(n: int, first_from: float = 10.0, prefix: str = "late") -> list[Curve]:
    """Curves evaluated only from compute ``first_from`` on (a warm-up without evaluations), of planned compute 100."""
    c = np.geomspace(1.0, 100.0, 20)
    keep = c >= first_from
    return [Curve.from_arrays(f"{prefix}{i}", c[keep], (2.0 + 0.1 * i + 3.0 * c ** -0.3)[keep]) for i in range(n)]


def test_a_first_round_that_evaluates_no_candidate_is_decided_by_the_seeded_tie_break():
    from sh_scaling.simulation import round_table

    cands = CurveSet(_late(8))
    # Rounds of 8, 4, 2 share 200 as 8.3, 16.7 and 33.3 each: nobody reaches a first evaluation (11.3) in the
    # first round, the survivors do in the second.
    firsts = {}
    for name in ("SH", "SH+PL", "SH+FA", "SH+MPL", "SH+FA-SE"):
        res = allocate(cands, 200.0, name, rng=np.random.default_rng(3))
        first = res.rounds[0]
        assert np.isnan(first.loss).all() and np.isnan(first.forecast).all() and first.fallback.all()
        assert np.isfinite(res.best_loss) and not np.isnan(res.rounds[1].loss).any()
        firsts[name] = res.survivors[1]
        table = round_table(res, cands)
        assert table[table["round"] == 0]["loss"].isna().all()
    # Every strategy draws the same survivors from the same tie-break stream; another stream, other survivors.
    assert len({tuple(s) for s in firsts.values()}) == 1
    other = {tuple(allocate(cands, 200.0, "SH", rng=np.random.default_rng(s)).survivors[1]) for s in range(6)}
    assert len(other) > 1


def test_candidates_not_evaluated_yet_rank_after_every_evaluated_one():
    early = Curve.from_arrays("early", np.geomspace(1.0, 100.0, 20), 9.0 + np.geomspace(1.0, 100.0, 20) ** -0.3)
    cands = CurveSet([early, *_late(7)])
    for name in ("SH", "SH+PL", "SH+FA"):
        res = allocate(cands, 200.0, name, rng=np.random.default_rng(0))
        # The one evaluated candidate has by far the worst loss, and still goes on: the others have none to rank.
        assert "early" in res.survivors[1]
        # With keep_unseen, the unseen candidates the remaining rounds can evaluate go on first.
        kept = allocate(cands, 200.0, name, keep_unseen=True, rng=np.random.default_rng(0))
        assert "early" not in kept.survivors[1]


def test_simulate_refuses_a_budget_that_evaluates_no_candidate_of_any_set():
    late = CurveSet(_late(6, first_from=30.0))
    with pytest.raises(ValueError, match=r"budget 0.1 .* evaluates no candidate .* smallest budget .* is 0.253"):
        simulate(late, candidates=(4,), budgets=(0.3, 0.1), strategies=("SH",), repeats=2, progress=False)
    df = simulate(late, candidates=(4,), budgets=(0.253,), strategies=("SH", "SH+FA"), repeats=2, progress=False)
    assert np.isfinite(df.best_loss).all()
    # allocate, one replay, returns what such a budget does: nothing observed.
    res = allocate(late, 0.1 * late.exhaustive_compute, "SH")
    assert np.isnan(res.best_loss) and all(np.isnan(r.loss).all() for r in res.rounds)


def test_candidate_sets_that_cannot_be_evaluated_are_counted_and_left_out_of_the_means():
    early = [Curve.from_arrays(f"early{i}", np.geomspace(1.0, 100.0, 20), 2.0 + 0.1 * i + 3.0 * np.geomspace(
        1.0, 100.0, 20) ** -0.3) for i in range(3)]
    pool = CurveSet([*early, *_late(3, first_from=30.0)])
    # Two candidates in one round share 10 % of 200: 10 each, before any late curve's first evaluation (37.9).
    df = simulate(pool, candidates=(2,), budgets=(0.1,), strategies=("SH", "SH+FA"), repeats=12, seed=1,
                  progress=False)
    empty = df[df.best_loss.isna()]
    assert len(empty) and empty.ri_vs_sh.isna().all()
    s = summarize(df).set_index("strategy")
    assert (s["unevaluated"] == len(empty) // 2).all() and (s["n"] == 12).all()
    assert np.isfinite(s["ri_mean"]).all() and np.isfinite(s["best_loss"]).all()


def test_curves_with_and_without_schedules_are_each_forecast_their_own_way():
    from sh_scaling.curves import generate_synthetic
    from sh_scaling.simulation import STRATEGIES, round_inputs, round_table, stated_schedule
    from sh_scaling.surrogates import MultiPowerLawSurrogate, forecast

    syn = generate_synthetic(6, seed=1)
    mixed = CurveSet([Curve.from_arrays(c.id, c.compute, c.loss,
                                        {k: v for k, v in c.meta.items() if not (i % 2 and k == "schedule")})
                      for i, c in enumerate(syn)])
    stated = [stated_schedule(c) is not None for c in mixed]
    assert stated == [True, False] * 3
    trained = {c.id: 0.3 * c.final_compute for c in mixed}
    targets = np.array([c.final_compute for c in mixed])
    inputs = round_inputs(STRATEGIES["SH+MPL"], list(mixed), trained, targets, [])
    assert inputs.scheduled.tolist() == stated
    for i, c in enumerate(mixed):
        o = c.observed_until(trained[c.id])
        keep = o.compute >= STRATEGIES["SH+MPL"].warmup_fraction * c.final_compute
        proto = MultiPowerLawSurrogate(schedule=stated_schedule(c), max_compute=c.meta["max_compute"])
        alone = forecast(proto, [(o.compute[keep], o.loss[keep])], [targets[i]])
        assert inputs.mean[i] == pytest.approx(alone.mean[0])
    res = allocate(mixed, 0.3 * mixed.exhaustive_compute, "SH+MPL")
    table = round_table(res, mixed)
    decided = table[table["round"] < table["n_rounds"] - 1]
    assert (decided["scheduled"] == decided["candidate"].map(dict(zip(mixed.ids, stated)))).all()
    assert not table[table.strategy == "SH+MPL"]["scheduled"].isna().any()
    assert not round_table(allocate(mixed, 0.3 * mixed.exhaustive_compute, "SH+PL"), mixed)["scheduled"].any()


def test_a_schedule_that_is_not_one_is_refused_naming_the_curve():
    from sh_scaling.curves import generate_synthetic

    syn = generate_synthetic(4, seed=2)
    named = CurveSet([Curve.from_arrays(c.id, c.compute, c.loss, {**c.meta, "schedule": "cosine"}) for c in syn])
    for run in (lambda: allocate(named, 0.3 * named.exhaustive_compute, "SH+MPL"),
                lambda: simulate(named, candidates=(3,), budgets=(0.3,), strategies=("SH+FA-MPL",), repeats=1,
                                 progress=False)):
        with pytest.raises(ValueError, match=r"curve 'syn-000': meta\['schedule'\]='cosine' is not a learning-rate"):
            run()
    # A strategy that does not read schedules is not concerned; a to_dict() mapping is a schedule.
    assert np.isfinite(allocate(named, 0.3 * named.exhaustive_compute, "SH+PL").best_loss)
    as_dict = CurveSet([Curve.from_arrays(c.id, c.compute, c.loss, {**c.meta, "schedule": c.meta["schedule"].to_dict()})
                        for c in syn])
    a = allocate(as_dict, 0.3 * as_dict.exhaustive_compute, "SH+MPL")
    b = allocate(syn, 0.3 * syn.exhaustive_compute, "SH+MPL")
    assert a.survivors == b.survivors and a.best_loss == b.best_loss


def _ladder_with_a_sparsely_evaluated_large_model():
    """Four runs evaluated 20 times each from 1 % of their run, and a larger run evaluated at 1/16, 1/4, 1/2 and all
    of its run: worse than n800 at 100 (3.912 against 3.656), better at the targets of the first cut."""
    out = []
    for k, planned in enumerate((100.0, 200.0, 400.0, 800.0)):
        c = np.geomspace(0.01 * planned, planned, 20)
        out.append(Curve.from_arrays(f"n{int(planned)}", c, 3.0 - 0.2 * k + 5.0 * c ** -0.3))
    c = np.array([100.0, 400.0, 800.0, 1600.0])
    return [*out, Curve.from_arrays("n1600", c, 1.4 + 10.0 * c ** -0.3)]


def test_a_candidate_with_one_point_scored_by_the_others_drop_from_its_stage_survives_and_wins():
    import dataclasses

    from sh_scaling.simulation import STRATEGIES

    cands = _ladder_with_a_sparsely_evaluated_large_model()
    runs = {rule: allocate(cands, 1500.0, dataclasses.replace(STRATEGIES["SH+PL"], few=rule),
                           rng=np.random.default_rng(0)) for rule in ("last", "stage")}
    # Rounds of 5, 3, 2 share 1500 as 100, 166.7, 250 each: n1600 has one point (100) when the first round ends,
    # too few to forecast. "last" takes its observed loss for its forecast and drops it at the first cut.
    first = runs["last"].rounds[0]
    assert first.fallback[4] and first.score[4] == pytest.approx(1.4 + 10.0 * 100.0 ** -0.3)
    assert "n1600" not in runs["last"].survivors[1]
    # "stage": its loss times the median drop of the others observed from its stage (100 / 1600) to its target's
    # (516.7 / 1600): n100 and n200 (n400 and n800 have not reached that stage yet).
    lo, hi = 100.0 / 1600.0, runs["stage"].rounds[0].target[4] / 1600.0
    assert hi == pytest.approx((100.0 + 1500.0 / 9 + 250.0) / 1600.0)
    drops = []
    for c in cands[:2]:
        seen = c.observed_until(100.0)
        stage = seen.compute / c.final_compute
        drops.append(seen.loss[stage <= hi].min() / seen.loss[stage <= lo].min())
    score = runs["stage"].rounds[0].score[4]
    assert score == pytest.approx((1.4 + 10.0 * 100.0 ** -0.3) * np.median(drops))
    assert "n1600" in runs["stage"].survivors[1]
    # Kept, it is evaluated at 400 in the last round and is the best at the end: 1.4 + 10 * 400**-0.3.
    assert runs["stage"].best_loss == pytest.approx(1.4 + 10.0 * 400.0 ** -0.3)
    assert runs["stage"].best_loss < runs["last"].best_loss == pytest.approx(3.1784, abs=1e-4)


def test_few_rules_leave_candidates_with_enough_points_alone_and_fall_back_to_the_slope():
    from sh_scaling.simulation import RoundInputs, Strategy, round_scores

    # Candidate 0 forecast (2.0 -> 1.0 over a decade); 1 has one point, 2 has three points and no usable forecast
    # (a fit that failed): only 1 is too few to forecast. Nobody was observed at 1's stages: the slope stands in.
    inputs = RoundInputs(
        start=np.array([10.0, 10.0, 10.0]), loss=np.array([2.0, 4.0, 3.0]), target=np.array([100.0, 1000.0, 100.0]),
        mean=np.array([1.0, 4.0, 3.0]), std=np.zeros(3), fallback=np.array([False, True, True]),
        anchors=(np.array([1.0, 5.0, 10.0, 10.0, 2.0, 5.0, 10.0]), np.array([3.0, 2.5, 2.0, 4.0, 3.5, 3.2, 3.0]),
                 np.array([0, 0, 0, 1, 2, 2, 2])),
        planned=np.array([100.0, 10000.0, 100.0]))
    pl = Strategy("x", "forecast", "powerlaw")
    assert round_scores(pl, inputs).tolist() == [1.0, 4.0, 3.0]
    for rule in ("slope", "stage"):
        # Halving per decade over two decades.
        assert round_scores(Strategy("x", "forecast", "powerlaw", few=rule), inputs) == pytest.approx([1.0, 1.0, 3.0])
    assert round_scores(Strategy("x", "forecast", "powerlaw", few="median"), inputs).tolist() == [1.0, 1.0, 3.0]


def test_a_strategy_refuses_a_few_rule_it_cannot_apply():
    from sh_scaling.simulation import Strategy

    with pytest.raises(ValueError, match="unknown few rule 'first'"):
        Strategy("x", "frontier", "powerlaw", few="first")
    with pytest.raises(ValueError, match="few='stage' stands in for forecasts; ranking 'observed' has none"):
        Strategy("x", "observed", few="stage")


def test_a_strategy_spec_changes_settings_and_names_what_is_wrong():
    from sh_scaling.simulation import STRATEGIES, parse_strategy

    s = parse_strategy("SH+FA:unseen=last:few=stage")
    assert (s.name, s.ranking, s.unseen, s.few) == ("SH+FA:unseen=last:few=stage", "frontier", "last", "stage")
    assert parse_strategy("SH+FA") is STRATEGIES["SH+FA"]
    for spec, message in (("SH+FA:few=bogus", "few='bogus'; choose one of"),
                          ("SH+FA:unseen", "'unseen' is not a setting; write KEY=VALUE"),
                          ("SH+FA:replan=1", "'replan=1' is not a setting"),
                          ("SH+FA:few=stage:few=slope", "few given twice"),
                          ("SH:few=stage", "strategy 'SH:few=stage': few='stage' stands in for forecasts"),
                          ("XYZ:few=stage", "unknown strategy 'XYZ'")):
        with pytest.raises(ValueError, match=message):
            parse_strategy(spec)


def test_a_round_record_holds_what_the_few_rule_ranked_with_and_names_the_rule():
    import dataclasses

    from sh_scaling.simulation import STRATEGIES, round_table

    cands = _ladder_with_a_sparsely_evaluated_large_model()
    runs = {rule: allocate(cands, 1500.0, dataclasses.replace(STRATEGIES["SH+PL"], few=rule),
                           rng=np.random.default_rng(0)) for rule in ("last", "stage", "median")}
    observed = 1.4 + 10.0 * 100.0 ** -0.3  # n1600's one point, too few to forecast
    last, stage, median = (runs[rule].rounds[0] for rule in ("last", "stage", "median"))
    assert last.ranked_by[4] == "few:last" and last.forecast[4] == pytest.approx(observed)
    # "stage" ranks it by its loss times the others' drop (the test above): the record holds that forecast.
    assert stage.ranked_by[4] == "few:stage" and stage.forecast[4] < observed
    assert stage.score[4] == pytest.approx(stage.forecast[4]) and stage.fallback[4]
    # "median" scores it with the others' median score: no forecast of its own.
    assert median.ranked_by[4] == "few:median" and np.isnan(median.forecast[4])
    assert median.score[4] == pytest.approx(np.median(median.score[:4]))
    for rec in (last, stage, median):
        assert rec.ranked_by[:4] == ["forecast"] * 4
    assert runs["last"].rounds[-1].ranked_by is None
    table = round_table(runs["stage"], cands)
    assert table.loc[(table["round"] == 0) & (table.candidate == "n1600"), "ranked_by"].item() == "few:stage"
    sh = allocate(cands, 1500.0, "SH", rng=np.random.default_rng(0)).rounds[0]
    assert sh.ranked_by == ["observed"] * 5


def test_a_round_record_names_the_unseen_rule_and_the_oracle():
    from sh_scaling.simulation import STRATEGIES, RoundInputs, round_ranking

    inputs = RoundInputs(start=np.array([10.0, 10.0, np.nan, np.nan]), loss=np.array([2.0, 3.0, np.nan, np.nan]),
                         target=np.array([20.0, 20.0, 20.0, 2.0]), mean=np.array([2.0, 3.0, np.nan, np.nan]),
                         std=np.zeros(4), fallback=np.array([True, True, True, True]),
                         anchors=(np.array([2.0, 5.0, 10.0, 10.0]), np.array([3.0, 2.5, 2.0, 3.0]),
                                  np.array([0, 0, 0, 1])),
                         planned=np.array([100.0, 100.0, 100.0, 100.0]))
    # 0 has three points and no usable forecast, 1 has one point. Candidate 2 reaches the others' first-evaluation
    # stage (0.06 of its run, the median of 0.02 and 0.1), 3 does not.
    reach = round_ranking(STRATEGIES["SH+FA"], inputs)
    assert reach.ranked_by == ["observed", "few:last", "unseen:reach", "unseen:last"]
    assert round_ranking(STRATEGIES["SH+PL"], inputs).ranked_by[2:] == ["unseen:last"] * 2
    oracle = allocate(_ladder_with_a_sparsely_evaluated_large_model(), 1500.0, "SH+oracle").rounds[0]
    assert oracle.ranked_by == ["oracle"] * 5
