"""The stage error model of the decision core: margins by stage, updated by a study's own errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sh_scaling.halving import (
    STAGE_MARGINS,
    STAGE_NODES,
    forecast_scores,
    margin_quantile,
    optimistic,
    stage_margin,
)

PRIOR = (0.10, 0.08, 0.04, 0.02, 0.01)


def test_the_prior_is_read_at_the_nodes_interpolated_in_log_stage_and_held_beyond():
    for node, value in zip(STAGE_NODES, PRIOR):
        assert stage_margin(node, PRIOR, coverage=0.9, prior_weight=10)[0] == pytest.approx(value)
    mid = math.sqrt(0.05 * 0.1)  # halfway between the first two nodes in log stage
    assert stage_margin(mid, PRIOR, coverage=0.9, prior_weight=10)[0] == pytest.approx(0.09)
    assert stage_margin(0.01, PRIOR, coverage=0.9, prior_weight=10)[0] == pytest.approx(0.10)
    assert stage_margin(0.99, PRIOR, coverage=0.9, prior_weight=10)[0] == pytest.approx(0.01)


def test_the_study_errors_near_the_stage_weigh_as_many_as_they_are():
    rng = np.random.default_rng(0)
    errors = rng.normal(-0.02, 0.05, 10)  # ten outcomes at 10 % of their runs
    stages = np.full(10, 0.1)
    m, info = stage_margin(0.1, PRIOR, errors, stages, coverage=0.9, prior_weight=10)
    own = -np.quantile(errors, 0.1)
    assert info["n"] == 10 and info["study"] == pytest.approx(own)
    assert m == pytest.approx((10 * 0.08 + 10 * own) / 20)
    # Errors made at stages more than a factor 2 away do not count.
    far, info = stage_margin(0.4, PRIOR, errors, stages, coverage=0.9, prior_weight=10)
    assert info["n"] == 0 and far == pytest.approx(0.02)


def test_widen_takes_a_study_that_misses_by_more_than_the_table_whole_and_weighs_one_that_misses_by_less():
    stages = np.full(3, 0.1)
    worse = np.array([-0.35, -0.30, -0.12])  # a study on a plateau: its forecasts far too pessimistic
    m, info = stage_margin(0.1, PRIOR, worse, stages, coverage=0.9, prior_weight=10, widen=True)
    assert m == pytest.approx(0.35) and info["widened"] == 1.0 and info["study"] == pytest.approx(0.35)
    weighed, info = stage_margin(0.1, PRIOR, worse, stages, coverage=0.9, prior_weight=10)
    assert "widened" not in info
    assert weighed == pytest.approx((10 * 0.08 + 3 * -np.quantile(worse, 0.1)) / 13)
    assert weighed < 0.15 < m
    # Evidence of smaller errors is weighed against the table whether or not widen is on.
    better = np.array([-0.01, 0.0, 0.01])
    assert stage_margin(0.1, PRIOR, better, stages, coverage=0.9, prior_weight=10, widen=True) == stage_margin(
        0.1, PRIOR, better, stages, coverage=0.9, prior_weight=10)


def test_margin_quantile_is_the_lower_tail_of_the_log_errors_and_never_negative():
    e = np.linspace(-0.1, 0.1, 101)
    assert margin_quantile(e, 0.9) == pytest.approx(0.08)
    assert margin_quantile(np.full(5, 0.03), 0.9) == 0.0  # forecasts that were all too optimistic: no margin
    assert margin_quantile(np.array([]), 0.9) == 0.0


def test_the_margin_lowers_only_the_trial_at_risk_and_only_where_it_reaches_lower():
    mean = np.array([2.0, 2.0])
    std = np.array([0.01, 0.01])
    margin = np.array([0.05, 0.05])
    at_risk = np.array([True, False])
    s = forecast_scores(mean, std, optimism=0.4, at_risk=at_risk, margin=margin)
    assert s[0] == pytest.approx(2.0 * math.exp(-0.05)) and s[1] == 2.0
    # A wide Gaussian interval already reaches lower: it stands.
    wide = optimistic(np.array([2.0]), np.array([1.0]), 0.4, margin=np.array([0.01]))
    assert wide[0] == pytest.approx(optimistic(np.array([2.0]), np.array([1.0]), 0.4)[0])


@pytest.mark.parametrize("kwargs", [{"coverage": 1.0}, {"coverage": 0.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="coverage"):
        stage_margin(0.1, PRIOR, prior_weight=10, **kwargs)
    with pytest.raises(ValueError, match="stage node"):
        stage_margin(0.1, PRIOR[:3], coverage=0.9, prior_weight=10)


def test_the_shipped_tables_never_grow_with_the_stage_nor_shrink_with_the_coverage():
    coverages = sorted(STAGE_MARGINS)
    for coverage in coverages:
        for table in STAGE_MARGINS[coverage].values():
            assert len(table) == len(STAGE_NODES)
            assert all(a >= b >= 0 for a, b in zip(table, table[1:]))
    for low, high in zip(coverages, coverages[1:]):
        for kind in ("own", "multipower"):
            assert all(a <= b for a, b in zip(STAGE_MARGINS[low][kind], STAGE_MARGINS[high][kind]))


def test_the_centre_table_moves_each_node_towards_the_study_median_near_it():
    from sh_scaling.halving import at_stage, stage_center_table

    prior = (-0.05, -0.04, -0.03, -0.02, -0.01)
    assert stage_center_table(prior, prior_weight=10) == prior
    errors = np.array([0.0] * 10 + [-0.2] * 30)
    stages = np.array([0.1] * 10 + [0.8] * 30)
    table = stage_center_table(prior, errors, stages, prior_weight=10)
    # Node 0.05 and 0.1 see the ten errors at 0.1 (within a factor 2), node 0.2 too; 0.4 and 0.8 the thirty.
    assert table[1] == pytest.approx((10 * -0.04 + 10 * 0.0) / 20)
    assert table[4] == pytest.approx((10 * -0.01 + 30 * -0.2) / 40)
    assert at_stage(table, 0.8) == pytest.approx(table[4]) and at_stage(table, 2.0) == pytest.approx(table[4])


def test_a_miss_already_proven_by_an_unfinished_trial_widens_the_margin_before_any_trial_has_finished():
    # An unfinished trial whose forecast at 10 % of its run was 2.0 has since observed 1.5: its forecast missed by
    # at least log(2.0 / 1.5); the table allows 0.08 there.
    proven = (np.array([math.log(1.5 / 2.0)]), np.array([0.1]))
    m, info = stage_margin(0.1, PRIOR, coverage=0.9, prior_weight=10, widen=True, proven=proven)
    assert m == pytest.approx(math.log(2.0 / 1.5)) and info["widened"] == 1.0 and info["n_proven"] == 1.0
    # Far from the stage it says nothing; a proven miss the table already covers changes nothing.
    assert stage_margin(0.8, PRIOR, coverage=0.9, prior_weight=10, widen=True, proven=proven)[0] == pytest.approx(0.01)
    small = (np.array([-0.02]), np.array([0.1]))
    assert stage_margin(0.1, PRIOR, coverage=0.9, prior_weight=10, widen=True, proven=small)[0] == pytest.approx(0.08)
    # Without widen, proven misses are not used.
    assert stage_margin(0.1, PRIOR, coverage=0.9, prior_weight=10, proven=proven)[0] == pytest.approx(0.08)
    # Beside finished evidence that misses by less, the proven miss still sets the margin.
    finished = (np.array([-0.1, -0.05]), np.array([0.1, 0.1]))
    m2, info2 = stage_margin(0.1, PRIOR, *finished, coverage=0.9, prior_weight=10, widen=True, proven=proven)
    assert m2 == pytest.approx(math.log(2.0 / 1.5)) and info2["widened"] == 1.0


def test_proven_misses_are_forecasts_already_beaten_by_a_later_rung_of_the_same_trial():
    from sh_scaling.pruning._competitors import RungSummary
    from sh_scaling.pruning._outcomes import proven_misses

    def rec(compute, loss, forecast, surrogate=None):
        out = {"compute": compute, "loss": loss, "forecast": forecast, "target": 100.0, "fallback": False}
        if surrogate:
            out["surrogate"] = surrogate
        return out

    summary = RungSummary({1: rec(5.0, 3.0, 2.4, "multipower"), 2: rec(10.0, 2.5, 2.2, "multipower"),
                           3: rec(20.0, 2.0, 1.9, "multipower")}, 1, [5.0, 10.0, 20.0], [3.0, 2.5, 2.0])
    errors, stages = proven_misses([summary], "multipower")
    # Rung 1's forecast 2.4 is beaten by the loss 2.0 at rung 3, rung 2's 2.2 as well; rung 3's has no later rung.
    assert sorted(zip(stages.tolist(), errors.tolist())) == [(0.05, pytest.approx(math.log(2.0 / 2.4))),
                                                             (0.1, pytest.approx(math.log(2.0 / 2.2)))]
    assert proven_misses([summary], "own")[0].size == 0  # another kind of forecast: nothing


# ------------------------------------------------------------------------------------ how sure widening is
def test_a_hundred_errors_just_past_the_table_are_not_judged_by_their_single_worst():
    """The rule before ``widen_level``: a 90 % quantile a hair above the table took the margin to the largest of
    a hundred misses (0.14 -> 0.5 on the synthetic curves, one trial at a time against eight at once). Now the
    table must be shown too narrow (more misses beyond it than chance allows) and the margin is a bound on the
    study's own 10th percentile."""
    from sh_scaling.halving import MARGIN_WIDEN_LEVEL, widened_margin

    rng = np.random.default_rng(3)
    errors = np.sort(rng.normal(-0.02, 0.09, 100))
    errors[0] = -0.5  # one run that misses far more than the rest
    stages = np.full(100, 0.1)
    table = (0.10, -np.quantile(errors, 0.1) - 0.002, 0.04, 0.02, 0.01)  # the study's quantile just past it
    old, info_old = stage_margin(0.1, table, errors, stages, coverage=0.9, prior_weight=10, widen=True)
    assert info_old["widened"] == 1.0 and old == pytest.approx(0.5)
    new, info = stage_margin(0.1, table, errors, stages, coverage=0.9, prior_weight=10, widen=True,
                             widen_level=MARGIN_WIDEN_LEVEL)
    assert "widened" not in info  # 11 or so of 100 beyond a table that allows 10: no evidence it is too narrow
    assert new == pytest.approx((10 * table[1] + 100 * -np.quantile(errors, 0.1)) / 110)
    assert widened_margin(errors, table[1], 0.9, MARGIN_WIDEN_LEVEL) is None


