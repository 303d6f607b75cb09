"""``sh-scaling simulate --pruners ...``: replay the curves as trials of real Optuna studies under pruners."""

from __future__ import annotations

import argparse
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
    frames = []
    for name in args.pruners:
        if not args.quiet:
            print(f"replaying {len(curves)} curves under {name} ({args.repeats} seeds)...", flush=True)
        frames.append(replay_study(curves, name, seeds=range(args.seed, args.seed + args.repeats), n_jobs=args.jobs
                                   if args.jobs > 0 else 1))
    df = pd.concat(frames, ignore_index=True)
    summary = summarize_replay(df)
    bound = clairvoyant_bound(curves, seeds=range(args.seed, args.seed + args.repeats))
    least, hindsight = float(bound.compute_frac.mean()), float(bound.hindsight_frac.mean())
    elapsed = time.perf_counter() - t0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{curves.name}: {len(curves)} curves as trials of Optuna studies, {args.repeats} seeds "
              "(random arrival orders)")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"least compute_frac for zero regret with trials arriving in these orders: {least:.4g} "
              f"(knowing every arriving curve; {hindsight:.4g} in hindsight)")
        print(f"{elapsed:.1f}s")
    if args.out:
        out = write_results(args.out, df, summary, {
            "curves": curves.name,
            "n_curves": len(curves),
            "pruners": args.pruners,
            "seeds": list(range(args.seed, args.seed + args.repeats)),
            "seconds": round(elapsed, 2),
            "clairvoyant_compute_frac": least,
            "hindsight_compute_frac": hindsight,
        })
        if not args.no_plots:
            from sh_scaling.visualization.matplotlib import plot_tradeoff

            fig = plot_tradeoff(df, bound=least)
            fig.suptitle(f"{curves.name}: pruners replayed as Optuna studies", x=0.01, ha="left", fontsize=10)
            fig.savefig(out / "tradeoff.png", dpi=130, bbox_inches="tight")
        print(f"wrote {out}/runs.csv, summary.csv, summary.json" + ("" if args.no_plots else " and tradeoff.png"))
    return 0
