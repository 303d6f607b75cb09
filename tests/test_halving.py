"""The decision core, and the drivers that must make exactly its decisions (fixed-budget simulator, pruner)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sh_scaling.curves import generate_synthetic
from sh_scaling.halving import (
    decide,
    fit_window,
    forecast_scores,
    frontier_scores,
    lower_envelope,
    observed_gap,
    round_shares,
    round_sizes,
    rung_compute,
    rungs_crossed,
    select_survivors,
)
from sh_scaling.pruning import SurrogateHalvingPruner, report
from sh_scaling.simulation import Strategy, allocate
from sh_scaling.surrogates import forecast
from _surrogates import LogLinear

optuna.logging.set_verbosity(optuna.logging.ERROR)


# ------------------------------------------------------------------------------------------------ geometry
@given(st.floats(1e-3, 1e6), st.floats(1.01, 1e4), st.sampled_from([1.5, 2.0, 3.0, 4.0]))
def test_rungs_crossed_are_exactly_the_grid_points_in_range(lo, span, factor):
    hi = lo * span
    ks = list(rungs_crossed(lo, hi, factor))
    for k in ks:
        assert lo * (1 - 1e-9) <= rung_compute(k, factor) <= hi * (1 + 1e-9)
    if ks:
        assert rung_compute(ks[0] - 1, factor) < lo and rung_compute(ks[-1] + 1, factor) > hi


@given(st.integers(1, 200), st.sampled_from([1.5, 2.0, 3.0, 4.0]), st.floats(1.0, 1e22))
def test_round_shares_spend_exactly_the_budget(n, eta, budget):
    sizes = round_sizes(n, eta)
    assert sizes[0] == n and sizes[-1] >= 1
    assert all(b == math.ceil(a / eta) for a, b in zip(sizes, sizes[1:]))
    shares = round_shares(budget, sizes)
    assert sum(m * s for m, s in zip(sizes, shares)) == pytest.approx(budget)


def test_fit_window_keeps_the_last_point():
    c = np.array([1.0, 2.0, 3.0])
    assert fit_window(c, 100.0, 0.02).tolist() == [False, True, True]
    assert fit_window(c, 1000.0, 0.5).tolist() == [False, False, True]


def test_lower_envelope_excluding_own_row():
    rows = np.array([[1.0, 5.0], [2.0, 3.0], [4.0, np.inf]])
    assert lower_envelope(rows).tolist() == [1.0, 3.0]
    assert lower_envelope(rows, exclude_own=True).tolist() == [[2.0, 3.0], [1.0, 5.0], [1.0, 3.0]]


# ---------------------------------------------------------------------------------------------------- rules
def test_decide_ranks_and_says_which_rule_decided():
    d = decide(2.0, np.array([1.0, 3.0, 4.0]), reduction_factor=2)
    assert d.promoted and d.rank == 2 and d.quota == 2 and d.rule == "rank"
    d = decide(5.0, np.array([1.0, 3.0, 4.0]), reduction_factor=2)
    assert not d.promoted and "ranked 4 of 4; top 2 go on" in d.explain()
    d = decide(-0.1, np.array([-0.5, -0.3, -0.2]), reduction_factor=4, keep_below_frontier=True)
    assert d.promoted and d.rule == "frontier" and "kept by the frontier rule" in d.explain()
    d = decide(9.0, np.array([1.0]), reduction_factor=4, n_startup=2)
    assert d.promoted and d.rule == "startup"


def test_improvement_rule_stops_a_candidate_whatever_its_rank_and_says_by_how_much():
    gap = math.log(0.995)  # its optimistic forecast improves on the observed losses by 0.5 %
    d = decide(-1.0, np.array([0.0]), reduction_factor=2, n_startup=5, observed_gap=gap, min_improvement=0.01)
    assert not d.promoted and d.rule == "improvement" and d.gain == pytest.approx(0.005)
    assert "improves on the losses already observed by 0.5 % at most" in d.explain()
    above = decide(-1.0, np.array([0.0]), reduction_factor=2, observed_gap=math.log(1.2), min_improvement=0.01)
    assert "stays above the losses already observed, by 20 % at least" in above.explain()
    # Absurd gaps (a forecast e^1000 times the observed loss, or infinite) stop the trial and still explain.
    for gap in (1000.0, math.inf):
        far = decide(-1.0, np.array([0.0]), reduction_factor=2, observed_gap=gap, min_improvement=0.01)
        assert far.rule == "improvement" and "stopped by the improvement rule" in far.explain()
    # Improving by more than asked: the usual rules decide (here startup), as without the rule.
    d = decide(-1.0, np.array([0.0]), reduction_factor=2, n_startup=5, observed_gap=math.log(0.98),
               min_improvement=0.01)
    assert d.promoted and d.rule == "startup"
    # No rule, or nothing observed to improve on (-inf): unchanged.
    assert decide(-1.0, np.array([0.0]), reduction_factor=2, observed_gap=gap).rule == "rank"
    assert decide(-1.0, np.array([0.0]), reduction_factor=2, observed_gap=-np.inf, min_improvement=0.5).promoted


def test_observed_gap_against_the_lowest_loss_and_the_observed_frontier():
    observed = (np.array([1.0, 100.0]), np.array([2.0, 1.5]))
    # best_loss: the forecast end against the lowest loss reported anywhere.
    assert observed_gap(10.0, 2.2, 100.0, 1.6, observed, objective="best_loss") == pytest.approx(math.log(1.6 / 1.5))
    # frontier: the path, straight in log-log from (10, 2.2) to (100, 1.6), against the lowest loss reported at
    # or below each compute (2.0 up to compute 100, then 1.5). Its lowest point against 2.0 is the last grid
    # point before 100, 30/31 of the way along.
    grid = np.linspace(math.log(10.0), math.log(100.0), 32)
    path = math.log(2.2) + (grid[-2] - grid[0]) / (grid[-1] - grid[0]) * math.log(1.6 / 2.2)
    assert observed_gap(10.0, 2.2, 100.0, 1.6, observed, objective="frontier") == pytest.approx(path - math.log(2.0))
    # A forecast above the current loss counts as the current loss (paths never rise); nothing observed: -inf.
    assert observed_gap(10.0, 1.4, 100.0, 9.0, observed, objective="best_loss") == pytest.approx(math.log(1.4 / 1.5))
    assert observed_gap(10.0, 2.2, 100.0, 1.6, (np.array([]), np.array([])), objective="frontier") == -np.inf
    with pytest.raises(ValueError, match="objective"):
        observed_gap(10.0, 2.2, 100.0, 1.6, observed, objective="area")
    # Against the definition, on random points (ties in compute included).
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.choice(np.geomspace(1.0, 1000.0, 15), 12)
        l = rng.uniform(1.0, 3.0, 12)
        grid = np.linspace(math.log(5.0), math.log(500.0), 32)
        path = math.log(2.5) + (grid - grid[0]) / (grid[-1] - grid[0]) * math.log(1.2 / 2.5)
        frontier = np.array([min([math.log(b) for a, b in zip(c, l) if a <= math.exp(x) * (1 + 1e-9)] or [np.inf])
                             for x in grid])
        expected = (path - frontier).min()
        assert observed_gap(5.0, 2.5, 500.0, 1.2, (c, l), objective="frontier") == pytest.approx(expected)


def test_select_survivors_finished_last_ties_by_tiebreak():
    scores = np.array([3.0, 1.0, 1.0, 0.5])
    finished = np.array([False, False, False, True])
    assert select_survivors(scores, 2, finished=finished, tiebreak=np.array([0, 0.9, 0.1, 0])).tolist() == [2, 1]


# ------------------------------------------------- one score for both settings: only the rule tells them apart
_cands = st.integers(2, 8).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(1.0, 1e3), min_size=n, max_size=n),     # start
        st.lists(st.floats(2.0, 6.0), min_size=n, max_size=n),     # loss at start
        st.lists(st.floats(1.5, 1e3), min_size=n, max_size=n),     # target / start
        st.lists(st.floats(0.5, 1.0), min_size=n, max_size=n),     # forecast / loss
        st.lists(st.floats(0.0, 0.3), min_size=n, max_size=n),     # std
    )
)


@given(_cands, st.sampled_from([None, 0.1, 0.4]))
def test_a_candidates_score_is_the_same_whether_it_alone_or_everyone_is_at_risk(cands, optimism):
    """The asynchronous pruner puts one trial at risk, fixed-budget halving all of them: a candidate's own
    score depends only on its own optimism, so both settings score it identically."""
    start, loss, ratio, frac, std = (np.array(v) for v in cands)
    target, mean = start * ratio, loss * frac
    n = start.size
    everyone = np.ones(n, bool)
    all_fa = frontier_scores(start, loss, target, mean, std, optimism=optimism, at_risk=everyone)
    all_fc = forecast_scores(mean, std, optimism=optimism, at_risk=everyone)
    for i in range(n):
        alone = np.arange(n) == i
        one_fa = frontier_scores(start, loss, target, mean, std, optimism=optimism, at_risk=alone)
        one_fc = forecast_scores(mean, std, optimism=optimism, at_risk=alone)
        assert one_fa[i] == all_fa[i]
        assert one_fc[i] == all_fc[i]


# ------------------------------------------------------------- the fixed-budget simulator makes the core's decisions
def _core_round(strategy, alive, dead, trained, targets):
    """The core's scores for one round, computed here from the curves, independently of the simulator."""
    obs = [c.observed_until(trained[c.id]) for c in alive]
    points = []
    for o, c in zip(obs, alive):
        keep = fit_window(o.compute, c.final_compute, strategy.warmup_fraction)
        points.append((o.compute[keep], o.loss[keep]))
    fc = forecast(strategy.surrogate, points, targets)
    seen = np.array([len(o) > 0 for o in obs])
    if strategy.ranking == "forecast":
        s = forecast_scores(fc.mean, fc.std, optimism=strategy.optimism, at_risk=np.ones(len(alive), bool))
        return np.where(seen, s, np.inf)
    idx = np.flatnonzero(seen)
    c, l, owner = [], [], []
    for j, i in enumerate(idx):
        c += list(obs[i].compute); l += list(obs[i].loss); owner += [j] * len(obs[i])
    for d in dead:
        o = d.observed_until(trained[d.id])
        c += list(o.compute); l += list(o.loss); owner += [-1] * len(o)
    scores = np.full(len(alive), np.inf)
    if idx.size:
        scores[idx] = frontier_scores(
            np.array([obs[i].final_compute for i in idx]), np.array([obs[i].min_loss for i in idx]),
            targets[idx], fc.mean[idx], fc.std[idx], optimism=strategy.optimism,
            at_risk=np.ones(idx.size, bool), anchors=(np.array(c), np.array(l), np.array(owner, int)),
        )
    return scores


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 12),
    budget_frac=st.sampled_from([0.02, 0.05, 0.1, 0.3]),
    ranking=st.sampled_from(["forecast", "frontier"]),
    optimism=st.sampled_from([None, 0.2, 0.4]),
    eta=st.sampled_from([2.0, 3.0]),
)
def test_simulator_makes_exactly_the_core_decisions(seed, n, budget_frac, ranking, optimism, eta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = list(generate_synthetic(n, seed=seed))
    strategy = Strategy("under-test", ranking, LogLinear(), optimism, 0.02)
    budget = budget_frac * sum(c.final_compute for c in curves)
    result = allocate(curves, budget, strategy, reduction_factor=eta, rng=np.random.default_rng(seed))
    # Replay the rounds the simulator went through and check each survivor set against the core's choice.
    sizes = round_sizes(n, eta)
    shares = round_shares(budget, sizes)
    rng = np.random.default_rng(seed)
    trained = {c.id: 0.0 for c in curves}
    by_id = {c.id: c for c in curves}
    for r, alive_ids in enumerate(result.survivors):
        alive = [by_id[i] for i in alive_ids]
        for c in alive:
            reached = trained[c.id] + min(shares[r], c.final_compute - trained[c.id])
            trained[c.id] = c.final_compute if reached >= c.final_compute * (1 - 1e-9) else reached
        if r == len(result.survivors) - 1:
            break
        future = sum(shares[r + 1:])
        targets = np.array([min(trained[c.id] + future, c.final_compute) for c in alive])
        dead = [c for c in curves if c.id not in set(alive_ids)]
        scores = _core_round(strategy, alive, dead, trained, targets)
        finished = np.array([trained[c.id] >= c.final_compute for c in alive])
        keep = select_survivors(scores, sizes[r + 1], finished=finished, tiebreak=rng.random(len(alive)))
        assert [alive[i].id for i in keep] == result.survivors[r + 1]


# ---------------------------------------------------------------------- the pruner makes the core's decisions
class _Recording(SurrogateHalvingPruner):
    """The shipped pruner, remembering what it handed to the core and what came back."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def decide_record(self, record, others, anchors, r, residuals=None, observed=None):
        out = super().decide_record(record, others, anchors, r, residuals=residuals, observed=observed)
        self.calls.append((dict(record), [dict(o) for o in others], anchors, r, out))
        return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    objective=st.sampled_from(["frontier", "best_loss"]),
    optimism=st.sampled_from([None, 0.2, 0.4]),
    eta=st.sampled_from([2.0, 3.0, 4.0]),
)
def test_pruner_decision_equals_the_core_decision_on_the_same_inputs(seed, objective, optimism, eta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = list(generate_synthetic(10, seed=seed))
    finals = [c.final_compute for c in curves]
    pruner = _Recording(LogLinear(), max_compute=lambda p: finals[p["i"]], objective=objective,
                        optimism=optimism, reduction_factor=eta, n_startup_trials=1)
    study = optuna.create_study(pruner=pruner)
    for i in np.random.default_rng(seed).permutation(len(curves)):
        trial = study.ask()
        trial.suggest_int("i", int(i), int(i))
        pruned = False
        for c, l in zip(curves[i].compute, curves[i].loss):
            report(trial, float(l), compute=float(c))
            if trial.should_prune():
                pruned = True
                break
        study.tell(trial, None if pruned else float(curves[i].loss[-1]),
                   state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE)
    assert pruner.calls
    for record, others, anchors, r, (decision, ranking, score) in pruner.calls:
        if record["fallback"]:
            others = [o for o in others if abs(o["compute"] / r - 1) < 1e-6]
            assert ranking == "observed"
            scores = np.array([record["loss"]] + [o["loss"] for o in others])
        else:
            recs = [record, *others]
            at_risk = np.arange(len(recs)) == 0
            mean = np.array([x["forecast"] for x in recs])
            std = np.array([x["std"] or 0.0 for x in recs])
            # The stage margin the pruner recorded for the deciding trial (its own, never the competitors').
            margin = np.array([record.get("margin") or 0.0] + [0.0] * len(others))
            if objective == "best_loss":
                scores = forecast_scores(mean, std, optimism=optimism, at_risk=at_risk, margin=margin)
            else:
                scores = frontier_scores(np.array([x["compute"] for x in recs]), np.array([x["loss"] for x in recs]),
                                         np.array([x["target"] for x in recs]), mean, std, optimism=optimism,
                                         at_risk=at_risk, anchors=anchors, margin=margin)
        reach = min(record["target"], r * 1.5) * (1 - 1e-9)
        pool = np.array([o["target"] >= reach for o in others], bool)
        expected = decide(scores[0], scores[1:][pool], reduction_factor=eta, n_startup=1,
                          keep_below_frontier=(ranking == "frontier"))
        assert decision == expected and score == scores[0]
    # And what was stored is what the core decided.
    for t in study.trials:
        for k, v in t.system_attrs.items():
            if k.startswith("sh_scaling:rung:") and "rank" in v:
                assert v["promoted"] == (v["rank"] <= v["quota"] or v["rule"] == "frontier")


def test_calibrate_forecasts_uses_the_empirical_quantiles():
    from statistics import NormalDist

    from sh_scaling.halving import MIN_CALIBRATION_RESIDUALS, calibrate_forecasts, optimistic

    rng = np.random.default_rng(0)
    mean, std = np.array([3.0, 2.5]), np.array([0.1, 0.2])
    # Forecasts that were pessimistic by one std and twice too confident: outcomes ~ mean - std + N(0, 2 std).
    residuals = -1.0 + 2.0 * rng.standard_normal(4000)
    m, s, info = calibrate_forecasts(mean, std, residuals, optimism=0.4)
    assert info is not None and info["n"] == 4000
    assert info["shift"] == pytest.approx(-1.0, abs=0.1) and info["scale"] == pytest.approx(2.0, rel=0.1)
    # The median and the optimistic value are the empirical quantiles of the residuals.
    assert m == pytest.approx(mean + np.median(residuals) * std)
    assert optimistic(m, s, 0.4) == pytest.approx(mean + np.quantile(residuals, 0.4) * std)
    # Calibrated Gaussian residuals change (almost) nothing.
    m, s, _ = calibrate_forecasts(mean, std, rng.standard_normal(20000), optimism=0.4)
    assert m == pytest.approx(mean, abs=0.01 * std.max()) and s == pytest.approx(std, rel=0.05)
    # Too few residuals (NaN ones do not count): unchanged, and nothing applied.
    few = np.append(np.ones(MIN_CALIBRATION_RESIDUALS - 1), np.nan)
    m, s, info = calibrate_forecasts(mean, std, few, optimism=0.4)
    assert info is None and (m == mean).all() and (s == std).all()
    # optimism=None moves the median only; identical residuals keep a sliver of spread.
    m, s, info = calibrate_forecasts(mean, std, np.full(50, 0.5), optimism=None)
    assert m == pytest.approx(mean + 0.5 * std) and (s == std).all()
    _, s, _ = calibrate_forecasts(mean, std, np.full(50, 0.5), optimism=0.4)
    assert (s > 0).all() and NormalDist().inv_cdf(0.4) < 0


def test_lower_envelope_and_anchor_rows_match_the_plain_definitions():
    from sh_scaling.halving import lower_envelope
    from sh_scaling.halving._scores import _anchor_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, g = int(rng.integers(1, 7)), int(rng.integers(1, 9))
        rows = rng.choice([0.5, 1.0, 2.0, np.inf], size=(n, g))  # few values: many ties, unknowns
        expected = np.array([[min([rows[j, x] for j in range(n) if j != i], default=np.inf) for x in range(g)]
                             for i in range(n)])
        assert np.array_equal(lower_envelope(rows, exclude_own=True), expected)
        assert np.array_equal(lower_envelope(rows), rows.min(axis=0))
        grid = np.sort(rng.normal(size=g))
        m = int(rng.integers(0, 12))
        c, l = np.exp(rng.normal(size=m)), np.exp(rng.normal(size=m))
        owner = rng.integers(-1, n + 1, size=m)  # -1 and n: points of no candidate
        owned, free = _anchor_rows(n, grid, (c, l, owner))
        step = np.where(grid[None, :] >= np.log(c)[:, None] - 1e-12, np.log(l)[:, None], np.inf)
        for i in range(n):
            assert np.array_equal(owned[i], step[owner == i].min(axis=0, initial=np.inf))
        outside = (owner < 0) | (owner >= n)
        assert np.array_equal(free, step[outside].min(axis=0, initial=np.inf))
