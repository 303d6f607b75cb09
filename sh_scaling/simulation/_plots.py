"""Plots of a simulation: RI by budget, and one candidate set's frontiers with their fitted laws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sh_scaling.curves import CurveSet
from sh_scaling.laws import observed_frontier
from sh_scaling.simulation._metrics import frontier_law
from sh_scaling.simulation._strategies import Strategy, allocate, parse_strategy

__all__ = ["plot_ri_by_budget", "plot_frontiers"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'sh_scaling[plot]'") from exc
    return plt


def plot_ri_by_budget(summary: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """One panel per candidate-set size: mean RI over SH against the budget, with the 95 % interval of the mean
    (normal approximation, the interval ``sh-scaling simulate`` prints). Strategies are dodged sideways and drawn
    with their own markers, so that several on the zero line stay visible."""
    plt = _pyplot()
    sizes = sorted(summary.n_candidates.unique())
    names = sorted(summary.strategy.unique())
    markers = "osD^v<>ph*X"
    # Multiplicative offsets on the log budget axis: +-12 % at most, one step per strategy.
    offsets = {n: 1.12 ** ((i - (len(names) - 1) / 2) / max(1, (len(names) - 1) / 2)) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes) + 1.8, 3.6), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], sizes):
        part = summary[summary.n_candidates == k]
        for i, name in enumerate(names):
            g = part[part.strategy == name].sort_values("budget_frac")
            if g.empty:
                continue
            ax.errorbar(
                100 * g.budget_frac * offsets[name],
                100 * g.ri_mean,
                yerr=[100 * (g.ri_mean - g.ri_lo), 100 * (g.ri_hi - g.ri_mean)],
                marker=markers[i % len(markers)],
                color=f"C{i % 10}",
                capsize=3,
                lw=1,
                ms=5,
                label=name,
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted(100 * part.budget_frac.unique()))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("budget (% of exhaustive compute)")
        ax.set_title(f"{k} candidates")
    axes[0][0].set_ylabel("RI of best loss over SH (%)\nmean, 95 % interval of the mean")
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_frontiers(
    candidates: CurveSet,
    budget_frac: float,
    strategies: Sequence[str | Strategy],
    path: str | Path,
    reduction_factor: float = 2.0,
) -> Path:
    """One panel per strategy (a name, a spec such as ``"SH+FA:few=stage"`` or a
    :class:`~sh_scaling.simulation.Strategy`), for one candidate set and budget: the candidates' full curves, the
    exhaustive frontier and law, and the strategy's observed frontier and fitted law (panels, because strategies that
    observe the same frontier would hide each other on one axis)."""
    plt = _pyplot()
    n = max(1, len(strategies))
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.6 * rows), sharex=True, sharey=True, squeeze=False)
    full = list(candidates)
    grid, f = observed_frontier(full)
    law = frontier_law(full)
    budget = budget_frac * candidates.exhaustive_compute
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        given = strategies[i]
        strategy = parse_strategy(given) if isinstance(given, str) else given
        name = strategy.name
        for c in candidates:
            ax.plot(c.compute, c.loss, color="0.85", lw=0.8, zorder=1)
        ax.plot(grid, f, color="k", lw=3.5, alpha=0.3, label="exhaustive frontier", zorder=2)
        if law is not None:
            ax.plot(grid, law.predict(grid), "k--", lw=1, label=f"exhaustive law, γ={law.exponent:.3f}", zorder=4)
        res = allocate(candidates, budget, strategy, reduction_factor=reduction_factor, rng=np.random.default_rng(0))
        seen = [o for o in res.observed if len(o)]
        title = name
        if seen:
            g2, f2 = observed_frontier(seen)
            ax.plot(g2, f2, color="C3", lw=1.4, label="observed frontier", zorder=3)
            fit = frontier_law(seen)
            if fit is not None:
                ax.plot(grid, fit.predict(grid), ls=":", color="C3", lw=1.4, label=f"its law, γ={fit.exponent:.3f}",
                        zorder=4)
            title = f"{name}: best {res.best_loss:.4g}"
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="lower left")
    for ax in axes[-1]:
        ax.set_xlabel(f"compute ({candidates[0].unit})")
    for ax in axes[:, 0]:
        ax.set_ylabel("loss")
    fig.suptitle(f"{len(candidates)} candidates, budget {100 * budget_frac:g}% of exhaustive")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
