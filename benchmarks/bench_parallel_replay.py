"""The pruners in a sweep that runs many trials at once: compute, regret, law error and wall-clock time on K workers.

Every study is run by :func:`sh_scaling.simulation.replay_study` with ``n_workers=K``: one trial per curve,
enqueued in a seeded random order; K simulated workers each ask the study for the next trial when free; each
trial's reports arrive at times proportional to its compute (one throughput for all trials), and every pruner
decides at each report on the study as it stands at that moment. K=1 is the one-trial-after-another replay of
the other replay benchmarks.

Curve sets (``--set``): ``multipowerlaw`` (the 27 runs of Luo et al., ICLR 2025, under nine learning-rate
schedules), ``schedule-ladder`` (a synthetic ladder with per-run cosine / WSD / constant schedules, drawn per
seed), ``routing`` (the 223 runs of Clark et al., ICML 2022), ``synthetic`` (100 Chinchilla-law curves with
white noise, drawn per seed) and ``cpu-ladder`` (30 small GPT runs recorded on CPU under cosine, WSD and constant
schedules, :func:`sh_scaling.curves.load_cpu_ladder`).

Pruners: ours at its defaults, and with each trial's schedule read from its curve (``schedule="from_curves"``)
on the sets whose curves carry one; Optuna's ``SuccessiveHalvingPruner`` (min_resource, reduction_factor),
``HyperbandPruner`` (reduction_factor), ``MedianPruner`` and ``PercentilePruner`` (percentile, warm-up steps),
each with its main knobs swept; ``nop`` (exhaustive). ``--quick``: each at its defaults only, 3 seeds.

Metrics per set, K and pruner (means over seeds): compute spent / exhaustive, best-loss regret (mean, and
``zero_regret``, the share of arrival orders with none), law error (mean |Δ ln L| between the law fitted on the
observed frontier and on every full curve) and ``makespan_frac``: the sweep's wall-clock time over the time the
same K workers take to train every curve to its end in the same order. Beside them,
:func:`sh_scaling.simulation.clairvoyant_bound` for the same orders and K: the least compute and wall-clock
time of a pruner with no regret that knows every started trial's whole curve, with every trial reporting once
before its first decision (``any``), or deciding nothing before 3 points and 5 % of a run, as ours by default
(``first look``).

    python benchmarks/bench_parallel_replay.py --quick --set multipowerlaw --jobs 1   # 3 min on a busy core
    python benchmarks/bench_parallel_replay.py --set routing --workers 1 8 --seeds 20 --jobs 2

Writes ``results/parallel_replay/runs.csv``, ``summary.csv``, ``summary.md``, ``bounds.csv`` and one
``tradeoff_<set>.png`` per curve set (compute against regret and against law error, one column per K).
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from sh_scaling.benchmarking import (
    benchmark_curves,
    default_jobs,
    local_curve_sets,
    output_dir,
    parallel_map,
    write_summary,
)
from sh_scaling.halving import DECISION_START
from sh_scaling.simulation import FROM_CURVES, PrunerSpec, clairvoyant_bound, replay_study, summarize_replay
from sh_scaling.surrogates import MIN_POINTS

#: The benchmark's set names and the names :func:`sh_scaling.benchmarking.benchmark_curves` knows them by.
SETS = {"multipowerlaw": "schedule", "schedule-ladder": "ladder", "routing": "routing", "synthetic": "synthetic",
        "cpu-ladder": "cpu-ladder"}
#: Sets whose curves state their schedules (``meta["schedule"]``).
WITH_SCHEDULES = ("multipowerlaw", "schedule-ladder", "cpu-ladder")

OPTUNA_SWEEP = [
    PrunerSpec("sha"),
    PrunerSpec("sha", {"min_resource": 4}),
    PrunerSpec("sha", {"reduction_factor": 2}),
    PrunerSpec("sha", {"min_resource": 4, "reduction_factor": 2}),
    PrunerSpec("hyperband"),
    PrunerSpec("hyperband", {"reduction_factor": 2}),
    PrunerSpec("median"),
    PrunerSpec("median", {"n_warmup_steps": 20}),
    PrunerSpec("percentile", {"percentile": 25.0}),
    PrunerSpec("percentile", {"percentile": 25.0, "n_warmup_steps": 20}),
    PrunerSpec("percentile", {"percentile": 75.0}),
]
#: ``--quick``: each of Optuna's pruners at its defaults.
OPTUNA_QUICK = [PrunerSpec("sha"), PrunerSpec("hyperband"), PrunerSpec("median"),
                PrunerSpec("percentile", {"percentile": 25.0})]


#: Our pruner's knobs in the full sweep, from its default towards less compute: the stage error model's coverage
#: (``margin``; 0.9 is the default), then without the frontier rule (a trial whose forecast path could lower the
#: others' frontier is kept whatever its rank: most of the compute above the zero-regret bound goes to it), then
#: without the frontier rule and without a margin; the coverages 0.8 and 0.5 with and without the frontier rule fill
#: the compute range where Optuna's Hyperband, Median and Percentile pruners sit.
OURS_SWEEP = [{"margin": 0.8}, {"margin": 0.5}, {"keep_below_frontier": False},
              {"keep_below_frontier": False, "margin": 0.8}, {"keep_below_frontier": False, "margin": 0.5},
              {"keep_below_frontier": False, "margin": None}]


def parse_sweep(text: str) -> dict[str, Any]:
    """One ``--ours-sweep`` setting: a number is a margin coverage; else ``key=value,key=value`` (Python literals)."""
    try:
        return {"margin": float(text)}
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        out[key.strip()] = ast.literal_eval(value.strip())
    return out


def specs_for(set_name: str, quick: bool, sweep: list[dict[str, Any]] | None = None) -> list[PrunerSpec]:
    base: dict[str, Any] = {"schedule": FROM_CURVES} if set_name in WITH_SCHEDULES else {}
    ours = [PrunerSpec("ours")]
    if base:
        ours.append(PrunerSpec("ours", base))
    if not quick:
        extras = OURS_SWEEP if sweep is None else sweep
        ours += [PrunerSpec("ours", {**base, **extra}) for extra in extras]
    return [*ours, *(OPTUNA_QUICK if quick else OPTUNA_SWEEP), PrunerSpec("nop")]


def _task(args: tuple[str, int, int, PrunerSpec]) -> pd.DataFrame:
    set_name, workers, seed, spec = args
    warnings.simplefilter("ignore")
    df = replay_study(benchmark_curves(SETS[set_name], seed), spec, seeds=[seed], n_workers=workers)
    df.insert(0, "curves", set_name)
    return df.drop(columns="rungs")


def bound_rows(set_name: str, workers: list[int], seeds: range) -> list[dict[str, object]]:
    """The clairvoyant bounds per K, means over the seeds' arrival orders (per-seed sets drawn per seed)."""
    looks: dict[str, dict[str, Any]] = {"any": {"min_points": 1},
                                        "first look": {"min_points": MIN_POINTS, "min_fraction": DECISION_START}}
    per_seed = set_name in ("schedule-ladder", "synthetic")
    rows: list[dict[str, object]] = []
    for k in workers:
        for look, kwargs in looks.items():
            if per_seed:
                b = pd.concat([clairvoyant_bound(benchmark_curves(SETS[set_name], s), seeds=[s], n_workers=k,
                                                 **kwargs) for s in seeds])
            else:
                b = clairvoyant_bound(benchmark_curves(SETS[set_name], 0), seeds=seeds, n_workers=k, **kwargs)
            rows.append({"curves": set_name, "n_workers": k, "look": look, "compute_frac": b.compute_frac.mean(),
                         "makespan_frac": b.makespan_frac.mean(), "hindsight_frac": b.hindsight_frac.mean()})
    return rows