def test_the_table_is_widened_only_where_more_errors_lie_past_it_than_chance_allows():
    from sh_scaling.halving import widened_margin

    # Three forecasts, all far past the table (a plateau study): 1 in 1000 by chance; the largest miss.
    few = np.array([-0.35, -0.30, -0.12])
    assert widened_margin(few, 0.08, 0.9, 0.1) == pytest.approx(0.35)
    m, info = stage_margin(0.1, PRIOR, few, np.full(3, 0.1), coverage=0.9, prior_weight=10, widen=True,
                           widen_level=0.1)
    assert m == pytest.approx(0.35) and info["widened"] == 1.0
    # One of one past the table: P = 0.1, at the level; one of two: P = 0.19, not enough.
    assert widened_margin(np.array([-0.2]), 0.08, 0.9, 0.1) == pytest.approx(0.2)
    assert widened_margin(np.array([-0.2, 0.0]), 0.08, 0.9, 0.1) is None
    # A hundred errors: 16 past the table is more than chance allows (P(Bin(100, 0.1) >= 16) = 0.040), 14 is
    # not (0.12).
    for k, widened in ((16, True), (14, False)):
        errors = np.concatenate([-np.linspace(0.5, 0.21, k), np.zeros(100 - k)])
        assert (widened_margin(errors, 0.2, 0.9, 0.1) == pytest.approx(0.5)) if widened else \
            widened_margin(errors, 0.2, 0.9, 0.1) is None


def test_widen_level_is_checked():
    from sh_scaling.pruning import SurrogateHalvingPruner

    for bad in (0, 1, 1.5, "0.1", True):
        with pytest.raises(ValueError, match="widen_level"):
            SurrogateHalvingPruner(margin={"coverage": 0.9, "own": PRIOR, "multipower": PRIOR, "widen_level": bad})
    SurrogateHalvingPruner(margin={"coverage": 0.9, "own": PRIOR, "multipower": PRIOR, "widen_level": None})

