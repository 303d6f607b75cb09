"""plot_curves with matplotlib."""

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
    import_matplotlib,
    matplotlib_text,
    run_style,
    wrap,
)
from sh_scaling.visualization.matplotlib._axes import legend_outside, readable_log_axes

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

    The matplotlib version of :func:`sh_scaling.visualization.plot_curves` (same arguments, same content).

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    plt = import_matplotlib()
    data = curves_data(study_or_curves, compute_fn=compute_fn, law=law, predict_at=predict_at,
                       n_bootstrap=n_bootstrap, seed=seed)
    fig, ax = plt.subplots(figsize=(10, 5.2), layout="constrained")
    grid, front = data.frontier
    # Under the runs: the frontier is made of their points and would hide them.
    ax.plot(grid, front, color=FRONTIER_GREY, lw=7, solid_capstyle="round", label="observed frontier", zorder=1)
    fstyle = run_style(len(data.forecasts))
    for i, (_, c0, l0, c1, fc) in enumerate(data.forecasts):
        ax.plot([c0, c1], [l0, fc], color=COLORS["pruned"], lw=fstyle.width, ls="--", alpha=fstyle.alpha, zorder=2,
                label=data.forecast_label if i == 0 else None)
        ax.plot([c1], [fc], marker="o", mfc="none", color=COLORS["pruned"], ms=5, alpha=fstyle.alpha, zorder=2)
    for level, group in enumerate(DRAW_ORDER):
        curves = data.groups[group]
        color, _, marker = OUTCOME_STYLE[group]
        style = run_style(len(curves))
        for i, c in enumerate(curves):
            ax.plot(c.compute, c.loss, color=color, lw=style.width, marker=marker if style.markers else None,
                    ms=3.5, alpha=style.alpha, zorder=2 + 0.1 * level,
                    label=f"{GROUP_NAMES[group]} ({len(curves)})" if i == 0 else None)
    _draw_law(ax, data)
    ax.set_xlabel(f"compute ({matplotlib_text(data.unit)})")
    ax.set_ylabel("loss")
    notes = [line for note in (data.law_note, data.forecast_note) if note for line in wrap(note)]
    title = "\n".join([f"{data.curves.name}: {data.counts}", *notes])
    ax.set_title(matplotlib_text(title), fontsize=10, loc="left")
    ax.grid(alpha=0.25, which="major")
    readable_log_axes(ax)
    legend_outside(fig, ax)
    return fig


def _draw_law(ax: Any, data: CurvesData) -> None:
    law = data.law
    if law is None:
        return
    color = COLORS["law"]
    if data.band is None:
        grid = np.geomspace(law.c_min, law.c_max, 50)
        ax.plot(grid, law.predict(grid), color=color, lw=2, zorder=3, label=f"law: {law_label(law, 'tex')}")
    else:
        band = data.band
        ax.fill_between(band.compute, band.low, band.high, color=color, alpha=0.18, lw=0, zorder=1,
                        label=f"law's band: {describe_interval(law)}")
        inside, start = data.band_split()
        ax.plot(band.compute[inside], band.loss[inside], color=color, lw=2, zorder=3,
                label=f"law: {law_label(law, 'tex')}")
        if start is not None:
            ax.plot(band.compute[start:], band.loss[start:], color=color, lw=2, ls=":", zorder=3,
                    label="law, extrapolated")
    if data.prediction is not None:
        p = data.prediction
        c, mid, lo, hi = float(p.compute[0]), float(p.loss[0]), float(p.low[0]), float(p.high[0])
        below, above = error_bar(mid, lo, hi)
        ax.errorbar([c], [mid], yerr=[[below], [above]], fmt="D", color=color, ms=7, capsize=4, zorder=4,
                    label=f"prediction at {c:.3g}: {mid:.4g} [{lo:.4g}, {hi:.4g}]")
