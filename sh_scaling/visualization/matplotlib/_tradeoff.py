"""plot_tradeoff with matplotlib."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sh_scaling.visualization._data import tradeoff_data
from sh_scaling.visualization._style import PALETTE, TRADEOFF_SYMBOLS, import_matplotlib
from sh_scaling.visualization._tradeoff import PANELS
from sh_scaling.visualization.matplotlib._axes import legend_outside

__all__ = ["plot_tradeoff"]


def plot_tradeoff(df: pd.DataFrame, bound: float | None = None) -> Any:
    """Compute spent against best-loss regret (left) and law error (right), one marker per pruner.

    The matplotlib version of :func:`sh_scaling.visualization.plot_tradeoff` (``bound``: a compute fraction
    drawn as a dashed vertical line, such as :func:`sh_scaling.simulation.clairvoyant_bound`'s).

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    plt = import_matplotlib()
    per_study, summary = tradeoff_data(df)
    n_seeds = int(summary["seeds"].max())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for i, row in enumerate(summary.itertuples(index=False)):
        color = PALETTE[i % len(PALETTE)]
        marker = TRADEOFF_SYMBOLS[i % len(TRADEOFF_SYMBOLS)][1]
        seeds = per_study[per_study["pruner"] == row.pruner]
        for ax, (column, mean, se, _) in zip(axes, PANELS):
            ax.scatter(seeds["compute_frac"], seeds[column], marker=marker, s=14, color=color, alpha=0.3, lw=0)
            ax.errorbar([row.compute_frac], [getattr(row, mean)], xerr=[_zero_nan(row.compute_frac_se)],
                        yerr=[_zero_nan(getattr(row, se))], fmt=marker, ms=9, color=color, mec="white",
                        capsize=3, label=row.pruner)
    for ax, (_, _, _, title) in zip(axes, PANELS):
        if bound is not None:
            ax.axvline(float(bound), color="black", lw=0.9, ls="--",
                       label="least for zero regret" if ax is axes[0] else None)
        ax.set_xlabel("compute spent / exhaustive")
        ax.set_ylabel(title)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.25)
    fig.suptitle("Pruners replayed as Optuna studies: compute against regret and law error", x=0.01, ha="left",
                 fontsize=10)
    legend_outside(fig, axes[0], title=f"mean ± s.e. over {n_seeds} seeds\n(small: each seed)", title_fontsize=8)
    return fig


def _zero_nan(value: float) -> float:
    return 0.0 if pd.isna(value) else float(value)
