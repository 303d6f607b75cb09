"""Replay recorded and synthetic learning curves as trials of real Optuna studies, under Optuna's pruners and ours.

Every study is run by :func:`sh_scaling.simulation.replay_study`: one trial per curve, enqueued in a seeded
random order, each reporting its recorded points with compute until ``should_prune()`` says stop. Optuna's
built-in pruners see a step index proportional to compute.

Pruners: ``nop`` (exhaustive), Optuna's ``SuccessiveHalvingPruner`` (defaults, and min_resource / reduction
factor variants), ``HyperbandPruner``, ``MedianPruner`` (defaults and a warm-up), ``PatientPruner(MedianPruner)``,
and ``SurrogateHalvingPruner`` with each surrogate and objective (and a conservative setting).

Metrics per study: compute spent as a fraction of exhaustive, best-loss regret ((best observed - exhaustive
best) / exhaustive best) and the law error (mean absolute ln-loss gap between the law fitted on the observed
frontier and the law fitted on every full curve, over the exhaustive frontier's compute range). Compute is
training FLOPs (routing: 3 x forward FLOPs per step).

    python benchmarks/bench_optuna_replay.py             # 20 seeds, routing + synthetic, all pruners
    python benchmarks/bench_optuna_replay.py --quick     # 3 seeds, power-law surrogate only
    python benchmarks/bench_optuna_replay.py --jobs 16   # worker processes

Writes ``results/optuna_replay/runs.csv``, ``summary.csv``, ``summary.md`` and ``regret_vs_compute.png``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from sh_scaling.benchmarking import benchmark_curves, default_jobs, local_curve_sets, output_dir, parallel_map, write_summary
from sh_scaling.simulation import PrunerSpec, replay_study, summarize_replay

OPTUNA_PRUNERS = [
    PrunerSpec("nop"),
    PrunerSpec("sha"),
    PrunerSpec("sha", {"reduction_factor": 2}),
    PrunerSpec("hyperband"),
    PrunerSpec("median"),
    PrunerSpec("median", {"n_warmup_steps": 5}),
    PrunerSpec("patient"),
]


def _task(args: tuple[str, int, PrunerSpec]) -> pd.DataFrame:
    set_name, seed, spec = args
    warnings.simplefilter("ignore")
    df = replay_study(benchmark_curves(set_name, seed), spec, seeds=[seed])
    df.insert(0, "curves", set_name)
    return df


def verdict(summary: pd.DataFrame) -> list[str]:
    """Each of our settings against each built-in: compute <=, regret <= (``=`` marks a tie), law error <."""
    lines = []
    for cs in summary.curves.unique():
        s = summary[summary.curves == cs].set_index("pruner")
        builtin = [p for p in s.index if not p.startswith("ours") and p != "nop"]
        for ours in [p for p in s.index if p.startswith("ours")]:
            marks = []
            for b in builtin:
                c_ok = s.at[ours, "compute_frac"] <= s.at[b, "compute_frac"]
                r_ours, r_b = s.at[ours, "regret_pct"], s.at[b, "regret_pct"]
                r_mark = "<" if r_ours < r_b else ("=" if r_ours == r_b else ">")
                l_ok = s.at[ours, "law_error"] < s.at[b, "law_error"]
                ok = c_ok and r_mark != ">" and l_ok
                marks.append(f"{b}[{'C' if c_ok else 'c'}{r_mark}{'L' if l_ok else 'l'}]{'' if ok else '!'}")
            lines.append(f"{cs:9s} {ours:55s} {' '.join(marks)}")
    lines.append("legend: C compute <= built-in (c: more), </=/> regret, L law error lower (l: not); ! = not better")
    return lines


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(summary.curves.unique())
    fig, axes = plt.subplots(2, len(sets), figsize=(6 * len(sets), 8), squeeze=False)
    for j, cs in enumerate(sets):
        s = summary[summary.curves == cs]
        for _, r in s.iterrows():
            ours = r.pruner.startswith("ours")
            kw = dict(marker="o" if ours else "s", color="C3" if ours else "C0", capsize=2)
            axes[0, j].errorbar(r.compute_frac, r.regret_pct, yerr=r.regret_se_pct, **kw)
            axes[1, j].errorbar(r.compute_frac, r.law_error, yerr=r.law_error_se, **kw)
            for ax, y in ((axes[0, j], r.regret_pct), (axes[1, j], r.law_error)):
                ax.annotate(r.pruner, (r.compute_frac, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axes[0, j].set_title(f"{cs}: best-loss regret vs compute (mean ± s.e. over seeds)")
        axes[0, j].set_ylabel("regret (%)")
        axes[1, j].set_ylabel("law error (mean |Δ ln L|)")
        for ax in axes[:, j]:
            ax.set_xlabel("compute spent / exhaustive")
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 seeds, power-law surrogate only")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--sets", default="routing,synthetic")
    ap.add_argument("--surrogates", default=None, help="comma list (default powerlaw,gp; --quick: powerlaw)")
    ap.add_argument("--jobs", type=int, default=default_jobs())
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 20)
    surrogates = (args.surrogates or ("powerlaw" if args.quick else "powerlaw,gp")).split(",")
    sets = local_curve_sets(args.sets.split(","))
    specs = list(OPTUNA_PRUNERS)
    specs += [PrunerSpec("ours", {"surrogate": s, "objective": o}) for s in surrogates for o in ("frontier", "best_loss")]
    if "powerlaw" in surrogates:
        # A conservative setting, to trace regret against compute.
        specs.append(PrunerSpec("ours", {"surrogate": "powerlaw", "reduction_factor": 2, "optimism": 0.2}))
    tasks = [(cs, seed, spec) for cs in sets for seed in range(seeds) for spec in specs]
    # Slow tasks (GP surrogates) first, so that the pool ends together.
    tasks.sort(key=lambda t: 0 if t[2].kwargs.get("surrogate", "powerlaw") != "powerlaw" else 1)
    out = output_dir("optuna_replay", args.out)
    t0 = time.perf_counter()
    df = pd.concat(parallel_map(_task, tasks, jobs=args.jobs, label="studies"), ignore_index=True)
    df.drop(columns="rungs").to_csv(out / "runs.csv", index=False)
    summary = summarize_replay(df)
    lines = verdict(summary)
    write_summary(summary, out, notes=lines)
    plot(summary, out / "regret_vs_compute.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(lines))
    print(f"wrote {out}/ ({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