def _kind_of(spec: PrunerSpec) -> str:
    """``--pruners``' name for a spec's kind."""
    return {"ours": "ours", "nop": "exhaustive"}.get(spec.name, "optuna")


def kind(label: str) -> str:
    if label == "nop":
        return "exhaustive"
    if not label.startswith("ours"):
        return "optuna"
    return "ours, schedule-aware" if "schedule" in label else "ours"


def plot(summary: pd.DataFrame, bounds: pd.DataFrame, set_name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary[summary.curves == set_name]
    ks = sorted(s.n_workers.unique())
    colors = {"optuna": "C0", "ours": "C1", "ours, schedule-aware": "C3", "exhaustive": "k"}
    fig, axes = plt.subplots(2, len(ks), figsize=(6 * len(ks), 8), squeeze=False)
    for j, k in enumerate(ks):
        for _, r in s[s.n_workers == k].iterrows():
            c = kind(r.pruner)
            kw = dict(marker="s" if c == "optuna" else "o", color=colors[c], capsize=2, label=c)
            axes[0, j].errorbar(r.compute_frac, r.regret_pct, yerr=r.regret_se_pct, **kw)
            axes[1, j].errorbar(r.compute_frac, r.law_error, yerr=r.law_error_se, **kw)
            for ax, y in ((axes[0, j], r.regret_pct), (axes[1, j], r.law_error)):
                ax.annotate(f"{r.pruner.replace('from_curves', 'fc')} [{r.makespan_frac:.2f}]", (r.compute_frac, y),
                            fontsize=5, xytext=(3, 3), textcoords="offset points")
        b = bounds[(bounds.curves == set_name) & (bounds.n_workers == k)].set_index("look")
        for look, ls in (("any", "--"), ("first look", ":")):
            if look in b.index:
                for ax in axes[:, j]:
                    ax.axvline(b.at[look, "compute_frac"], color="k", lw=0.8, ls=ls,
                               label=f"least for zero regret ({look})")
        axes[0, j].set_title(f"{set_name}, {k} worker{'s' if k > 1 else ''}: regret vs compute "
                             "[makespan fraction]", fontsize=9)
        axes[0, j].set_ylabel("best-loss regret (%)")
        axes[1, j].set_ylabel("law error (mean |Δ ln L|)")
        handles, labels = axes[0, j].get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        axes[0, j].legend(unique.values(), unique.keys(), fontsize=7)
        for ax in axes[:, j]:
            ax.set_xlabel("compute spent / exhaustive")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def dominance(summary: pd.DataFrame) -> pd.DataFrame:
    """Each Optuna point against ours' settings at no more compute, per set and K: how many Optuna points have
    such a setting (``comparable``), how many of those one with no more regret, no more law error, and both at
    once (one setting), how many lie below ours' cheapest setting, and the points where no setting of ours at no
    more compute is at least as good on both (``not_matched``: pruner compute/regret %/law error)."""
    rows = []
    s = summary[summary.pruner != "nop"]
    for (curves, k), g in s.groupby(["curves", "n_workers"], sort=False):
        ours = g[g.pruner.map(kind).str.startswith("ours")]
        optuna = g[g.pruner.map(kind) == "optuna"]
        comparable = regret = law = both = 0
        missed = []
        for _, o in optuna.iterrows():
            cheaper = ours[ours.compute_frac <= o.compute_frac]
            if cheaper.empty:
                continue
            comparable += 1
            r = cheaper.regret_pct <= o.regret_pct
            e = cheaper.law_error <= o.law_error
            regret, law, both = regret + bool(r.any()), law + bool(e.any()), both + bool((r & e).any())
            if not (r & e).any():
                missed.append(f"{o.pruner} {o.compute_frac:.3f}/{o.regret_pct:.2g}/{o.law_error:.4f}")
        rows.append({"curves": curves, "n_workers": k, "optuna_points": len(optuna), "comparable": comparable,
                     "no_more_regret": regret, "no_more_law_error": law, "both": both,
                     "below_ours_cheapest": int((optuna.compute_frac < ours.compute_frac.min()).sum()),
                     "not_matched": "; ".join(missed)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 seeds (unless --seeds), every pruner at its defaults")
    ap.add_argument("--set", dest="sets", nargs="+", choices=list(SETS), default=list(SETS),
                    help="curve sets (default: all four)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8], help="values of K (default 1 8)")
    ap.add_argument("--seeds", type=int, default=None, help="arrival orders per set (default 20; --quick 3)")
    ap.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: up to 2)")
    ap.add_argument("--out", default="results", help="results folder (default results)")
    ap.add_argument("--pruners", nargs="+", choices=["ours", "optuna", "exhaustive"],
                    default=["ours", "optuna", "exhaustive"], help="which pruners to replay (default: all)")
    ap.add_argument("--ours-sweep", type=parse_sweep, nargs="*", default=None,
                    help="settings of ours besides its default: a margin coverage (0.5) or key=value,... (default: "
                         "margin=0.8; margin=0.5; keep_below_frontier=False with the default margin, 0.8, 0.5 and None)")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="runs.csv files of earlier runs (other pruners, same sets, K and seeds) to summarise and "
                         "plot with this run's")
    args = ap.parse_args(argv)
    seeds = range(args.seeds or (3 if args.quick else 20))
    if min(args.workers) < 1 or len(seeds) < 1:
        ap.error("--workers and --seeds must be >= 1")
    present = local_curve_sets([SETS[s] for s in args.sets])
    sets = [s for s in args.sets if SETS[s] in present]
    tasks = [(cs, k, seed, spec) for cs in sets for spec in specs_for(cs, args.quick, args.ours_sweep) for k in args.workers
             for seed in seeds if _kind_of(spec) in args.pruners]
    # Slow tasks (schedule-aware fits, the 223 routing runs) first, so that the pool ends together.
    tasks.sort(key=lambda t: (t[0] != "routing", "schedule" not in t[3].kwargs, t[3].name != "ours"))
    out = output_dir("parallel_replay", args.out)
    t0 = time.perf_counter()
    df = pd.concat(parallel_map(_task, tasks, jobs=args.jobs, label="studies"), ignore_index=True)
    df.to_csv(out / "runs.csv", index=False)
    if args.also:
        earlier = pd.concat([pd.read_csv(p) for p in args.also], ignore_index=True)
        df = pd.concat([df, earlier[earlier.curves.isin(sets) & earlier.n_workers.isin(args.workers)]],
                       ignore_index=True)
    summary = summarize_replay(df)
    bounds = pd.DataFrame([row for cs in sets for row in bound_rows(cs, args.workers, seeds)])
    bounds.to_csv(out / "bounds.csv", index=False)
    write_summary(summary, out)
    for cs in sets:
        plot(summary, bounds, cs, out / f"tradeoff_{cs}.png")
    cols = ["curves", "n_workers", "pruner", "seeds", "compute_frac", "regret_pct", "zero_regret", "law_error",
            "makespan_frac"]
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 60):
        print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print("\nLeast compute and wall-clock time for zero regret (clairvoyant, these orders, K workers):")
        print(bounds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        table = dominance(summary)
        table.to_csv(out / "dominance.csv", index=False)
        print("\nEach Optuna point against ours' settings at no more compute:")
        print(table.drop(columns="not_matched").to_string(index=False))
        for _, row in table[table.not_matched != ""].iterrows():
            print(f"  not matched ({row.curves}, K={row.n_workers}): {row.not_matched}")
    print(f"wrote {out}/ ({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
