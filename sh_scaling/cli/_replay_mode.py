"""``sh-scaling simulate --pruners ...``: replay the curves as trials of real Optuna studies under pruners."""

from __future__ import annotations

import argparse
import os
import time
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


def run_replay(args: argparse.Namespace, curves: Any) -> int:
    from sh_scaling.simulation import clairvoyant_bound, replay_study, summarize_replay

    t0 = time.perf_counter()
    seeds = list(range(args.seed, args.seed + args.repeats))
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    frames = []
    for name in args.pruners:
        if not args.quiet:
            print(f"replaying {len(curves)} curves under {name} ({args.repeats} seeds, {args.workers} "
                  f"worker{'s' if args.workers > 1 else ''})...", flush=True)
        frames.append(replay_study(curves, name, seeds=seeds, n_jobs=jobs, n_workers=args.workers))
    df = pd.concat(frames, ignore_index=True)
    summary = summarize_replay(df)
    # Every trial of a replay reports its first point before any decision: the bound of any pruner there.
    bound = clairvoyant_bound(curves, seeds=seeds, n_workers=args.workers, min_points=1)
    least, hindsight = float(bound.compute_frac.mean()), float(bound.hindsight_frac.mean())
    least_time = float(bound.makespan_frac.mean())
    elapsed = time.perf_counter() - t0
    shown = ["pruner", "n_workers", "seeds", "compute_frac", "regret_pct", "zero_regret", "makespan_frac",
             "law_error", "compute_frac_se", "regret_se_pct", "makespan_frac_se"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{curves.name}: {len(curves)} curves as trials of Optuna studies on {args.workers} worker"
              f"{'s' if args.workers > 1 else ''}, {args.repeats} seeds (random arrival orders); makespan_frac: "
              "the sweep's wall-clock time over training every curve to its end on the same workers")
        print(summary[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"least compute_frac for zero regret with trials arriving in these orders: {least:.4g} "
              f"(knowing every started curve, each reporting once; {hindsight:.4g} in hindsight); "
              f"least makespan_frac: {least_time:.4g}")
        print(f"{elapsed:.1f}s")
    if args.out:
        out = write_results(args.out, df, summary, {
            "curves": curves.name,
            "n_curves": len(curves),
            "pruners": args.pruners,
            "seeds": seeds,
            "workers": args.workers,
            "seconds": round(elapsed, 2),
            "clairvoyant_compute_frac": least,
            "hindsight_compute_frac": hindsight,
            "clairvoyant_makespan_frac": least_time,
        })
        if not args.no_plots:
            from sh_scaling.visualization.matplotlib import plot_tradeoff

            fig = plot_tradeoff(df, bound=least)
            fig.suptitle(f"{curves.name}: pruners replayed as Optuna studies", x=0.01, ha="left", fontsize=10)
            fig.savefig(out / "tradeoff.png", dpi=130, bbox_inches="tight")
        print(f"wrote {out}/runs.csv, summary.csv, summary.json" + ("" if args.no_plots else " and tradeoff.png"))
    return 0
