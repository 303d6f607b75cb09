"""plot_decisions: where the pruner decided each trial, what it saw and what it forecast."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from sh_scaling.curves import from_study
from sh_scaling.visualization._data import (
    DecisionPoint,
    decision_points,
    decisions_title,
    dodge,
    forecast_range,
)
from sh_scaling.visualization._style import (
    COLORS,
    RULE_SYMBOLS,
    format_number,
    html_text,
    import_plotly,
    run_style,
    wrap,
)

__all__ = ["plot_decisions"]


def plot_decisions(
    study: optuna.study.Study, *, compute_fn: Callable[[dict[str, Any], int], float] | None = None
) -> Any:
    """Every decision of :class:`~sh_scaling.SurrogateHalvingPruner`: where each trial was pruned and why.

    Two panels with a shared compute axis (log-log). Left: the loss each trial had at each rung it was decided
    at, over the trials' curves (grey). Right: the forecast of its loss at ``max_compute`` behind that
    decision, with ± one standard deviation (trials decided at the same rung spread slightly sideways so their
    bars stay apart). Promotions are green, prunings purple; the marker says which rule
    decided (open circle: too few trials at the rung to rank; filled circle: ranked; diamond: kept by the
    frontier rule although ranked out). Hovering a marker shows the decision in words, as the trial's
    ``sh_scaling:decision`` attribute gives it, and the trial's params.

    A study with no recorded decision (another pruner, or trials that never reached a rung) gives an empty
    figure that says so, with a warning, as ``optuna.visualization`` does for an empty study.

    Args:
        study: The study.
        compute_fn: For trials reported with plain ``trial.report``: the pruner's ``compute_fn``, to draw their
            curves.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    go = import_plotly()
    from plotly.subplots import make_subplots

    points = decision_points(study)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09,
                        subplot_titles=("loss at the rung", "forecast at max_compute (± 1 std)"))
    fig.update_layout(template="plotly_white", height=500,
                      legend=dict(x=1.02, y=1.0, xanchor="left", yanchor="top", font=dict(size=11)),
                      title=dict(text=_title(*decisions_title(study, points)), x=0.01))
    if not points:
        warnings.warn(f"plot_decisions: study {study.study_name!r} has no pruning decision recorded", UserWarning,
                      stacklevel=2)
        fig.add_annotation(text="no pruning decision recorded in this study", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5)
        return fig
    _add_curves(fig, go, study, compute_fn)
    # Trials decided at the same rung share its compute: spread their forecasts sideways so that the error
    # bars stay apart (the loss panel keeps exact compute, on the trials' curves).
    shifted = dict(zip(((p.trial, p.rung) for p in points), dodge([p.compute for p in points],
                                                                  [p.rung for p in points])))
    # Hundreds of decisions (a large sweep) are drawn smaller and translucent, so that overlaps read as density;
    # markers are larger than a line's points, so ten decisions count as one run's line.
    style = run_style(len(points) // 10)
    scale = 1.0 if style.markers else 0.65
    for (promoted, rule), group in _groups(points).items():
        color = COLORS["promoted"] if promoted else COLORS["pruned_decision"]
        symbol, _, words = RULE_SYMBOLS.get(rule, RULE_SYMBOLS["rank"])
        name = f"{'promoted' if promoted else 'pruned'}: {words} ({len(group)})"
        hover = [_hover(p) for p in group]
        common = dict(mode="markers", legendgroup=name, text=hover, hovertemplate="%{text}<extra></extra>",
                      opacity=style.alpha,
                      marker=dict(symbol=symbol, size=(9 if promoted else 11) * scale, color=color,
                                  line=dict(width=1.5, color=color)))
        fig.add_trace(go.Scatter(x=[p.compute for p in group], y=[p.loss for p in group], name=name, **common),
                      row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[shifted[p.trial, p.rung] for p in group], y=[p.forecast for p in group], showlegend=False,
            error_y=dict(type="data", array=[p.std for p in group], color=color, thickness=1, width=3), **common,
        ), row=1, col=2)
    # One compute axis for both panels (make_subplots' shared_xaxes links panels of a column, not of a row).
    fig.update_xaxes(type="log", title="compute at the rung", exponentformat="power", ticks="outside", matches="x")
    fig.update_yaxes(type="log", ticks="outside")
    fig.update_yaxes(title="loss", row=1, col=1)
    fig.update_yaxes(title="forecast loss at max_compute", row=1, col=2, range=list(np.log10(forecast_range(points))))
    return fig


def _title(title: str, note: str) -> str:
    lines = [html_text(title)] + [f"<sup>{html_text(line)}</sup>" for line in (wrap(note, 130) if note else [])]
    return "<br>".join(lines)


def _groups(points: list[DecisionPoint]) -> dict[tuple[bool, str], list[DecisionPoint]]:
    groups: dict[tuple[bool, str], list[DecisionPoint]] = {}
    # Prunings last, so that they are drawn over the promotions they are compared with.
    for p in sorted(points, key=lambda p: (not p.promoted, p.rule)):
        groups.setdefault((p.promoted, p.rule), []).append(p)
    return groups


def _hover(p: DecisionPoint) -> str:
    params = html_text(", ".join(f"{k} = {format_number(v)}" for k, v in p.params.items()))
    # Decision texts are long single lines: break them at their clauses so the hover box stays narrow.
    text = html_text(p.text).replace("; ", ";<br>")
    return f"<b>trial {p.trial}</b>, rung {p.rung}" + (f" ({params})" if params else "") + f"<br>{text}"


def _add_curves(fig: Any, go: Any, study: optuna.study.Study, compute_fn: Any) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = from_study(study, states=None, compute_fn=compute_fn)
    except ValueError:
        return  # no compute to draw the curves with: the decisions alone are still shown
    for i, c in enumerate(curves):
        fig.add_trace(go.Scatter(x=c.compute, y=c.loss, mode="lines", line=dict(color="rgba(0,0,0,0.18)", width=1),
                                 name="trials' curves", legendgroup="curves", showlegend=i == 0,
                                 hovertemplate=f"trial {c.id}<extra></extra>"), row=1, col=1)
