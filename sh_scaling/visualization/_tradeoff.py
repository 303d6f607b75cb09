"""plot_tradeoff: what each pruner spent against what it lost, from replayed studies."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sh_scaling.visualization._data import tradeoff_data
from sh_scaling.visualization._style import PALETTE, TRADEOFF_SYMBOLS, import_plotly

__all__ = ["plot_tradeoff"]

#: The two panels: (column of the per-study table, mean column, s.e. column, axis title).
PANELS = (
    ("regret_pct", "regret_pct", "regret_se_pct", "best-loss regret (%)"),
    ("law_error", "law_error", "law_error_se", "law error (mean |Δ ln L|)"),
)


def plot_tradeoff(df: pd.DataFrame, bound: float | None = None) -> Any:
    """Compute spent against best-loss regret and against law error, one marker per pruner.

    Two panels sharing the compute axis (compute spent / training every curve to its end). Each pruner has
    its own colour and marker shape; its seeds (one replayed study each) are small translucent points and its
    mean a large marker with ± one standard error on both axes, as the legend says. Lower left is better in
    both panels.

    Args:
        df: The table :func:`sh_scaling.simulation.replay_study` returns (several pruners concatenated), or
            ``sh-scaling simulate --pruners ... --out DIR``'s ``runs.csv`` read back.
        bound: A compute fraction drawn as a dashed vertical line in both panels, typically the mean
            ``compute_frac`` of :func:`sh_scaling.simulation.clairvoyant_bound` for the same seeds: the least
            any pruner can spend for zero regret there.

    Returns:
        A ``plotly.graph_objects.Figure``.

    Raises:
        ValueError: the table lacks ``pruner, seed, compute_frac, regret, law_error`` or has no rows.
    """
    go = import_plotly()
    from plotly.subplots import make_subplots

    per_study, summary = tradeoff_data(df)
    n_seeds = int(summary["seeds"].max())
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for i, row in enumerate(summary.itertuples(index=False)):
        color = PALETTE[i % len(PALETTE)]
        symbol = TRADEOFF_SYMBOLS[i % len(TRADEOFF_SYMBOLS)][0]
        seeds = per_study[per_study["pruner"] == row.pruner]
        for col, (column, mean, se, _) in enumerate(PANELS, start=1):
            fig.add_trace(go.Scatter(
                x=seeds["compute_frac"], y=seeds[column], mode="markers", legendgroup=row.pruner, showlegend=False,
                marker=dict(symbol=symbol, size=5, color=color, opacity=0.3),
                hovertemplate=f"{row.pruner}, one seed: compute %{{x:.3f}}, %{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
            fig.add_trace(go.Scatter(
                x=[row.compute_frac], y=[getattr(row, mean)], mode="markers", name=row.pruner,
                legendgroup=row.pruner, showlegend=col == 1,
                marker=dict(symbol=symbol, size=13, color=color, line=dict(width=1, color="white")),
                error_x=dict(type="data", array=[_zero_nan(row.compute_frac_se)], color=color, thickness=1.5),
                error_y=dict(type="data", array=[_zero_nan(getattr(row, se))], color=color, thickness=1.5),
                hovertemplate=f"{row.pruner}: mean over {row.seeds} seeds<br>compute %{{x:.3f}}, "
                              f"%{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
    for col, (_, _, _, title) in enumerate(PANELS, start=1):
        if bound is not None:
            fig.add_vline(x=float(bound), line=dict(dash="dash", color="black", width=1), row=1, col=col,
                          annotation_text="least for zero regret" if col == 1 else None,
                          annotation_position="top right")
        fig.update_yaxes(title=title, row=1, col=col, ticks="outside", zeroline=True)
        fig.update_xaxes(title="compute spent / exhaustive", row=1, col=col, ticks="outside", rangemode="tozero")
    fig.update_layout(
        template="plotly_white", height=460,
        title=dict(text="Pruners replayed as Optuna studies: compute against regret and law error", x=0.01),
        legend=dict(x=1.02, y=1.0, xanchor="left", yanchor="top",
                    title=dict(text=f"mean ± s.e. over {n_seeds} seeds<br>(small: each seed)")),
    )
    return fig


def _zero_nan(value: float) -> float:
    """A standard error of one seed is undefined; no bar rather than a NaN that hides the marker."""
    return 0.0 if pd.isna(value) else float(value)
