"""plot_decisions with matplotlib."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from sh_scaling.curves import Curve, from_study
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
    import_matplotlib,
    matplotlib_text,
    run_style,
    wrap,
)
from sh_scaling.visualization.matplotlib._axes import label_points, legend_outside, readable_log_axes

__all__ = ["plot_decisions"]


def plot_decisions(
    study: optuna.study.Study, *, compute_fn: Callable[[dict[str, Any], int], float] | None = None
) -> Any:
    """Every decision of the pruner: the loss at each rung (left) and the forecast behind it (right).

    The matplotlib version of :func:`sh_scaling.visualization.plot_decisions` (same content, without the hover
    text; the decisions in words are in each trial's ``sh_scaling:decision`` attribute). Pruned trials are
    labelled with their number in the left panel, the labels placed so that none overlaps another (a label
    moved away from its marker is joined to it by a thin line).

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    plt = import_matplotlib()
    points = decision_points(study)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, layout="constrained")
    title, note = decisions_title(study, points)
    fig.suptitle(matplotlib_text("\n".join([title, *(wrap(note, 110) if note else [])])), x=0.01, ha="left",
                 fontsize=10)
    left.set_title("loss at the rung", fontsize=10)
    right.set_title("forecast at max_compute (± 1 std)", fontsize=10)
    if not points:
        warnings.warn(f"plot_decisions: study {study.study_name!r} has no pruning decision recorded", UserWarning,
                      stacklevel=2)
        left.text(0.5, 0.5, "no pruning decision recorded", ha="center", va="center", transform=left.transAxes)
        return fig
    curves: Sequence[Curve]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = from_study(study, states=None, compute_fn=compute_fn)
    except ValueError:
        curves = []  # no compute to draw the curves with: the decisions alone are still shown
    for i, c in enumerate(curves):
        left.plot(c.compute, c.loss, color="0.75", lw=0.8, zorder=1, label="trials' curves" if i == 0 else None)
    groups: dict[tuple[bool, str], list[DecisionPoint]] = {}
    for p in sorted(points, key=lambda p: (not p.promoted, p.rule)):
        groups.setdefault((p.promoted, p.rule), []).append(p)
    # Trials decided at the same rung share its compute: spread their forecasts sideways so that the error
    # bars stay apart (the loss panel keeps exact compute, on the trials' curves).
    shifted = dict(zip(((p.trial, p.rung) for p in points), dodge([p.compute for p in points],
                                                                  [p.rung for p in points])))
    # Hundreds of decisions (a large sweep) are drawn smaller and translucent, so that overlaps read as density;
    # markers are larger than a line's points, so ten decisions count as one run's line.
    style = run_style(len(points) // 10)
    scale = 1.0 if style.markers else 0.65
    labelled: list[DecisionPoint] = []
    for (promoted, rule), group in groups.items():
        color = COLORS["promoted"] if promoted else COLORS["pruned_decision"]
        _, marker, words = RULE_SYMBOLS.get(rule, RULE_SYMBOLS["rank"])
        face = "none" if rule == "startup" else color
        name = f"{'promoted' if promoted else 'pruned'}: {words} ({len(group)})"
        x = [p.compute for p in group]
        left.scatter(x, [p.loss for p in group], marker=marker, s=(30 if promoted else 46) * scale ** 2,
                     facecolors=face, edgecolors=color, alpha=style.alpha, zorder=3, label=name)
        right.errorbar([shifted[p.trial, p.rung] for p in group], [p.forecast for p in group],
                       yerr=[p.std for p in group], fmt=marker, ms=5 * scale, mfc=face, alpha=style.alpha,
                       color=color, elinewidth=0.8, capsize=2, zorder=3)
        if not promoted and style.markers:  # trial numbers only where they stay legible
            labelled += group
    left.set_ylabel("loss")
    right.set_ylabel("forecast loss at max_compute")
    right.set_yscale("log")
    right.set_ylim(*forecast_range(points))
    for ax in (left, right):
        ax.set_xlabel("compute at the rung")
        ax.grid(alpha=0.25)
        readable_log_axes(ax)
    legend_outside(fig, left)
    # Last: the labels are placed where the finished layout puts their points.
    label_points(fig, left, [(p.compute, p.loss) for p in labelled], [str(p.trial) for p in labelled],
                 avoid=[(p.compute, p.loss) for p in points if p.promoted], fontsize=7, color=COLORS["pruned_decision"])
    return fig
