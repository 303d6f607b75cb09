"""``sh-scaling simulate --pruners ...``: replay the curves as trials of real Optuna studies under pruners."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sh_scaling.cli._output import write_results
from sh_scaling.simulation import PRUNERS

__all__ = ["pruner_names", "replay_outputs", "run_replay"]


def pruner_names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in PRUNERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown pruners {unknown}; choose from {sorted(PRUNERS)}")
    if not names:
        raise argparse.ArgumentTypeError("--pruners: give at least one pruner")
    return names


def replay_outputs(no_plots: bool) -> list[str]:
    """The files the replay mode writes into ``--out``."""
    return ["runs.csv", "summary.csv", "summary.json", *([] if no_plots else ["tradeoff.png"])]


def plot_tradeoff(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Compute spent against regret and against law error, one marker per pruner (mean ± s.e. over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = "osD^v<>ph*"
    for i, (_, r) in enumerate(summary.iterrows()):
        kw: dict[str, Any] = dict(marker=markers[i % len(markers)], color=f"C{i % 10}", capsize=2, label=r.pruner,
                                  linestyle="none")
        axes[0].errorbar(r.compute_frac, r.regret_pct, xerr=r.compute_frac_se, yerr=r.regret_se_pct, **kw)
        axes[1].errorbar(r.compute_frac, r.law_error, xerr=r.compute_frac_se, yerr=r.law_error_se, **kw)
    axes[0].set_ylabel("best-loss regret (%)")
    axes[1].set_ylabel("law error (mean |Δ ln L|)")
    for ax in axes:
        ax.set_xlabel("compute spent / exhaustive")
        ax.grid(alpha=0.3)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, title="mean ± s.e. over seeds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def run_replay(args: argparse.Namespace, curves: Any) -> int:
    from sh_scaling.simulation import replay_study, summarize_replay

    t0 = time.perf_counter()
    frames = []
    for name in args.pruners:
        if not args.quiet:
            print(f"replaying {len(curves)} curves under {name} ({args.repeats} seeds)...", flush=True)
        frames.append(replay_study(curves, name, seeds=range(args.seed, args.seed + args.repeats), n_jobs=args.jobs
                                   if args.jobs > 0 else 1))
    df = pd.concat(frames, ignore_index=True)
    summary = summarize_replay(df)
    elapsed = time.perf_counter() - t0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{curves.name}: {len(curves)} curves as trials of Optuna studies, {args.repeats} seeds "
              "(random arrival orders)")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"{elapsed:.1f}s")
    if args.out:
        out = write_results(args.out, df, summary, {
            "curves": curves.name,
            "n_curves": len(curves),
            "pruners": args.pruners,
            "seeds": list(range(args.seed, args.seed + args.repeats)),
            "seconds": round(elapsed, 2),
        })
        if not args.no_plots:
            plot_tradeoff(summary, out / "tradeoff.png", f"{curves.name}: pruners in real Optuna studies")
        print(f"wrote {out}/runs.csv, summary.csv, summary.json" + ("" if args.no_plots else " and tradeoff.png"))
    return 0
