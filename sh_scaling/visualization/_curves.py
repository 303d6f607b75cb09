"""plot_curves: loss against compute for every run of a sweep, with the frontier and the law fitted to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from sh_scaling.curves import Curve, CurveSet
from sh_scaling.laws import ScalingLaw
from sh_scaling.visualization._data import (
    N_BOOTSTRAP,
    CurvesData,
    curves_data,
    describe_interval,
    error_bar,
    law_label,
)
from sh_scaling.visualization._style import (
    COLORS,
    DRAW_ORDER,
    GROUP_NAMES,
    FRONTIER_GREY,
    OUTCOME_STYLE,
    format_number,
    html_text,
    import_plotly,
    run_style,
    wrap,
)

__all__ = ["plot_curves"]

def plot_curves(
    study_or_curves: optuna.study.Study | CurveSet | list[Curve],
    *,
    compute_fn: Callable[[dict[str, Any], int], float] | None = None,
    law: ScalingLaw | bool = True,
    predict_at: float | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int | None = 0,
) -> Any:
    """Loss against compute on log-log axes: every run, the pruner's forecasts, the frontier and the law.

    * Complete runs are blue circles, pruned runs orange crosses (running and failed ones grey squares), each
      point with the trial, its state and params on hover.
    * For each pruned run the pruner's last forecast is a dashed line from the run's last point to its
      ``max_compute``: where the pruner thought it was going when it stopped it.
    * The observed frontier (lowest loss reached with at most that much compute) is the wide grey line under
      the runs, and the law fitted to it (:func:`sh_scaling.laws.fit_scaling_law`, intervals over runs) a
      vermillion line with its band; the legend names the interval (``95 % percentile bootstrap over 12
      runs``), the same one ``sh-scaling report`` prints. With ``predict_at`` the law and its band go on to that
      compute (dotted past the data) and the prediction there is marked with its interval.

    Args:
        study_or_curves: An Optuna study (its complete and pruned trials, read with
            :func:`sh_scaling.curves.from_study`), or curves (a :class:`~sh_scaling.curves.CurveSet` or a list
            of :class:`~sh_scaling.curves.Curve`; a curve's ``meta["state"]`` says if it was pruned).
        compute_fn: For a study reported with plain ``trial.report``: the pruner's ``compute_fn(params, step)``.
        law: ``True`` (default) fits the law; a :class:`~sh_scaling.laws.ScalingLaw` draws that one (e.g. the
            one a report prints); ``False`` draws none.
        predict_at: A compute at which to mark the law's prediction with its interval (e.g. 10x the largest).
        n_bootstrap: Bootstrap replicates when the law is fitted here (default 1000).
        seed: Seed of that bootstrap.

    Returns:
        A ``plotly.graph_objects.Figure``, which optuna-dashboard can show
        (``optuna_dashboard.save_plotly_graph_object(study, fig)``).

    Example::

        from sh_scaling.visualization import plot_curves

        fig = plot_curves(study)
        fig.write_html("curves.html")
    """
    go = import_plotly()
    data = curves_data(study_or_curves, compute_fn=compute_fn, law=law, predict_at=predict_at,
                       n_bootstrap=n_bootstrap, seed=seed)
    fig = go.Figure()
    grid, front = data.frontier
    # Under the runs: the frontier is made of their points and would hide them.
    fig.add_trace(go.Scatter(x=grid, y=front, mode="lines", name="observed frontier",
                             line=dict(color=FRONTIER_GREY, width=9), hoverinfo="skip"))
    _add_runs(fig, go, data)
    _add_forecasts(fig, go, data)
    _add_law(fig, go, data)
    fig.update_layout(
        title=dict(text=_title(data), x=0.01, xanchor="left"),
        template="plotly_white",
                height=580,
        legend=dict(x=1.02, y=1.0, xanchor="left", yanchor="top", font=dict(size=11)),
        margin=dict(r=20),
        hovermode="closest",
    )
    fig.update_xaxes(type="log", title=f"compute ({html_text(data.unit)})", exponentformat="power", showgrid=True,
                     minor=dict(showgrid=False, ticks="outside"), ticks="outside")
    fig.update_yaxes(type="log", title="loss", showgrid=True, minor=dict(ticks="outside"), ticks="outside")
    return fig


def _title(data: CurvesData) -> str:
    text = f"{html_text(data.curves.name)}: {data.counts}"
    for note in filter(None, (data.law_note, data.forecast_note)):
        text += "".join(f"<br><sup>{html_text(line)}</sup>" for line in wrap(note, 120))
    return text


def _hover(curve: Curve) -> str:
    params = "<br>".join(html_text(f"{k[len('params_'):]} = {format_number(v)}") for k, v in curve.meta.items()
                         if k.startswith("params_"))
    head = (f"trial {curve.id} · {curve.meta.get('state', 'run')}" if "trial" in curve.meta
            else f"run {html_text(curve.id)}")
    return f"{head}<br>{params}<br>compute %{{x:.4g}}<br>loss %{{y:.5g}}<extra></extra>".replace("<br><br>", "<br>")


def _add_runs(fig: Any, go: Any, data: CurvesData) -> None:
    for group in DRAW_ORDER:
        curves = data.groups[group]
        color, symbol, _ = OUTCOME_STYLE[group]
        style = run_style(len(curves))
        for i, c in enumerate(curves):
            fig.add_trace(go.Scatter(
                x=c.compute, y=c.loss, mode="lines+markers" if style.markers else "lines", legendgroup=group,
                showlegend=i == 0, name=f"{GROUP_NAMES[group]} ({len(curves)})",
                line=dict(color=color, width=style.width),
                marker=dict(symbol=symbol, size=6, color=color, line=dict(width=1.2, color=color)),
                opacity=style.alpha, hovertemplate=_hover(c),
            ))


def _add_forecasts(fig: Any, go: Any, data: CurvesData) -> None:
    if not data.forecasts:
        return
    # One trace, segments separated by None: one legend entry for all of them.
    x: list[float | None] = []
    y: list[float | None] = []
    text: list[str | None] = []
    for cid, c0, l0, c1, fc in data.forecasts:
        x += [c0, c1, None]
        y += [l0, fc, None]
        words = f"trial {html_text(cid)}: forecast {fc:.5g} at max_compute {c1:.4g}"
        text += [words, words, None]
    style = run_style(len(data.forecasts))
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="lines+markers", name=data.forecast_label,
        line=dict(color=COLORS["pruned"], width=style.width, dash="dash"), opacity=style.alpha,
        marker=dict(symbol="circle-open", size=[0, 8, 0] * len(data.forecasts), color=COLORS["pruned"]),
        text=text, hovertemplate="%{text}<extra></extra>",
    ))


def _add_law(fig: Any, go: Any, data: CurvesData) -> None:
    law = data.law
    if law is None:
        return
    color = COLORS["law"]
    if data.band is not None:
        band = data.band
        fig.add_trace(go.Scatter(x=band.compute, y=band.high, mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip", legendgroup="band"))
        fig.add_trace(go.Scatter(
            x=band.compute, y=band.low, mode="lines", line=dict(width=0), fill="tonexty",
            fillcolor="rgba(213,94,0,0.18)", legendgroup="band", hoverinfo="skip", legendrank=1002,
            name=f"law's band: {describe_interval(law)}",
        ))
        inside, start = data.band_split()
        fig.add_trace(go.Scatter(x=band.compute[inside], y=band.loss[inside], mode="lines", line=dict(color=color,
                                 width=2.2), name=f"law: {law_label(law)}", legendgroup="law", legendrank=1001,
                                 hovertemplate="law: loss %{y:.5g} at compute %{x:.4g}<extra></extra>"))
        if start is not None:
            fig.add_trace(go.Scatter(x=band.compute[start:], y=band.loss[start:], mode="lines",
                                     line=dict(color=color, width=2.2, dash="dot"), legendgroup="law",
                                     name="law, extrapolated", hoverinfo="skip", legendrank=1003))
    else:
        grid = np.geomspace(law.c_min, law.c_max, 50)
        fig.add_trace(go.Scatter(x=grid, y=law.predict(grid), mode="lines", line=dict(color=color, width=2.2),
                                 name=f"law: {law_label(law)}"))
    if data.prediction is not None:
        p = data.prediction
        c, mid, lo, hi = float(p.compute[0]), float(p.loss[0]), float(p.low[0]), float(p.high[0])
        fig.add_trace(go.Scatter(
            x=[c], y=[mid], mode="markers", marker=dict(symbol="diamond", size=11, color=color),
            error_y=dict(type="data", symmetric=False, array=[error_bar(mid, lo, hi)[1]],
                         arrayminus=[error_bar(mid, lo, hi)[0]], color=color,
                         thickness=1.5, width=6),
            name=f"prediction at {c:.3g}: {mid:.4g} [{lo:.4g}, {hi:.4g}]", legendrank=1004,
            hovertemplate=f"law's prediction at {c:.4g}: {mid:.5g} [{lo:.5g}, {hi:.5g}]<extra></extra>",
        ))
