"""Plots of a simulation: RI by budget, and one candidate set's frontiers with their fitted laws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sh_scaling.curves import CurveSet
from sh_scaling.laws import observed_frontier
from sh_scaling.simulation._metrics import frontier_law
from sh_scaling.simulation._strategies import allocate

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
    """One panel per candidate-set size: mean RI over SH (with 95 % intervals) against the budget."""
    plt = _pyplot()
    sizes = sorted(summary.n_candidates.unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], sizes):
        part = summary[summary.n_candidates == k]
        for name, g in part.groupby("strategy"):
            g = g.sort_values("budget_frac")
            ax.errorbar(
                100 * g.budget_frac,
                100 * g.ri_mean,
                yerr=[100 * (g.ri_mean - g.ri_lo), 100 * (g.ri_hi - g.ri_mean)],
                marker="o",
                capsize=3,
                label=name,
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted(100 * part.budget_frac.unique()))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("budget (% of exhaustive compute)")
        ax.set_title(f"{k} candidates")
    axes[0][0].set_ylabel("RI of best loss over SH (%)")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_frontiers(
    candidates: CurveSet, budget_frac: float, strategies: list[str], path: str | Path, reduction_factor: float = 2.0
) -> Path:
    """The candidates' full curves, the exhaustive frontier and law, and each strategy's observed frontier
    and fitted law, for one candidate set and budget."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for c in candidates:
        ax.plot(c.compute, c.loss, color="0.8", lw=0.8)
    full = list(candidates)
    grid, f = observed_frontier(full)
    ax.plot(grid, f, color="k", lw=2, label="exhaustive frontier")
    law = frontier_law(full)
    if law is not None:
        ax.plot(grid, law.predict(grid), "k--", lw=1, label=f"exhaustive law, gamma={law.exponent:.3f}")
    budget = budget_frac * candidates.exhaustive_compute
    for name in strategies:
        res = allocate(candidates, budget, name, reduction_factor=reduction_factor, rng=np.random.default_rng(0))
        seen = [o for o in res.observed if len(o)]
        if not seen:
            continue
        g2, f2 = observed_frontier(seen)
        (line,) = ax.plot(g2, f2, lw=1.5, label=f"{name}: best {res.best_loss:.3f}")
        fit = frontier_law(seen)
        if fit is not None:
            ax.plot(grid, fit.predict(grid), ls=":", color=line.get_color(), label=f"{name} law, gamma={fit.exponent:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"compute ({candidates[0].unit})")
    ax.set_ylabel("loss")
    ax.set_title(f"{len(candidates)} candidates, budget {100 * budget_frac:g}% of exhaustive")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
