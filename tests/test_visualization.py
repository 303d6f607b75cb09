"""The plots of sh_scaling.visualization (plotly) and sh_scaling.visualization.matplotlib: what each one draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402
from test_from_study import replay_into_study  # noqa: E402

import sh_scaling  # noqa: E402
import sh_scaling.visualization as viz  # noqa: E402
import sh_scaling.visualization.matplotlib as viz_mpl  # noqa: E402
from sh_scaling.curves import CurveSet, from_study, generate_synthetic  # noqa: E402
from sh_scaling.keys import RUNG_PREFIX  # noqa: E402
from sh_scaling.laws import fit_scaling_law  # noqa: E402
from sh_scaling.simulation import replay_study  # noqa: E402

pytest.importorskip("plotly")
N_BOOT = 200


@pytest.fixture(scope="module")
def synthetic() -> CurveSet:
    return generate_synthetic(12, seed=0)


@pytest.fixture(scope="module")
def study(synthetic) -> optuna.Study:
    return replay_into_study(synthetic, seed=1)


def names(fig) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False and t.name]


def test_plot_curves_tells_complete_from_pruned_and_draws_forecasts_frontier_and_named_band(study):
    curves = from_study(study)
    n_pruned = sum(c.meta["state"] == "PRUNED" for c in curves)
    n_complete = len(curves) - n_pruned
    assert n_pruned >= 2 and n_complete >= 2
    top = 10 * max(c.final_compute for c in curves)
    fig = viz.plot_curves(study, predict_at=top, n_bootstrap=N_BOOT)
    shown = names(fig)
    assert f"complete runs ({n_complete})" in shown and f"pruned runs ({n_pruned})" in shown
    assert "observed frontier" in shown
    # One dashed segment per pruned run with a forecast, from its last point to (max_compute, forecast).
    forecast = next(t for t in fig.data if (t.name or "").startswith("pruner's forecast"))
    assert forecast.line.dash == "dash"
    ends = {(x, y) for x, y in zip(forecast.x[1::3], forecast.y[1::3])}
    expected = {(c.meta["max_compute"], c.meta["forecast"]) for c in curves
                if c.meta["state"] == "PRUNED" and "forecast" in c.meta and c.meta["max_compute"] > c.final_compute}
    assert ends == expected and len(expected) >= 1
    # The band is the law's own interval over runs, named; the label's exponent interval is the law's.
    law = fit_scaling_law(list(curves), n_bootstrap=N_BOOT, seed=0)
    lo, hi = law.intervals["gamma"]
    assert f"law's band: 95 % percentile bootstrap over {len(curves)} runs" in shown
    assert any(f"[{lo:.3g}, {hi:.3g}]" in n for n in shown if n.startswith("law: "))
    pred = law.predict_interval(top)
    marker = next(t for t in fig.data if (t.name or "").startswith("prediction at"))
    assert marker.y[0] == pytest.approx(pred.loss[0])
    assert marker.error_y.array[0] == pytest.approx(pred.high[0] - pred.loss[0])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.legend.x > 1  # outside the data


def test_plot_curves_accepts_curves_and_a_given_law(synthetic):
    law = fit_scaling_law(list(synthetic), n_bootstrap=0)
    fig = viz.plot_curves(synthetic, law=law)
    assert f"complete runs ({len(synthetic)})" in names(fig)
    assert not any(n.startswith("pruned") or n.startswith("law's band") for n in names(fig))
    assert "no band" in fig.layout.title.text
    assert not any(n.startswith("law") for n in names(viz.plot_curves(synthetic, law=False)))
    with pytest.raises(ValueError, match="expected an optuna Study, a CurveSet or a list of Curve"):
        viz.plot_curves([1, 2, 3])


def test_plot_curves_with_one_run_says_why_there_is_no_interval(synthetic):
    fig = viz.plot_curves(synthetic[:1])
    assert "intervals over runs need at least 2 runs" in fig.layout.title.text


def test_plot_decisions_shows_every_rung_record_with_its_decision(study):
    records = [(t.number, k) for t in study.trials for k in t.system_attrs if k.startswith(RUNG_PREFIX)]
    fig = viz.plot_decisions(study)
    left = [t for t in fig.data if t.xaxis == "x" and t.mode == "markers"]
    assert sum(len(t.x) for t in left) == len(records)
    pruned = [t for t in left if t.name.startswith("pruned")]
    assert sum(len(t.x) for t in pruned) == sum(t.state.name == "PRUNED" for t in study.trials)
    assert all("pruned at rung" in h for t in pruned for h in t.text)
    # Forecasts at the same rung are spread sideways, each by less than a tenth of a decade.
    right = [t for t in fig.data if t.xaxis == "x2"]
    assert sum(len(t.x) for t in right) == len(records)
    for t_left, t_right in zip(left, right):
        assert np.all(np.abs(np.log10(np.array(t_right.x) / np.array(t_left.x))) < 0.1)


def test_plot_decisions_without_decisions_warns_and_says_so():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.warns(UserWarning, match="no pruning decision recorded"):
        fig = viz.plot_decisions(study)
    assert "no pruning decision" in fig.layout.annotations[-1].text


@pytest.fixture(scope="module")
def replayed_df(synthetic):
    import pandas as pd

    return pd.concat([replay_study(synthetic[:8], p, seeds=2) for p in ("ours", "nop")], ignore_index=True)


def test_plot_tradeoff_marks_each_pruner_with_its_mean_and_seeds(replayed_df):
    fig = viz.plot_tradeoff(replayed_df)
    means = [t for t in fig.data if t.showlegend]
    assert [t.name for t in means] == ["ours", "nop"]
    nop = next(t for t in means if t.name == "nop")
    assert nop.x[0] == pytest.approx(1.0)
    assert "mean ± s.e. over 2 seeds" in fig.layout.legend.title.text
    assert len({t.marker.symbol for t in means}) == 2  # shapes differ, not only colours
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['pruner'"):
        viz.plot_tradeoff(replayed_df.drop(columns="pruner"))
    marked = viz.plot_tradeoff(replayed_df, bound=0.3)
    lines = [shape for shape in marked.layout.shapes if shape.type == "line"]
    assert len(lines) == 2 and all(line.x0 == line.x1 == 0.3 for line in lines)


def _legend_right_of_axes(fig) -> bool:
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    return all(legend.x0 >= ax.get_window_extent().x1 for ax in fig.axes)


def test_matplotlib_versions_draw_the_same_and_keep_the_legend_off_the_data(study, replayed_df):
    curves = from_study(study)
    fig = viz_mpl.plot_curves(study, predict_at=10 * max(c.final_compute for c in curves), n_bootstrap=N_BOOT)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("law's band: 95 % percentile bootstrap over") for label in labels)
    assert any(label.startswith("pruner's forecast at max_compute") for label in labels)
    assert fig.axes[0].get_xscale() == "log" and _legend_right_of_axes(fig)
    plt.close(fig)
    fig = viz_mpl.plot_decisions(study)
    assert len(fig.axes) == 2 and _legend_right_of_axes(fig)
    plt.close(fig)
    fig = viz_mpl.plot_tradeoff(replayed_df)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ours", "nop"] and _legend_right_of_axes(fig)
    plt.close(fig)
    fig = viz_mpl.plot_tradeoff(replayed_df, bound=0.3)
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["least for zero regret", "nop", "ours"]
    assert all(any(list(line.get_xdata()) == [0.3, 0.3] for line in ax.get_lines()) for ax in fig.axes)
    plt.close(fig)


def test_many_runs_are_a_translucent_bundle_under_the_frontier_and_law():
    many = generate_synthetic(40, seed=2)
    fig = viz.plot_curves(many, n_bootstrap=50)
    runs = [t for t in fig.data if t.legendgroup == "complete"]
    assert len(runs) == 40 and all(t.mode == "lines" and t.opacity < 0.85 for t in runs)
    few = [t for t in viz.plot_curves(many[:5], law=False).data if t.legendgroup == "complete"]
    assert all(t.mode == "lines+markers" for t in few)


def test_plot_decisions_names_the_improvement_rule():
    # Four runs, each a little better than the last: asked for 30 % improvement, every run after the first is
    # stopped by the improvement rule, and the plot says so in its legend and hover text (no stage margin, so
    # that the rule's threshold alone decides).
    pruner = sh_scaling.SurrogateHalvingPruner(max_compute=64.0, min_compute=4.0, rung_factor=2.0,
                                               min_improvement=0.3, margin=None)
    study = optuna.create_study(pruner=pruner)
    c = np.geomspace(1.0, 64.0, 12)
    for scale in (5.0, 4.0, 3.0, 2.0):
        trial = study.ask()
        for x, y in zip(c, 1.0 + scale * c**-0.5):
            sh_scaling.report(trial, float(y), compute=float(x))
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, float(y))
    fig = viz.plot_decisions(study)
    stopped = [t for t in fig.data if (t.name or "").startswith("pruned: would not improve on what was observed")]
    assert stopped and sum(len(t.x) for t in stopped) == 3
    assert all("stopped by the improvement rule" in h for t in stopped for h in t.text)
    fig_mpl = viz_mpl.plot_decisions(study)
    labels = fig_mpl.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("pruned: would not improve on what was observed") for label in labels)
    plt.close(fig_mpl)
